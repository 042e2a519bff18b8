// locus-bench's PostGIS backend: the same workload against PostgreSQL with
// PostGIS, the system most people would pick instead (SPEC, "The city
// workload"). Devices are rows of kPostgisTable (id text primary key,
// g geometry(Point, 4326), a GiST index on g); reports become batched
// upserts (INSERT .. ON CONFLICT (id) DO UPDATE, kPostgisBatchRows rows a
// statement, a few in flight); a nearest-k query is the index's KNN,
// `ORDER BY g <-> point LIMIT k`, its rows then ordered by great-circle
// distance. Queries in flight on one connection use libpq's pipeline mode.
//
// The backend drops and recreates the table when it is created: point it at
// a scratch database. Memory is the table's and its indexes' size; CPU is
// the postmaster's and its backends' (on this machine, from /proc).
#pragma once

#include <memory>
#include <string>

#include "backend.h"

namespace locus::bench {

inline constexpr const char* kPostgisTable = "locus_bench_devices";
inline constexpr size_t kPostgisBatchRows = 1000;

// `conninfo` is a libpq connection string ("host=127.0.0.1 port=5432
// user=postgres dbname=postgres"). Throws if the server cannot be reached or
// has no PostGIS.
std::unique_ptr<Backend> makePostgisBackend(const std::string& conninfo, const Deadline& deadline);

}  // namespace locus::bench
