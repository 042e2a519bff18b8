// Routing of validated reports to their units. A report belongs to a
// partition (partitionOf) placed on R replicas (Placement); it is copied to
// each replica that is not stalled, and its slot needs one stored copy
// (--acks 1) or every copy sent (--acks all: every replica that is up).
// A replica skipped because it was stalled, or whose batch failed, is
// marked behind: it may have missed writes, and the catch-up coordinator
// makes it copy its partitions again before it serves them.
//
// Per unit a buffer, flushed
// as one `apply` batch when it holds `batchReports` reports or `flushDelayUs`
// after its first report, with a bounded window of batches in flight per
// unit and a bound on what waits in the buffers (backpressure).
//
// Every report carries a slot of its call's Acks (acks.h), settled when
// its unit answers the batch: stored once the unit applied it (and logged
// it, with --data-dir), failed with the reason otherwise — the unit refused
// the batch, it could not be queued, or no answer came within
// `batchTimeoutMs`. So a device hears `ok` only for what a unit stored.
//
// A stalled unit holds back only its own share: once a unit has left a
// batch unanswered for `batchTimeoutMs`, reports for it are refused (the
// device gets an error, not an ok) and no longer count against readiness,
// so the other units' reports flow on; the first answer, to a batch or to
// the probe the router sends meanwhile, ends the stall.
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
#include "locus/common/placement.h"
#include "locus/common/report.h"
#include "locus/common/report_json.h"
#include "locus/gateway/acks.h"
#include "locus/transport/unit_channel.h"  // namespace locus::transport

namespace locus::gateway {

// How many replicas must store a report before it is acknowledged.
enum class AckPolicy {
  kOne,  // the first replica that stored it
  kAll,  // every replica it was sent to: those that were up (not stalled)
};
std::optional<AckPolicy> parseAckPolicy(std::string_view text);
const char* toString(AckPolicy policy);

struct RouterOptions {
  uint32_t partitions = kDefaultPartitions;  // the cluster's (--partitions)
  uint32_t replicas = 0;                     // 0 = defaultReplicas(units)
  AckPolicy acks = AckPolicy::kAll;
  size_t batchReports = 1000;          // a shard's buffer is sent once it holds this many
  int64_t flushDelayUs = 1000;         // ... or this long after its first report
  size_t maxInFlightBatches = 8;       // per unit: batches sent and not yet answered
  size_t maxBufferedReports = 20'000;  // per unit: waiting to be sent; above it, readers wait
  int64_t batchTimeoutMs = 2000;       // a batch unanswered by then fails its reports (they
                                       // may still be applied); a unit silent that long is stalled

  // Why these options cannot work for `units` units, or nothing.
  std::optional<std::string> validate(size_t units) const;
  // The replica count for `units` units.
  uint32_t replicasFor(size_t units) const {
    return replicas != 0 ? replicas : defaultReplicas(static_cast<uint32_t>(units));
  }
};

// What the router did so far. Written by the router's thread; any thread
// may read it.
//
// None of these reports was acknowledged: each got an error. A report is
// *lost* when no unit can have applied it (its batch could not be queued,
// or the unit refused the batch); a batch unanswered by its deadline is
// *unconfirmed* (it may still be applied: ZeroMQ delivers what it queued
// once the unit is back) and moves to *applied late* when its answer comes
// after all.
struct RouterCounters {
  metrics::Counter reportsRouted;          // reports added to a buffer
  metrics::Counter batchesSent;            // apply batches handed to a unit's socket
  metrics::Counter reportsSent;            // the reports in those batches
  metrics::Counter batchesApplied;         // ... answered by the unit with `applied`
  metrics::Counter batchesRefused;         // ... answered with an error: not applied
  metrics::Counter batchesUnsendable;      // ... that could not be queued: not applied
  metrics::Counter batchesUnanswered;      // ... with no answer by their deadline
  metrics::Counter batchesLate;            // ... of those, answered `applied` after it
  metrics::Counter reportsLost;            // reports of refused and unsendable batches
  metrics::Counter reportsUnconfirmed;     // reports of unanswered batches
  metrics::Counter reportsAppliedLate;     // reports of late-answered batches
  metrics::Counter reportsRejected;        // reports the units refused (should stay 0: we validate)
  metrics::Counter reportsRefusedStalled;  // not acknowledged: their unit was stalled
  metrics::Counter reportsUnsent;          // of those, routed but failed in the buffer
  metrics::Counter copiesSkipped;          // copies not sent: their replica was stalled

