#include "locus/common/report_json.h"

#include <fmt/format.h>

#include <cmath>
#include <nlohmann/json.hpp>

namespace locus {
namespace {

using nlohmann::json;

// Reads an optional number field into `out`; an error names the field.
std::optional<std::string> optionalFloat(const json& j, const char* name, float& out) {
  const auto it = j.find(name);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (!it->is_number()) return fmt::format("\"{}\" must be a number", name);
  out = it->get<float>();
  return std::nullopt;
}

}  // namespace

Result<OwnedReport> parseReportLine(std::string_view line) {
  if (line.size() > kMaxLineBytes) {
    return badRequest(
        fmt::format("line is {} bytes; at most {} are allowed", line.size(), kMaxLineBytes));
  }
  const json j = json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return badRequest("invalid JSON");
  return reportFromJson(j);
}

Result<OwnedReport> reportFromJson(const nlohmann::json& j) {
  if (!j.is_object())
    return badRequest("expected a JSON object such as {\"id\":..,\"lat\":..,\"lon\":..}");

  OwnedReport out;
  const auto id = j.find("id");
  if (id == j.end()) return badRequest("missing \"id\"");
  if (!id->is_string()) return badRequest("\"id\" must be a string");
  out.id = id->get<std::string>();

  for (const auto& [name, target] : {std::pair{"lat", &out.fields.lat}, {"lon", &out.fields.lon}}) {
    const auto it = j.find(name);
    if (it == j.end()) return badRequest(fmt::format("missing \"{}\"", name));
    if (!it->is_number()) return badRequest(fmt::format("\"{}\" must be a number", name));
    *target = it->get<double>();
  }

  if (const auto ts = j.find("ts"); ts != j.end() && !ts->is_null()) {
    if (ts->is_number_integer()) {
      if (ts->is_number_unsigned() && ts->get<uint64_t>() > uint64_t(INT64_MAX)) {
        return badRequest("\"ts\" is out of range");
      }
      out.fields.tsMs = ts->get<int64_t>();
    } else if (ts->is_number_float() && std::trunc(ts->get<double>()) == ts->get<double>() &&
               std::abs(ts->get<double>()) < 9e15) {
      out.fields.tsMs = static_cast<int64_t>(ts->get<double>());
    } else {
      return badRequest("\"ts\" must be whole milliseconds since the Unix epoch");
    }
  }
  if (auto e = optionalFloat(j, "speed_mps", out.fields.speedMps)) return badRequest(*e);
  if (auto e = optionalFloat(j, "heading_deg", out.fields.headingDeg)) return badRequest(*e);
  if (auto e = optionalFloat(j, "accuracy_m", out.fields.accuracyM)) return badRequest(*e);

  if (auto e = validateReport(out.view())) return badRequest(*e);
  return out;
}

std::string reportToJsonLine(const Report& r) {
  json j = {{"id", std::string(r.id)}, {"lat", r.lat}, {"lon", r.lon}};
  if (r.tsMs != 0) j["ts"] = r.tsMs;
  if (!std::isnan(r.speedMps)) j["speed_mps"] = r.speedMps;
  if (!std::isnan(r.headingDeg)) j["heading_deg"] = r.headingDeg;
  if (!std::isnan(r.accuracyM)) j["accuracy_m"] = r.accuracyM;
  return j.dump();
}

}  // namespace locus
