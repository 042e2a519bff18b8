// The SPEC's JSON shapes for answers, shared by every client that prints them.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>

#include "locus/common/query.h"

namespace locus {

// {"id","lat","lon","ts"[,"distance_m"][,"speed_mps"][,"heading_deg"][,"accuracy_m"]}
nlohmann::ordered_json toJson(const Hit& hit);

// {"results":[...],"count":N,"partial":B,"shards":{"total":T,"answered":A},
//  ["partitions":{"total":P,"answered":Q},]"took_us":U}
nlohmann::ordered_json toJson(const QueryResult& result, Coverage shards, uint64_t tookUs);

// {"name","devices","reports_applied","reports_stale","reports_rejected","queries_served","memory_bytes"}
nlohmann::ordered_json toJson(const UnitStats& stats);

// {"units":[...],"partial":B,"shards":{...},"partitions":P,"replicas":R}
nlohmann::ordered_json toJson(const ClusterStats& stats);

// {"error":"..."}
nlohmann::ordered_json errorJson(const std::string& message);

}  // namespace locus
