// GET /v1/stream (private to locus::server): Server-Sent Events of the
// positions inside a viewport as they change, for a live map.
//
//   GET /v1/stream?bbox=WEST,SOUTH,EAST,NORTH[&interval_ms=1000][&limit=1000][&max_age_s=S]
//                 [&prefix=P]
//
// Every interval the stream asks the cluster for the devices in the box
// (the first `limit` by id, and the count of all) and sends what changed
// since the last event the client took (no event when nothing did):
//
//   event: positions
//   data: {"type":"positions","seq":N,"changed":[hits],"left":[ids],
//          "count":C,"shown":S,"partial":B}
//
// The first event holds every device shown. `count` is every device in the
// box; when it is above `limit` only the first `limit` by id are streamed
// (a map shows counts per area at that zoom instead). Other kinds of events
// (geofences, later) share the stream under their own `event:` name; a
// client ignores the names it does not know, as SSE allows.
//
// Slow readers: the next query waits until the last event was written, so
// a stream holds at most one event; a slow reader gets events less often,
// each the difference since the last it took. A reader that takes none for
// kStalledAfter is disconnected. A comment line after kHeartbeat without an
// event (at the next round) keeps proxies from closing an idle stream and
// finds clients that left.
#pragma once

#include <kj/compat/http.h>
#include <kj/timer.h>

#include "locus/common/auth.h"
#include "locus/common/metrics.h"
#include "locus/server/scatter_gather.h"
#include "locus/transport/http_server.h"

namespace locus::server {

struct StreamLimits {
  static constexpr uint32_t kMinIntervalMs = 250;  // the rate limit per stream
  static constexpr uint32_t kMaxIntervalMs = 10'000;
  static constexpr uint32_t kMaxDevices = 5'000;  // `limit` at most: bounds a stream's memory
  static constexpr kj::Duration kStalledAfter = 30 * kj::SECONDS;
  static constexpr kj::Duration kHeartbeat = 15 * kj::SECONDS;
};

// Serves one stream on `response` until the client leaves (the promise
// resolves or rejects). A bad request is answered 400 at once. Ownership:
// `cluster`, `timer` and `open` outlive the promise.
kj::Promise<void> servePositionStream(const transport::HttpRequest& request,
                                      kj::HttpService::Response& response,
                                      const kj::HttpHeaderTable& headers, ScatterGather& cluster,
                                      kj::Timer& timer, metrics::Gauge& open,
                                      const auth::ClientScope& scope);

}  // namespace locus::server
