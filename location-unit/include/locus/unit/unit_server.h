// A location unit as a service: UnitService executes UnitRequest messages
// against one LocationIndex (no sockets, so tests can drive it directly);
// UnitServer serves it on a ZeroMQ ROUTER socket from one thread.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "locus/common/metrics.h"
#include "locus/common/placement.h"
#include "locus/common/report.h"
#include "locus/transport/curve.h"
#include "locus/transport/http_endpoint.h"
#include "locus/unit/location_index.h"
#include "locus/unit/storage.h"

namespace locus::unit {

struct UnitOptions {
  std::string listen = "tcp://0.0.0.0:7900";          // ZeroMQ endpoint; port 0 or * picks one
  std::string name;                                   // empty = the bound endpoint
  int64_t ttlS = 0;                                   // 0 = positions never expire
  int64_t maxFutureSkewMs = kDefaultMaxFutureSkewMs;  // a report's ts at most this far ahead
  std::string httpListen;  // HOST:PORT for /healthz, /readyz, /metrics; empty = off
  std::string dataDir;     // empty = memory-only (storage.h)
  FsyncPolicy fsync = FsyncPolicy::kInterval;
  int64_t fsyncIntervalMs = 10;
  uint64_t snapshotAfterBytes = StorageOptions{}.snapshotAfterBytes;
  uint32_t partitions = kDefaultPartitions;  // the cluster's (--partitions)
  // The cluster's replica count (--replicas): with more than one, the unit
  // starts answering for no partition, until a gateway's catch-up order has
  // brought each from a live replica (it may have missed writes while down).
  uint32_t replicas = 1;
  // CURVE (transport/curve.h): the unit key's keypair file, and the client
  // keys it admits; both or neither. Set, the unit speaks only CURVE.
  std::string curveKey;
  std::string curveClients;

  // The storage these options ask for, or nothing for a memory-only unit.
  std::optional<StorageOptions> storage() const;

  // Why these options cannot work, or nothing.
  std::optional<std::string> validate() const;
};

// The kinds of query a unit answers, as labels on its metrics.
enum class QueryKind { kNearest, kWithin, kGet, kStats };
inline constexpr std::array<const char*, 4> kQueryKindNames{"nearest", "within", "get", "stats"};

// What a unit has done, reported in stats and on /metrics. Written by the
// unit's thread; any thread may read it.
struct UnitCounters {
  metrics::Counter reportsApplied;   // stored (inserted or moved)
  metrics::Counter reportsStale;     // older than what was held
  metrics::Counter reportsRejected;  // failed validation
  metrics::Counter batches;          // apply requests executed
  metrics::Counter queriesServed;    // query requests, answered or refused
  metrics::Counter badMessages;      // requests that could not be read
  // Per QueryKind: queries answered and the time each took in the unit.
  std::array<metrics::Counter, kQueryKindNames.size()> queries;
  std::array<metrics::Histogram, kQueryKindNames.size()> querySeconds;
  metrics::Gauge devices;      // positions held, after the last request
  metrics::Gauge memoryBytes;  // the index's own accounting, refreshed every tick
  // Catch-up: partitions not served, how long since every one was (0 when
  // all are), and positions copied from replicas.
  metrics::Gauge partitionsNotServing;
  metrics::Gauge catchUpSeconds;
  metrics::Counter copiedDevices;

  // Names every metric above in `registry`, labelled unit="<unit>".
  void expose(metrics::Registry& registry, const std::string& unit) const;
};

// A gateway's order to copy partitions from live replicas (CatchUpRequest).
struct CatchUpOrder {
  struct Copy {
    std::string source;                // a replica's endpoint
    std::vector<uint32_t> partitions;  // ascending
  };
  std::vector<Copy> copies;
};

// Which partitions a unit answers for. All of them in a cluster without
// replicas; with replicas none at start, and each once the copies a
// gateway ordered for it are done. A partition not served is still written
// (live writes go on during catch-up); queries answer as if the unit held
// none of its devices, and list it (UnitReply.notServing).
class PartitionStates {
 public:
  PartitionStates(uint32_t partitions, bool serving);

  uint32_t partitions() const { return static_cast<uint32_t>(serving_.size()); }
  bool serving(uint32_t p) const { return serving_[p]; }
  bool allServing() const { return notServing_ == 0; }
  uint32_t notServingCount() const { return notServing_; }
  std::vector<uint32_t> notServing() const;

  // Takes an order: its partitions (and `wait`) stop serving, each until
  // every copy that names it is done. Cancels what an earlier order left
  // running (its partitions stay unserved until an order names them again).
  // `holds`, when not empty, is every partition the unit holds: the others
  // are no longer counted as not served.
  void order(const CatchUpOrder& order, const std::vector<uint32_t>& wait,
             const std::vector<uint32_t>& holds = {});
  // One copy of `partitions` finished; ok = every page was applied.
  void copied(const std::vector<uint32_t>& partitions, bool ok);
  // Partitions a running copy will bring up.
  uint32_t pending() const { return pending_; }

 private:
  void set(uint32_t p, bool serving);

  std::vector<bool> serving_;        // by partition
  std::vector<uint16_t> copiesDue_;  // by partition: copies not finished yet
  uint32_t notServing_ = 0;
  uint32_t pending_ = 0;  // partitions with copiesDue_ > 0
};

class UnitService {
 public:
  // Reports are admitted (admitReport) at the unit's clock with
  // `maxFutureSkewMs`. With `storage`, what its data dir holds is recovered
  // first (it throws std::runtime_error if the dir cannot be used), and
  // every batch is logged before it is applied and answered.
  // `partitions` and `replicas` as UnitOptions'.
  UnitService(std::string name, IndexOptions options,
              int64_t maxFutureSkewMs = kDefaultMaxFutureSkewMs,
              std::optional<StorageOptions> storage = std::nullopt,
              uint32_t partitions = kDefaultPartitions, uint32_t replicas = 1);

