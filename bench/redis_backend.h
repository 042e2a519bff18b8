// locus-bench's Redis GEO backend: the same workload against a redis-server,
// for comparison (SPEC, "The city workload"). Reports become pipelined
// GEOADD commands of kBatchReports members; a nearest-k query is
// GEOSEARCH key FROMLONLAT lon lat BYRADIUS 500 m ASC COUNT k WITHDIST.
//
// The devices live in one sorted set, kRedisKey, which the backend deletes
// when it is created: point it at a scratch server. Memory is the growth of
// INFO memory's used_memory (and used_memory_rss) since then.
#pragma once

#include <memory>
#include <string>

#include "backend.h"

namespace locus::bench {

inline constexpr const char* kRedisKey = "locus-bench:devices";
inline constexpr double kRedisRadiusM = 500;

// `address` is HOST:PORT. Throws if the server cannot be reached.
std::unique_ptr<Backend> makeRedisBackend(const std::string& address, const Deadline& deadline);

}  // namespace locus::bench