  // Names every metric above in `registry`, and the reports waiting in the
  // buffers (routed, not yet sent).
  void expose(metrics::Registry& registry) const;
};

// Thread-affinity: construct, call and destroy on the thread that runs the
// KJ event loop of `eventPort` and `timer`. Ownership: outlives every
// promise it returned.
class Router {
 public:
  // Connects one UnitChannel per unit (unit number = position in `units`).
  // Throws zmq::error_t on a malformed endpoint. Precondition:
  // options.validate(units.size()) passed and `units` is not empty.
  Router(const RouterOptions& options, zmq::context_t& context, kj::UnixEventPort& eventPort,
         kj::Timer& timer, const std::vector<std::string>& units);
  ~Router();
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  uint32_t shardCount() const { return static_cast<uint32_t>(shards_.size()); }
  const Placement& placement() const { return placement_; }
  // Whether `unit` has left a batch unanswered for batchTimeoutMs, or its
  // probes say it is down (setDown).
  bool stalled(uint32_t unit) const { return stalled(*shards_[unit]); }
  // What the catch-up coordinator's probes found: a unit that is down is
  // treated as stalled at once, without waiting for a batch to time out.
  void setDown(uint32_t unit, bool down);
  // Whether `unit` may have missed writes since the last call (a copy was
  // skipped or failed), and forgets it.
  bool takeBehind(uint32_t unit);
  // The channel to each unit, in shard order (for their health).
  std::vector<const transport::UnitChannel*> channels() const;

  // Buffers a copy of `report` for each replica of its partition that is
  // not stalled; slot `slot` of `acks` is settled when enough of them
  // answered (the ack policy), or at once (failed) when every replica is
  // stalled. Precondition: admitReport(report) passed.
  void add(const Report& report, Acks& acks, uint32_t slot);

  // Resolves when every shard's buffer is below maxBufferedReports or its
  // unit is stalled: a connection waits on it before it reads (and
  // acknowledges) more. close() resolves every wait; a wait that starts
  // after it never resolves: check closing().
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

  // A report in a buffer or a batch, and the slot it settles.
  struct Entry {
    OwnedReport report;
    kj::Own<Acks> acks;
    uint32_t slot = 0;
  };

 private:
  struct Shard;

  // Sends as many batches of `shard` as its window and flush rule allow.
  void pump(uint32_t shard);
  void send(uint32_t shard, size_t count);
  // What became of one batch (`entries` empty for a probe).
  void answered(uint32_t shard, uint64_t requestId, std::vector<Entry>& entries,
                transport::UnitCallResult&& reply);
  bool stalled(const Shard& shard) const;
  std::string stalledReason(const Shard& shard) const;
  // Fails what waits in a stalled shard's buffer, as add() would refuse it.
  void refuseBuffered(Shard& shard);
  void notifyIfReady();
  // Wakes the waiters when the first shard holding them up turns stalled.
  void armStallCheck();

  // Marks a unit that may have missed writes (a copy skipped or failed).
  void markBehind(Shard& shard);
  // Tells a unit that is behind and answers again to stop serving, if it
  // was not told yet.
  void stopIfBehind(Shard& shard);
  // Buffers one copy for `unit`.
  void buffer(uint32_t unit, const Report& report, Acks& acks, uint32_t slot);

  RouterOptions options_;
  Placement placement_;
  kj::Timer& timer_;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::vector<kj::Own<kj::PromiseFulfiller<void>>> waiters_;  // whenReady() callers
  RouterCounters counters_;
  bool closing_ = false;
  bool stallCheckArmed_ = false;
  class ErrorHandler;
  std::unique_ptr<ErrorHandler> errorHandler_;
  std::unique_ptr<kj::TaskSet> tasks_;  // flush timers and batches in flight; destroyed first
};

}  // namespace locus::gateway