  // Executes one request frame and returns the reply frame (a UnitReply).
  // Never throws: an unreadable request gets a typed error reply and changes
  // nothing; a batch is read whole before any report of it is applied.
  // Replies stay within kMaxMessageBytes: an area query without a limit
  // that matches more than kMaxResults devices is refused (badRequest), and
  // a reply that would still be larger is refused whole.
  zmq::message_t handle(const void* data, size_t size, int64_t nowMs);

  // Group commit over a burst of requests (Storage::beginGroup): between
  // the two, a logged batch's reply must not be sent before endGroup()
  // returned; a batch of the group is one whose handle() left
  // appendedRequest() set. With an error from endGroup(), answer those with
  // refuseUnstored() instead.
  void beginGroup();
  std::optional<std::string> endGroup();
  // The request id of the batch the last handle() logged, if it logged one.
  std::optional<uint64_t> appendedRequest() const { return appendedRequest_; }
  zmq::message_t refuseUnstored(uint64_t requestId, const std::string& why);

  // The error reply to a message that is not a request envelope at all
  // (`frames` frames after the peer's identity).
  zmq::message_t refuseEnvelope(size_t frames);

  // The catch-up order the last handle() took, for the server to run.
  std::optional<CatchUpOrder> takeCatchUpOrder();
  // Stores a page copied from a replica, as an apply batch would (logged
  // first, the newest ts wins); the storage's error, or nothing.
  std::optional<std::string> applyCopied(std::span<const Report> reports);
  // One copy of an order finished (ok: every page applied).
  void copyDone(const std::vector<uint32_t>& partitions, bool ok, uint64_t devices);
  const PartitionStates& partitionStates() const { return states_; }
  // What a dump cursor is a position in: changes with every restart and
  // every removal (DumpPage.epoch).
  uint64_t dumpEpoch() const;
  // Seconds since the unit last served every partition; 0 when it does.
  double catchUpSeconds() const;

  // Background work (TTL sweeps), in small slices; call often.
  void tick(int64_t nowMs);
  // The storage's background work (the interval sync, snapshots): call
  // after every burst of requests, and within idleFor() when idle.
  void tickStorage();
  std::chrono::milliseconds idleFor() const;

  const LocationIndex& index() const { return index_; }
  const UnitCounters& counters() const { return counters_; }
  const std::string& name() const { return name_; }
  uint64_t incarnation() const { return incarnation_; }
  // Null for a memory-only unit.
  const Storage* storage() const { return storage_.get(); }
  // Why the storage failed for good, or nothing (memory-only: nothing).
  std::optional<std::string> storageFailure() const {
    return storage_ ? storage_->brokenBecause() : std::nullopt;
  }
  void setName(std::string name) { name_ = std::move(name); }

 private:
  class Handler;

  zmq::message_t refuse(uint64_t requestId, const std::string& problem);

  std::string name_;
  uint64_t incarnation_;  // random, drawn at construction; never 0
  int64_t maxFutureSkewMs_;
  LocationIndex index_;
  std::unique_ptr<Storage> storage_;  // null: memory-only
  std::optional<uint64_t> appendedRequest_;
  PartitionStates states_;
  std::optional<CatchUpOrder> order_;  // taken by handle(), not yet started
  uint64_t copiedDevices_ = 0;
  // When it stopped serving every partition (meaningful while one is not).
  std::chrono::steady_clock::time_point notServingSince_ = std::chrono::steady_clock::now();
  uint64_t startNonce_;    // random per start, for dumpEpoch()
  uint64_t removals_ = 0;  // devices expired since start
  UnitCounters counters_;
  std::chrono::steady_clock::time_point lastWarning_{};
  std::chrono::steady_clock::time_point lastDump_{};  // the last dump page read
};

class UnitServer {
 public:
  // Binds the socket, and the HTTP endpoint when options.httpListen is set.
  // Throws zmq::error_t when the endpoint cannot be bound (bad address,
  // address in use), std::runtime_error when the HTTP address cannot.
  UnitServer(zmq::context_t& context, const UnitOptions& options);
  ~UnitServer();
  UnitServer(const UnitServer&) = delete;
  UnitServer& operator=(const UnitServer&) = delete;

  // The endpoint actually bound (with the port chosen for port 0).
  const std::string& endpoint() const { return endpoint_; }
  const UnitService& service() const { return service_; }

  // "HOST:PORT" of the HTTP endpoint, or empty when options.httpListen was.
  std::string httpAddress() const { return http_ ? http_->address() : std::string(); }

  // Serves requests until `stopFd` becomes readable (an eventfd or signalfd),
  // then answers the requests already received (for up to a second) and
  // lets their replies leave before returning. Reads --curve-clients again
  // whenever `reloadFd` (a SIGHUP signalfd) is readable.
  void run(int stopFd, int reloadFd = -1);

 private:
  // Answers up to `max` requests waiting on the socket; how many it did.
  size_t serveQueued(size_t max);

  class Copier;
  // Before the socket: the ZAP handler must be there when it binds.
  std::unique_ptr<transport::CurveGate> gate_;
  std::unique_ptr<transport::UnitLinkCredentials> links_;  // the copier's, toward peers
  zmq::socket_t socket_;
  std::string endpoint_;
  UnitService service_;
  std::atomic<bool> serving_{false};  // run() is taking requests: /readyz
  std::unique_ptr<Copier> copier_;    // runs catch-up orders
  metrics::Registry registry_;
  std::unique_ptr<transport::HttpEndpoint> http_;  // declared last: stops before what it reads
};

}  // namespace locus::unit
