// A blocking client for one location unit: one request in flight at a time,
// each bounded by a timeout. For tools, tests and benchmarks; the gateway and
// the server keep many requests in flight with their own DEALER sockets.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <zmq.hpp>

#include "locus/common/query.h"
#include "locus/common/report.h"
#include "locus/common/status.h"

namespace locus::transport {

class UnitClient {
 public:
  UnitClient(zmq::context_t& context, const std::string& endpoint,
             std::chrono::milliseconds timeout = std::chrono::milliseconds(2000));

  Result<BatchOutcome> apply(std::span<const Report> reports);
  Result<QueryResult> nearest(const NearestQuery& query);
  Result<QueryResult> within(const AreaQuery& query);
  Result<Hit> get(std::string_view id);
  Result<UnitStats> stats();

 private:
  class Call;

  zmq::socket_t socket_;
  std::chrono::milliseconds timeout_;
  uint64_t nextRequestId_ = 1;
};

}  // namespace locus::transport
