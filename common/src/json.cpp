#include "locus/common/json.h"

#include <fmt/format.h>

#include <cmath>

namespace locus {

nlohmann::ordered_json toJson(const Hit& hit) {
  nlohmann::ordered_json j = {{"id", hit.id}, {"lat", hit.lat}, {"lon", hit.lon}, {"ts", hit.tsMs}};
  if (!std::isnan(hit.distanceM)) j["distance_m"] = hit.distanceM;
  if (!std::isnan(hit.speedMps)) j["speed_mps"] = hit.speedMps;
  if (!std::isnan(hit.headingDeg)) j["heading_deg"] = hit.headingDeg;
  if (!std::isnan(hit.accuracyM)) j["accuracy_m"] = hit.accuracyM;
  return j;
}

nlohmann::ordered_json toJson(const QueryResult& result, Coverage shards, uint64_t tookUs) {
  nlohmann::ordered_json results = nlohmann::ordered_json::array();
  for (const Hit& hit : result.hits) results.push_back(toJson(hit));
  nlohmann::ordered_json j = {{"results", std::move(results)},
                              {"count", result.count},
                              {"partial", shards.partial()},
                              {"shards", {{"total", shards.total}, {"answered", shards.answered}}}};
  if (shards.partitions > 0) {
    j["partitions"] = {{"total", shards.partitions}, {"answered", shards.partitionsAnswered}};
  }
  j["took_us"] = tookUs;
  return j;
}

nlohmann::ordered_json toJson(const UnitStats& s) {
  return {{"name", s.name},
          {"devices", s.devices},
          {"reports_applied", s.reportsApplied},
          {"reports_stale", s.reportsStale},
          {"reports_rejected", s.reportsRejected},
          {"queries_served", s.queriesServed},
          {"memory_bytes", s.memoryBytes},
          {"incarnation", fmt::format("{:016x}", s.incarnation)},
          {"storage", s.durable ? nlohmann::ordered_json{{"durable", true},
                                                         {"writable", s.writable},
                                                         {"log_bytes", s.logBytes}}
                                : nlohmann::ordered_json{{"durable", false}}},
          {"partitions",
           {{"total", s.partitions},
            {"not_serving", s.notServing.size()},
            {"catching_up", s.copying},
            {"catch_up_pending", s.catchUpPending},
            {"catch_up_seconds", s.catchUpSeconds},
            {"copied_devices", s.copiedDevices}}}};
}

nlohmann::ordered_json toJson(const ClusterStats& stats) {
  nlohmann::ordered_json units = nlohmann::ordered_json::array();
  for (const auto& u : stats.units) units.push_back(toJson(u));
  return {{"units", std::move(units)},
          {"partial", stats.partial()},
          {"shards", {{"total", stats.shards.total}, {"answered", stats.shards.answered}}},
          {"partitions", stats.partitions},
          {"replicas", stats.replicas}};
}

nlohmann::ordered_json errorJson(const std::string& message) {
  return {{"error", message}};
}

}  // namespace locus
