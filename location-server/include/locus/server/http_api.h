// The server's HTTP/JSON API (SPEC "HTTP API"), under /v1/ on its
// `--http-listen`: the same queries, limits and JSON shapes as the CLI,
// answered from the event loop through the same ScatterGather as the RPC
// interface.
//
//   GET  /v1/nearest?lat&lon[&k][&max_distance_m][&max_age_s]
//   GET  /v1/radius?lat&lon&radius_m[&limit][&count][&max_age_s]
//   GET  /v1/box?south&west&north&east[&limit][&count][&max_age_s]
//   GET  /v1/grid?bbox=WEST,SOUTH,EAST,NORTH[&columns=64][&rows=32][&max_age_s]
//   POST /v1/polygon[?limit][&count][&max_age_s]   body: any GeoJSON area
//   GET  /v1/devices/{id}
//   GET  /v1/stats
//   GET  /v1/stream?bbox=WEST,SOUTH,EAST,NORTH    Server-Sent Events (position_stream.h)
//   GET  /v1/openapi.json
//
// Every query takes `format=geojson` for a FeatureCollection of Points.
// Errors are 4xx/5xx with {"error":"..."}: 400 bad arguments (unknown
// parameters too: a typo is not silently ignored), 404 unknown device,
// 413 body too large, 503 no unit could answer, 504 timeout. A partial
// answer is a 200 with "partial":true, as over RPC.
#pragma once

#include "locus/server/access.h"
#include "locus/server/location_service.h"
#include "locus/server/scatter_gather.h"
#include "locus/transport/http_server.h"

namespace locus::server {

// The /v1/ routes, each checking the request's API key with `auth`.
// Ownership: `cluster`, `counters` and `auth` must outlive them.
transport::HttpRoutes httpApi(ScatterGather& cluster, ServiceCounters& counters,
                              const ClientAuth& auth, kj::Timer& timer);

// The HTTP status of an error answer.
unsigned httpStatusOf(ErrorCode code);

// The OpenAPI 3.1 document served at /v1/openapi.json.
const char* openApiDocument();

}  // namespace locus::server
