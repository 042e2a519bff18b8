// locus-bench's report of a run: one JSON object (--json), or an aligned
// table for people.
#pragma once

#include <nlohmann/json.hpp>
#include <ostream>
#include <string>

#include "options.h"
#include "run.h"

namespace locus::bench {

// `system` is "locus" or "redis".
nlohmann::ordered_json toJson(const Options& o, const std::string& system, const RunResult& r);
void printTable(std::ostream& out, const Options& o, const std::string& system, const RunResult& r);

}  // namespace locus::bench
