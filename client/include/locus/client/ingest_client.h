// A client of the gateway's Ingest (Cap'n Proto RPC): the one pipelined
// batcher of the CLI, the local cluster's simulator and the bench.
//
// Each send() is one batch, one call; up to `callsInFlight` calls travel
// unanswered on the connection, so the gateway is never idle waiting for
// the next batch and the client never buffers without bound. The gateway
// answers a batch once each report is stored or has failed, so what the
// caller hears is what is stored.
//
// It keeps every batch until it is answered, so nothing is lost in between:
// a broken connection (the gateway restarted, say) is reopened and every
// unanswered batch sent again, for up to `reconnectFor`; a report the
// gateway could not store but calls worth retrying (Rejection.retry: a unit
// was stalled or did not answer) is sent again up to `retries` times. Both
// are harmless for what was stored already: the newest ts wins (a report
// without a ts is stamped here, once, so a resend keeps it). Rejections
// that remain come back in the batch's BatchOutcome (by index in the
// batch); a gateway still unreachable after `reconnectFor` (or one never
// reached, after `connectFor`), or one that refused the token, throws
// kj::Exception.
//
// Thread-affinity: as QueryClient (query_client.h).
#pragma once

#include <capnp/message.h>
#include <kj/async-io.h>
#include <kj/timer.h>

#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "locus.capnp.h"
#include "locus/client/rpc_client.h"
#include "locus/common/report.h"

namespace locus::client {

// Reports per call that keep the gateway busy without large messages.
inline constexpr size_t kBatchReports = 1000;

class IngestClient {
 public:
  struct Options {
    size_t callsInFlight = 8;
    kj::Duration callTimeout = 60 * kj::SECONDS;
    // How long a gateway that answered before may stay unreachable, and
    // one that never answered yet (a wrong address fails fast).
    kj::Duration reconnectFor = 30 * kj::SECONDS;
    kj::Duration connectFor = 0 * kj::SECONDS;
    uint32_t retries = 5;
    kj::Duration retryDelay = 200 * kj::MILLISECONDS;  // times the attempt
    // A device token (the gateway's --auth-keys): each connection logs in
    // with it first (pipelined: no round trip is waited for). A refused
    // token is final: send() throws, it is not retried.
    std::string token;
    transport::TlsClientOptions tls;  // on: TLS to the gateway
  };
  // Writes report `i` of a batch.
  using WriteReport = std::function<void(size_t i, wire::Report::Builder out)>;
  // Runs with what became of one batch, in the order sent.
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
  uint64_t reconnects() const { return reconnects_; }
  uint64_t reportsResent() const { return resent_; }
  kj::WaitScope& waitScope() { return rpc_->getWaitScope(); }
  kj::Timer& timer() { return rpc_->getIoProvider().getTimer(); }

 private:
  using Reply = capnp::Response<wire::Ingest::ReportResults>;
  struct Call {
    std::unique_ptr<capnp::MallocMessageBuilder> batch;  // root: the ReportBatch it carries
    std::vector<uint32_t> original;  // the caller's index of each report in `batch`
    BatchOutcome outcome;            // so far, by the caller's indexes
    uint32_t attempt = 0;
    Settled settled;
    std::optional<kj::Promise<Reply>> reply;
  };

  void connect();
  void start(Call& call);
  void settleOldest();
  // Handles the oldest call's reply: true when it is settled, false when
  // some of its reports go again.
  bool handle(Call& call, const Reply& reply);
  // After a failed call: reconnects and resends every call in flight, or
  // rethrows `failure` once reconnectFor has passed.
  void recover(const kj::Exception& failure);

  Options options_;
  std::string address_;
  std::unique_ptr<RpcClient> rpc_;
  std::optional<wire::Ingest::Client> ingest_;
  std::deque<Call> inFlight_;
  std::optional<kj::TimePoint> failingSince_;
  bool answeredOnce_ = false;  // the gateway has answered a call
  kj::Duration backoff_ = 100 * kj::MILLISECONDS;
  uint64_t reconnects_ = 0;
  uint64_t resent_ = 0;
};

}  // namespace locus::client
