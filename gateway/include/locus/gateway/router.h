// Routing of validated reports to their units: per shard a buffer, flushed
// as one `apply` batch when it holds `batchReports` reports or `flushDelayUs`
// after its first report, with a bounded window of batches in flight per
// unit and a bound on what waits in the buffers (backpressure).
#pragma once

#include <kj/async-unix.h>
#include <kj/async.h>
#include <kj/timer.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "locus/common/metrics.h"
#include "locus/common/report.h"

namespace locus::server {
class UnitChannel;
}

namespace locus::gateway {

struct RouterOptions {
  size_t batchReports = 1000;          // a shard's buffer is sent once it holds this many
  int64_t flushDelayUs = 1000;         // ... or this long after its first report
  size_t maxInFlightBatches = 8;       // per unit: batches sent and not yet answered
  size_t maxBufferedReports = 20'000;  // per unit: waiting to be sent; above it, readers wait
  int64_t batchTimeoutMs = 2000;       // a batch unanswered by then is counted lost, not retried

  // Why these options cannot work, or nothing.
  std::optional<std::string> validate() const;
};

// What the router did so far. Written by the router's thread; any thread
// may read it.
struct RouterCounters {
  metrics::Counter reportsRouted;    // reports added to a buffer
  metrics::Counter batchesSent;      // apply batches handed to a unit's socket
  metrics::Counter reportsSent;      // the reports in those batches
  metrics::Counter batchesApplied;   // ... answered by the unit with `applied`
  metrics::Counter batchesLost;      // ... unanswered by their deadline, unsendable or refused
  metrics::Counter reportsLost;      // reports in the lost batches
  metrics::Counter reportsRejected;  // reports the units refused (should stay 0: we validate)

  // Names every metric above in `registry`, and the reports waiting in the
  // buffers (routed, not yet sent).
  void expose(metrics::Registry& registry) const;
};

// Thread-affinity: construct, call and destroy on the thread that runs the
// KJ event loop of `eventPort` and `timer`. Ownership: outlives every
// promise it returned.
class Router {
 public:
  // Connects one UnitChannel per unit (shard id = position in `units`).
  // Throws zmq::error_t on a malformed endpoint. Precondition:
  // options.validate() passed and `units` is not empty.
  Router(const RouterOptions& options, zmq::context_t& context, kj::UnixEventPort& eventPort,
         kj::Timer& timer, const std::vector<std::string>& units);
  ~Router();
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  uint32_t shardCount() const { return static_cast<uint32_t>(shards_.size()); }
  // The channel to each unit, in shard order (for their health).
  std::vector<const server::UnitChannel*> channels() const;

  // Buffers a copy of `report` for the shard that owns its id. Precondition:
  // validateReport(report) passed and tsMs is stamped (not 0).
  void add(const Report& report);

  // Resolves when every shard's buffer is below maxBufferedReports: a
  // connection waits on it before it reads (and acknowledges) more. Never
  // resolves once close() ran.
  kj::Promise<void> whenReady();
  bool ready() const;

  // Stops admitting: whenReady() never resolves again, closing() is true,
  // and every buffer is sent as soon as the window allows, without waiting
  // for the flush delay.
  void close();
  bool closing() const { return closing_; }

  // Nothing is buffered or in flight.
  bool idle() const;

  const RouterCounters& counters() const { return counters_; }

 private:
  struct Shard;

  // Sends as many batches of `shard` as its window and flush rule allow.
  void pump(uint32_t shard);
  void send(uint32_t shard, size_t count);
  void notifyIfReady();

  RouterOptions options_;
  kj::Timer& timer_;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::vector<kj::Own<kj::PromiseFulfiller<void>>> waiters_;  // whenReady() callers
  RouterCounters counters_;
  bool closing_ = false;
  class ErrorHandler;
  std::unique_ptr<ErrorHandler> errorHandler_;
  std::unique_ptr<kj::TaskSet> tasks_;  // flush timers and batches in flight; destroyed first
};

}  // namespace locus::gateway
