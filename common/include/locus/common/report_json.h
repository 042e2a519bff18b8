// Position reports as NDJSON lines, the device-facing text protocol:
// {"id":"truck-7","lat":31.23,"lon":121.47,"ts":1763000000000}
// with optional "speed_mps", "heading_deg", "accuracy_m". Unknown fields are
// ignored. Shared by the gateway (which reads lines) and `locus send`.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>

#include "locus/common/report.h"
#include "locus/common/status.h"

namespace locus {

// The longest line the text protocol accepts, newline excluded.
inline constexpr size_t kMaxLineBytes = 4096;

// A report that owns its id. `fields.id` stays empty (a view into `id`
// would dangle when the struct moves); view() gives the complete Report.
struct OwnedReport {
  std::string id;
  Report fields;
  Report view() const {
    Report r = fields;
    r.id = id;
    return r;
  }
};

// Parses and validates one line. ts absent → 0 (the gateway stamps it). The
// error says what to fix: invalid JSON, not an object, a missing or
// wrongly-typed field, or anything validateReport refuses.
Result<OwnedReport> parseReportLine(std::string_view line);
// The same for a report already parsed as JSON (an element of an array).
Result<OwnedReport> reportFromJson(const nlohmann::json& report);

// The line for a report (the inverse of parseReportLine).
std::string reportToJsonLine(const Report& report);

}  // namespace locus
