// A position report as plain C++ values, and the one validation every entry
// point (gateway protocols, units) applies before a report changes anything.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "locus/common/auth.h"

namespace locus {

inline constexpr size_t kMaxIdBytes = 128;
inline constexpr float kAbsent = std::numeric_limits<float>::quiet_NaN();

struct Report {
  std::string_view id;         // UTF-8, 1..kMaxIdBytes bytes, no control characters
  double lat = 0;              // degrees
  double lon = 0;              // degrees
  int64_t tsMs = 0;            // ms since the Unix epoch; 0 = unset (stamped by the gateway)
  float speedMps = kAbsent;    // NaN = absent
  float headingDeg = kAbsent;  // NaN = absent
  float accuracyM = kAbsent;   // NaN = absent
};

// Whether a report at (tsMs, latE7, lonE7) replaces the stored one at
// (heldTs, heldLatE7, heldLonE7): a device is a last-writer-wins register
// ordered by ts, ties broken by the position (the greater latitude, then
// longitude, wins), so that replicas receiving the same reports in any
// order, and catch-up merging them, end in the same state (SPEC
// "Replication and durability"). An equal ts and position replaces (the
// optional attributes may differ: the later arrival's are kept).
inline bool supersedes(int64_t tsMs, int32_t latE7, int32_t lonE7, int64_t heldTs,
                       int32_t heldLatE7, int32_t heldLonE7) {
  if (tsMs != heldTs) return tsMs > heldTs;
  if (latE7 != heldLatE7) return latE7 > heldLatE7;
  return lonE7 >= heldLonE7;
}

// What became of a batch of reports.
struct BatchOutcome {
  uint32_t accepted = 0;  // valid reports, stale ones included
  uint32_t stale = 0;     // of the accepted, older than the stored position
  std::vector<std::pair<uint32_t, std::string>> rejected;  // index in the batch, reason
  std::vector<uint32_t> retryable;  // of the rejected, those worth sending again (ascending)
};

// Why `id` is not a valid device id, or nothing when it is.
std::optional<std::string> validateId(std::string_view id);

// Why `report` must be rejected, or nothing when it is valid. The reason is
// one line a person can act on ("lat 95 is out of range [-90, 90]").
std::optional<std::string> validateReport(const Report& report);

// How far a report's ts may run ahead of its receiver's clock by default
// (SPEC: `--max-future-skew`, 5 minutes). A report from further ahead would
// win over every real report of its device until that time came.
inline constexpr int64_t kDefaultMaxFutureSkewMs = 5 * 60 * 1000;

// What a receiver (a gateway protocol, a unit) checks a report against.
struct Admission {
  int64_t nowMs = 0;                                  // the receiver's wall clock
  int64_t maxFutureSkewMs = kDefaultMaxFutureSkewMs;  // >= 0
  const char* receiver = "receiver";                  // named in reasons: "gateway", "unit"
  // When set, only the ids this device token allows (the gateway with
  // --auth-keys); the others are refused one by one.
  const auth::DeviceScope* scope = nullptr;
};

// The one admission path of every entry point: stamps an unset ts (0) with
// admission.nowMs, then validates the report (validateReport) and refuses a
// ts more than maxFutureSkewMs ahead of nowMs. Why it must be rejected, or
// nothing when `report` may be applied.
std::optional<std::string> admitReport(Report& report, const Admission& admission);

}  // namespace locus
