// A unit's durable storage (`locus-unit --data-dir DIR`): an append-only log
// of the batches it applied, and snapshots that let it drop the log.
//
// DIR holds
//   INCARNATION          this data's id (hex), drawn when DIR was first used
//   LOCK                 held (flock) while a unit uses DIR: one unit per dir
//   log-<n>.locus        batch records (log_format.h), one file per start or
//                        snapshot, replayed in order of n
//   snapshot-<n>.locus   every device's newest position, covering all logs
//                        before log-<n>; written to a .tmp, synced, renamed
//
// Recovery replays the newest snapshot, then the logs from its number on.
// A record cut short or failing its checksum ends its file: the file is cut
// there (a torn tail after a crash), and said in the log. Each start begins
// a new log file; a snapshot is written once the logs hold more than
// `snapshotAfterBytes` and more than the last snapshot, so the data on disk
// stays within about twice what the unit holds and recovery time follows
// the data size, not the history.
//
// Thread-affinity: one thread (the unit's loop), like the index.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "locus/common/metrics.h"
#include "locus/common/report.h"
#include "locus/unit/location_index.h"

namespace locus::unit {

// When an applied batch reaches the disk, not just the OS:
//   always    before the unit answers the batch: a machine crash loses
//             nothing acknowledged;
//   interval  within `fsyncInterval` of being answered: a machine crash
//             (not a process crash) can lose that last interval;
//   never     when the OS writes it back: a machine crash can lose the
//             last ~30 s (the kernel's writeback).
// In every mode a batch is written to the file before it is answered, so a
// killed unit process loses nothing.
enum class FsyncPolicy { kAlways, kInterval, kNever };
std::optional<FsyncPolicy> parseFsyncPolicy(std::string_view text);
const char* toString(FsyncPolicy policy);

struct StorageOptions {
  std::string dir;
  FsyncPolicy fsync = FsyncPolicy::kInterval;
  std::chrono::milliseconds fsyncInterval{10};
  uint64_t snapshotAfterBytes = uint64_t{64} << 20;
};

// What a start found in DIR.
struct Recovery {
  bool fresh = false;            // DIR was new or empty: a new incarnation
  uint64_t snapshotReports = 0;  // positions read from the snapshot
  uint64_t logRecords = 0;       // batches replayed from the logs after it
  uint64_t logReports = 0;
  uint64_t cutBytes = 0;  // torn or corrupt bytes cut off
  double seconds = 0;     // to read and apply everything
};

// What the storage did, for /metrics. Written by the unit's thread.
struct StorageCounters {
  metrics::Counter appends;         // batches written to the log
  metrics::Counter appendErrors;    // batches refused: could not be written
  metrics::Counter syncs;           // fdatasync calls that succeeded
  metrics::Counter snapshots;       // snapshots written
  metrics::Counter snapshotErrors;  // snapshots that failed (the logs stay)
  metrics::Gauge logBytes;          // bytes in the logs since the snapshot
  metrics::Gauge snapshotSeconds;   // how long the last snapshot took
  metrics::Gauge writable;          // 1 while writes are taken, 0 after a failed sync
};

class Storage {
 public:
  // Opens DIR (creating it), locks it, and replays what it holds into
  // `index` (which must be empty). Throws std::runtime_error with the reason
  // when DIR cannot be used (not a directory, no permission, locked by
  // another unit, unreadable files).
  Storage(StorageOptions options, LocationIndex& index);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  uint64_t incarnation() const { return incarnation_; }
  // Why writes are refused for good (a failed sync), or nothing.
  const std::optional<std::string>& brokenBecause() const { return failed_; }
  const Recovery& recovery() const { return recovery_; }
  const StorageOptions& options() const { return options_; }
  const StorageCounters& counters() const { return counters_; }

  // Writes one batch to the log, and with FsyncPolicy::kAlways syncs it.
  // On an error (a full disk, an I/O error) the batch is not acknowledged:
  // the caller must not apply it, and says why. After a failed sync every
  // later write is refused: what the kernel dropped cannot be told apart.
  std::optional<std::string> append(std::span<const Report> reports);

  // Group commit: between beginGroup() and endGroup(), FsyncPolicy::kAlways
  // syncs once, at endGroup(), for every batch appended in between; the
  // caller answers those batches only after endGroup() (with its error, if
  // it returns one).
  void beginGroup() { grouping_ = true; }
  std::optional<std::string> endGroup();

  // Background work, called often from the unit's loop: the interval sync,
  // and a snapshot of `index` when the logs have grown enough.
  void tick(const LocationIndex& index);
  // How long the loop may sleep before tick() has work (the interval sync).
  std::chrono::milliseconds idleFor() const;

  // Writes a snapshot of `index` now and drops the logs it covers.
  std::optional<std::string> snapshot(const LocationIndex& index);

 private:
  std::optional<std::string> sync();
  void openNextLog();

  StorageOptions options_;
  uint64_t incarnation_ = 0;
  Recovery recovery_;
  StorageCounters counters_;
  int lockFd_ = -1;
  int logFd_ = -1;
  uint64_t logSeq_ = 0;        // n of the log being written
  uint64_t logBytes_ = 0;      // bytes in the logs since the last snapshot
  uint64_t logFileBytes_ = 0;  // bytes in the current log file
  uint64_t lastSnapshotBytes_ = 0;
  bool dirty_ = false;                 // appended since the last sync
  bool grouping_ = false;              // between beginGroup() and endGroup()
  std::optional<std::string> failed_;  // why writes are refused for good
  std::chrono::steady_clock::time_point lastSync_;
  std::chrono::steady_clock::time_point nextSnapshotTry_{};
  std::string buffer_;
};

}  // namespace locus::unit
