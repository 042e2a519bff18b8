// A client of the location server's LocationService (Cap'n Proto RPC): the
// one query call of the CLI, the bench and the tests.
//
// What the server says comes back as a Result: an answer, or the typed
// error it returned (bad request, not found, ...). A server that cannot be
// reached or does not answer within the call timeout throws kj::Exception,
// as every Cap'n Proto call does.
//
// Thread-affinity: use a QueryClient on the thread that made it. The first
// Cap'n Proto client made on a thread owns that thread's event loop; a
// second one (say an IngestClient) shares it.
#pragma once

#include <kj/async-io.h>
#include <kj/timer.h>

#include <string>
#include <vector>

#include "locus.capnp.h"
#include "locus/client/rpc_client.h"
#include "locus/common/json.h"
#include "locus/common/query.h"
#include "locus/common/status.h"
#include "locus/common/wire.h"

namespace locus::client {

inline constexpr kj::Duration kQueryTimeout = 30 * kj::SECONDS;

// The server's answer to a nearest, within or get query.
struct Answer {
  QueryResult result;
  Coverage shards;       // units asked and answered; partitions answered for
  bool partial = false;  // some partition had no replica answer: its devices are missing
  uint64_t tookUs = 0;   // as the server measured it
};

inline Answer readAnswer(wire::QueryResult::Reader r) {
  return Answer{readQueryResult(r), readCoverage(r.getShards()), r.getPartial(), r.getTookUs()};
}

// Reads a LocationService result (nearest, within, get).
template <typename Results>
Result<Answer> readAnswer(const Results& results) {
  if (results.hasError()) return readError(results.getError());
  return readAnswer(results.getResult());
}

// Reads a LocationService result of many (nearestMany, withinMany): one
// answer per point, in order.
template <typename Results>
Result<std::vector<Answer>> readAnswers(const Results& results) {
  if (results.hasError()) return readError(results.getError());
  std::vector<Answer> out;
  for (auto r : results.getResults()) out.push_back(readAnswer(r));
  return out;
}

class QueryClient {
 public:
  // With `apiKey` (the server's --api-keys), logs in with it first and
  // makes every call through the service it returns; throws kj::Exception
  // when the server refuses the key. With tls.on(), over TLS.
  explicit QueryClient(const std::string& address, kj::Duration callTimeout = kQueryTimeout,
                       const std::string& apiKey = "", const transport::TlsClientOptions& tls = {});

  // Each sends one call and waits for its answer.
  Result<Answer> nearest(const NearestQuery& query);
  Result<Answer> within(const AreaQuery& query);
  Result<Answer> get(const std::string& id);
  Result<ClusterStats> stats();
  // One answer per point, in order (kMaxBatchPoints at most a call).
  Result<std::vector<Answer>> nearestMany(const NearestMany& query);
  Result<std::vector<Answer>> withinMany(const WithinMany& query);

  // Send without waiting: calls sent before the loop next runs travel
  // pipelined on the one connection, and the server coalesces what reaches
  // it in one turn. Not bounded by the call timeout (see wait()).
  kj::Promise<Result<Answer>> startNearest(const NearestQuery& query);
  kj::Promise<Result<Answer>> startWithin(const AreaQuery& query);
  kj::Promise<Result<std::vector<Answer>>> startNearestMany(const NearestMany& query);

  // Runs the event loop until `promise` resolves; throws kj::Exception
  // after the call timeout.
  template <typename T>
  T wait(kj::Promise<T> promise) {
    return bounded(kj::mv(promise)).wait(waitScope());
  }

  // The raw interface, for calls the methods above do not cover.
  wire::LocationService::Client& service() { return service_; }
  kj::WaitScope& waitScope() { return rpc_.getWaitScope(); }
  kj::Timer& timer() { return rpc_.getIoProvider().getTimer(); }
  RpcClient& rpc() { return rpc_; }
  const std::string& address() const { return address_; }

 private:
  template <typename T>
  kj::Promise<T> bounded(kj::Promise<T> promise) {
    return rpc_.timeoutAfter(timeout_, kj::mv(promise),
                             kj::str("no answer from the server at ", address_.c_str(), " within ",
                                     timeout_ / kj::MILLISECONDS, " ms"));
  }

  std::string address_;
  kj::Duration timeout_;
  RpcClient rpc_;
  wire::LocationService::Client service_;
};

}  // namespace locus::client
