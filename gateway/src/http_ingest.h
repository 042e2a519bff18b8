// Ingest over HTTP (private to locus::gateway): POST /v1/reports on the
// gateway's `--http-listen`, for producers that speak HTTP only.
//
// The body is NDJSON (one report a line, as the text port takes) or a JSON
// array of reports. Every report gets one result, in order, as the text
// port gives them ({"ok":true} once stored on the replicas --acks names, or
// {"ok":false,"error":"..."}): NDJSON lines for NDJSON, a JSON array for an
// array. The status is 200 when the body could be read, even if some
// reports were refused (each says why); 400 when it is not NDJSON or an
// array, 413 beyond kMaxHttpReports reports, 503 while stopping. With
// device tokens required, "Authorization: Bearer TOKEN" on every request:
// 401 without one or with one that does not verify; reports outside its
// scope are refused one by one.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ingest_service.h"
#include "locus/gateway/gateway.h"
#include "locus/gateway/router.h"
#include "locus/transport/http_server.h"

namespace locus::gateway {

// The most reports one request may carry.
inline constexpr size_t kMaxHttpReports = 10'000;

// Ownership: what `context` names must outlive the routes.
transport::HttpRoutes httpIngest(IngestContext context);

}  // namespace locus::gateway
