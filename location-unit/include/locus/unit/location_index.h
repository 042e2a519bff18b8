// LocationIndex: the latest position of every device of one unit, and the
// exact queries over them.
//
// Thread-affinity: none inside. A LocationIndex belongs to one thread (the
// unit's server loop); callers never share it between threads.
//
// Exactness: every answer equals a brute-force scan of the stored positions
// with the functions of locus/common/geo.h, anywhere on Earth (poles,
// antimeridian) and with ties broken by id. Positions are stored at 1e-7
// degree (geo::quantize), so an answer reports what the index holds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "locus/common/query.h"
#include "locus/common/report.h"

namespace locus::unit {

// The partitions a query answers for (SPEC "Replication and durability"):
// with replicas, the server asks each unit for only the partitions it
// chose that unit for, so that no device is counted twice. A device is in
// when partitionOf(id, partitions) is one of `serve`.
class PartitionFilter {
 public:
  PartitionFilter(uint32_t partitions, const std::vector<uint32_t>& serve);
  bool contains(std::string_view id) const;
  // When the partition count divides 2^16 (a power of two, as the default
  // 256), the low 16 bits of hashId(id) >> 32 decide: containsLowBits.
  bool decidedByLowBits() const { return (uint32_t{1} << 16) % serve_.size() == 0; }
  bool containsLowBits(uint16_t bits) const { return serve_[bits % serve_.size()]; }
  uint32_t partitions() const { return static_cast<uint32_t>(serve_.size()); }
  // The share of partitions served: about the share of devices in.
  double servedFraction() const { return fraction_; }

 private:
  std::vector<bool> serve_;  // by partition
  double fraction_ = 0;
};

struct IndexOptions {
  // Positions whose tsMs is more than ttlMs before "now" are expired: no query
  // sees them, and expire() removes them. 0 = positions never expire.
  int64_t ttlMs = 0;
  // Half-size, in 1e-7 degree, of the box around each device's anchor in the
  // R-tree. A device that moves within it costs no tree update; queries look
  // this much further. 10,000 = 0.001°, ~111 m of latitude. At most 32,767.
  int32_t slackE7 = 10'000;
};

enum class ApplyOutcome {
  kInserted,  // a device the index did not hold
  kMoved,     // a newer position of a known device
  kStale,     // older than the stored position: acknowledged, changed nothing
};

// Bytes the index holds, by part (capacity, not just what is in use).
struct MemoryUsage {
  size_t positions = 0;  // per-device columns: position, tsMs, id ref, anchor
  size_t extras = 0;     // optional speed/heading/accuracy, for devices that send them
  size_t ids = 0;        // the id bytes (with a length byte each)
  size_t idTable = 0;    // the id → device hash table
  size_t tree = 0;       // the R-tree's nodes
  size_t total() const { return positions + extras + ids + idTable + tree; }
};

class LocationIndex {
 public:
  explicit LocationIndex(IndexOptions options = {});
  ~LocationIndex();
  LocationIndex(LocationIndex&&) noexcept;
  LocationIndex& operator=(LocationIndex&&) noexcept;

  // Stores a report unless the stored position of its device is newer
  // (greater tsMs; on equal tsMs the greater position: supersedes()). The one mutation path
  // for live reports and any replay.
  // Precondition: validateReport(report) found nothing.
  ApplyOutcome apply(const Report& report);

  // Bulk loading, for recovery: between beginLoad() and endLoad(), apply()
  // leaves the R-tree alone and endLoad() builds it once, packed, which is
  // several times faster than growing it report by report. The outcome is
  // that of applying the same reports in order. Nothing but apply() may be
  // called in between.
  void beginLoad();
  void endLoad();

  // Forgets a device. False if it was not held.
  bool remove(std::string_view id);

  // Removes expired positions, examining at most maxScan devices from where
  // the previous call stopped (so a sweep can be spread over time). Returns
  // how many were removed. Does nothing without a TTL.
  size_t expire(int64_t nowMs, size_t maxScan = SIZE_MAX);

  // The stored position of one device, if held and not expired at nowMs.
  std::optional<Hit> get(std::string_view id, int64_t nowMs) const;

  // The k nearest devices, ordered by (distance, id); count = hits.size().
  // With `only`, devices outside its partitions are not there for the
  // query. Precondition: validate(query) found nothing.
  QueryResult nearest(const NearestQuery& query, int64_t nowMs,
                      const PartitionFilter* only = nullptr) const;

  // Devices inside a circle (ordered by distance, id), box or polygon
  // (ordered by id); count is every match; `only` as for nearest().
  // Precondition: validate(query).
  QueryResult within(const AreaQuery& query, int64_t nowMs,
                     const PartitionFilter* only = nullptr) const;

  // Calls `visit` with every stored position as a Report (its id views the
  // index: valid during the call only), in no particular order. Expired
  // positions that expire() has not reached yet are included. `visit` must
  // not change the index.
  void forEach(const std::function<void(const Report&)>& visit) const;

  // Calls `visit` with up to `limit` stored positions from position `from`
  // of the index's own order on (devices outside `only` skipped), and
  // returns where the next call should start: size() when it reached the
  // end. Positions are stable while nothing is removed (remove(),
  // expire()); devices stored later come after every earlier one.
  size_t scan(size_t from, size_t limit, const PartitionFilter* only,
              const std::function<void(const Report&)>& visit) const;

  // Devices held, including expired ones that expire() has not reached yet.
  size_t size() const;
  MemoryUsage memoryUsage() const;
  const IndexOptions& options() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace locus::unit
