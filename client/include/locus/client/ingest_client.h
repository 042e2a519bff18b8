// A client of the gateway's Ingest (Cap'n Proto RPC): the one pipelined
// batcher of the CLI, the local cluster's simulator and the bench.
//
// Each send() is one batch, one call; up to `callsInFlight` calls travel
// unanswered on the connection, so the gateway is never idle waiting for
// the next batch and the client never buffers without bound. Per-report
// rejections come back in the batch's BatchOutcome (by index in the
// batch); a gateway that cannot be reached or does not answer within the
// call timeout throws kj::Exception.
//
// Thread-affinity: as QueryClient (query_client.h).
#pragma once

#include <capnp/ez-rpc.h>
#include <kj/async-io.h>
#include <kj/timer.h>

#include <cstddef>
#include <deque>
#include <functional>
#include <string>

#include "locus.capnp.h"
#include "locus/common/report.h"

namespace locus::client {

// Reports per call that keep the gateway busy without large messages.
inline constexpr size_t kBatchReports = 1000;

class IngestClient {
 public:
  struct Options {
    size_t callsInFlight = 8;
    kj::Duration callTimeout = 60 * kj::SECONDS;
  };
  // Writes report `i` of a batch.
  using WriteReport = std::function<void(size_t i, wire::Report::Builder out)>;
  // Runs with what the gateway said of one batch, in the order sent.
  using Settled = std::function<void(const BatchOutcome&)>;

  explicit IngestClient(const std::string& address) : IngestClient(address, Options{}) {}
  IngestClient(const std::string& address, Options options);
  // Abandons batches still in flight: call flush() to wait for them.
  ~IngestClient();

  // Sends one batch of `count` reports (0 is allowed: it proves the gateway
  // is there). With callsInFlight unanswered, first waits for the oldest.
  void send(size_t count, const WriteReport& write, Settled settled);
  // Waits until every batch sent has been answered.
  void flush();

  size_t inFlight() const { return inFlight_.size(); }
  kj::WaitScope& waitScope() { return rpc_.getWaitScope(); }
  kj::Timer& timer() { return rpc_.getIoProvider().getTimer(); }

 private:
  struct Call {
    kj::Promise<capnp::Response<wire::Ingest::ReportResults>> reply;
    Settled settled;
  };
  void settleOldest();

  Options options_;
  capnp::EzRpcClient rpc_;
  wire::Ingest::Client ingest_;
  std::deque<Call> inFlight_;
};

}  // namespace locus::client
