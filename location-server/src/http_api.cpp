#include "locus/server/http_api.h"

#include <fmt/format.h>

#include <charconv>
#include <chrono>
#include <initializer_list>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "http_params.h"
#include "locus/common/geojson.h"
#include "locus/common/json.h"
#include "locus/common/report.h"
#include "locus/web/assets.h"
#include "position_stream.h"

namespace locus::server {
namespace {

using transport::HttpReply;
using transport::HttpRequest;
using Clock = std::chrono::steady_clock;

// Answers every /v1/ route may add: a page on another origin may call the
// API (the answers hold nothing a cookie protects).
HttpReply withCors(HttpReply reply) {
  reply.headers.emplace_back("Access-Control-Allow-Origin", "*");
  return reply;
}

class Api {
 public:
  Api(ScatterGather& cluster, ServiceCounters& counters) : cluster_(cluster), counters_(counters) {}

  kj::Promise<HttpReply> nearest(const HttpRequest& req, const auth::ClientScope& scope) {
    const auto started = Clock::now();
    Params p(req, {"lat", "lon", "k", "max_distance_m", "max_age_s", "prefix"});
    NearestQuery q;
    p.number("lat", q.center.lat, true);
    p.number("lon", q.center.lon, true);
    p.whole("k", q.k);
    p.number("max_distance_m", q.maxDistanceM);
    p.number("max_age_s", q.maxAgeS);
    p.text("prefix", q.idPrefix);
    if (p.error()) return refuse(Method::kNearest, started, *p.error());
    if (auto e = validate(q)) return refuse(Method::kNearest, started, *e);
    if (auto e = restrictToScope(scope, q.idPrefix)) return failed(Method::kNearest, started, *e);
    return cluster_.nearest(q).then([this, started, geojson = p.geojson()](GatheredResult&& g) {
      return answer(Method::kNearest, started, g, geojson);
    });
  }

  kj::Promise<HttpReply> radius(const HttpRequest& req, const auth::ClientScope& scope) {
    const auto started = Clock::now();
    Params p(req, {"lat", "lon", "radius_m", "limit", "count", "max_age_s", "prefix"});
    Circle circle;
    p.number("lat", circle.center.lat, true);
    p.number("lon", circle.center.lon, true);
    p.number("radius_m", circle.radiusM, true);
    return within(p, scope, started, circle);
  }

  kj::Promise<HttpReply> box(const HttpRequest& req, const auth::ClientScope& scope) {
    const auto started = Clock::now();
    Params p(req, {"south", "west", "north", "east", "limit", "count", "max_age_s", "prefix"});
    geo::Box box;
    p.number("south", box.south, true);
    p.number("west", box.west, true);
    p.number("north", box.north, true);
    p.number("east", box.east, true);
    return within(p, scope, started, box);
  }

  // The count per cell of a grid over the box: units count their devices
  // per cell, the server sums the cells (a heat map at low zoom).
  kj::Promise<HttpReply> grid(const HttpRequest& req, const auth::ClientScope& scope) {
    const auto started = Clock::now();
    Params p(req, {"bbox", "columns", "rows", "max_age_s", "prefix"});
    geo::Box box;
    AreaQuery q;
    q.countOnly = true;
    q.grid = Grid{64, 32};
    p.bbox("bbox", box);
    p.whole("columns", q.grid.columns);
    p.whole("rows", q.grid.rows);
    p.number("max_age_s", q.maxAgeS);
    p.text("prefix", q.idPrefix);
    q.area = box;
    if (p.error()) return refuse(Method::kWithin, started, *p.error());
    if (p.geojson()) return refuse(Method::kWithin, started, "a grid answers JSON only");
    if (auto e = validate(q)) return refuse(Method::kWithin, started, *e);
    if (auto e = restrictToScope(scope, q.idPrefix)) return failed(Method::kWithin, started, *e);
    return cluster_.within(q).then([this, started, box, grid = q.grid](Result<GatheredResult>&& r) {
      if (!r) return failed(Method::kWithin, started, r.error());
      const auto tookUs = static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started).count());
      counters_.record(Method::kWithin, false, r->shards.partial(), secondsSince(started));
      nlohmann::ordered_json j{{"bbox", {box.west, box.south, box.east, box.north}},
                               {"columns", grid.columns},
                               {"rows", grid.rows},
                               {"cells", r->result.cells}};
      nlohmann::ordered_json plain =
          toJson(QueryResult{{}, r->result.count, {}}, r->shards, tookUs);
      plain.erase("results");
      for (auto& [key, value] : plain.items()) j[key] = value;
      return withCors(HttpReply::json(200, j));
    });
  }

  kj::Promise<HttpReply> polygon(const HttpRequest& req, const auth::ClientScope& scope) {
    const auto started = Clock::now();
    Params p(req, {"limit", "count", "max_age_s", "prefix"});
    if (p.error()) return refuse(Method::kWithin, started, *p.error());
    auto area = geojson::readArea(req.body);
    if (!area) return refuse(Method::kWithin, started, area.error().message);
    return within(p, scope, started, std::move(*area));
  }

  kj::Promise<HttpReply> device(const HttpRequest& req, const auth::ClientScope& scope) {
    const auto started = Clock::now();
    Params p(req, {});
    // /v1/devices/{id}: the id is one segment, percent-decoded ("a%2Fb" is "a/b").
    std::string id = req.segments.size() == 3 ? req.segments[2] : std::string();
    if (req.segments.size() != 3) {
      return refuse(Method::kGet, started,
                    "the path is /v1/devices/{id}, with a '/' in the id written %2F");
    }
    if (p.error()) return refuse(Method::kGet, started, *p.error());
    if (auto problem = validateId(id)) return refuse(Method::kGet, started, *problem);
    if (auto e = checkGet(scope, id)) return failed(Method::kGet, started, *e);
    return cluster_.get(id).then(
        [this, started, geojson = p.geojson()](Result<GatheredResult>&& r) {
          if (!r) return failed(Method::kGet, started, r.error());
          return answer(Method::kGet, started, *r, geojson);
        });
  }

  kj::Promise<HttpReply> stats(const HttpRequest& req, const auth::ClientScope& scope) {
    const auto started = Clock::now();
    Params p(req, {});
    if (p.error()) return refuse(Method::kStats, started, *p.error());
    if (auto e = checkStats(scope)) return failed(Method::kStats, started, *e);
    return cluster_.stats().then([this, started](ClusterStats&& stats) {
      counters_.record(Method::kStats, false, stats.partial(), secondsSince(started));
      return withCors(HttpReply::json(200, toJson(stats)));
    });
  }

 private:
  static double secondsSince(Clock::time_point started) {
    return std::chrono::duration<double>(Clock::now() - started).count();
  }

  kj::Promise<HttpReply> within(Params& p, const auth::ClientScope& scope,
                                Clock::time_point started, Area area) {
    const Method method = Method::kWithin;
    AreaQuery q;
    q.area = std::move(area);
    p.whole("limit", q.limit);
    p.flag("count", q.countOnly);
    p.number("max_age_s", q.maxAgeS);
    p.text("prefix", q.idPrefix);
    if (p.error()) return refuse(method, started, *p.error());
    if (auto e = validate(q)) return refuse(method, started, *e);
    if (auto e = restrictToScope(scope, q.idPrefix)) return failed(method, started, *e);
    return cluster_.within(q).then(
        [this, method, started, geojson = p.geojson()](Result<GatheredResult>&& r) {
          if (!r) return failed(method, started, r.error());
          return answer(method, started, *r, geojson);
        });
  }

  HttpReply answer(Method method, Clock::time_point started, const GatheredResult& g,
                   bool geojson) {
    const auto tookUs = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started).count());
    counters_.record(method, false, g.shards.partial(), secondsSince(started));
    return withCors(
        HttpReply::json(200, geojson ? geojson::featureCollection(g.result, g.shards, tookUs)
                                     : toJson(g.result, g.shards, tookUs)));
  }

  HttpReply failed(Method method, Clock::time_point started, const Error& error) {
    counters_.record(method, true, false, secondsSince(started));
    return withCors(HttpReply::error(httpStatusOf(error.code), error.message));
  }

  kj::Promise<HttpReply> refuse(Method method, Clock::time_point started, std::string message) {
    return failed(method, started, badRequest(std::move(message)));
  }

  ScatterGather& cluster_;
  ServiceCounters& counters_;
};

}  // namespace

unsigned httpStatusOf(ErrorCode code) {
  switch (code) {
    case ErrorCode::kBadRequest:
      return 400;
    case ErrorCode::kNotFound:
      return 404;
    case ErrorCode::kTimeout:
      return 504;
    case ErrorCode::kUnavailable:
    case ErrorCode::kOverloaded:
      return 503;
    case ErrorCode::kInternal:
      return 500;
    case ErrorCode::kUnauthenticated:
      return 401;
    case ErrorCode::kForbidden:
      return 403;
  }
  return 500;
}

transport::HttpRoutes httpApi(ScatterGather& cluster, ServiceCounters& counters,
                              const ClientAuth& auth, kj::Timer& timer) {
  auto api = std::make_shared<Api>(cluster, counters);
  transport::HttpRoutes routes;
  // Every query route checks the request's API key first (401 without a
  // good one), and answers within its scope (403 beyond it).
  using Handler = kj::Promise<HttpReply> (Api::*)(const HttpRequest&, const auth::ClientScope&);
  const auto route = [&](kj::HttpMethod method, const char* path, Handler handler) {
    routes.add(method, path, [api, handler, &auth](const HttpRequest& req) {
      auto scope = auth.check(req.bearer());
      if (!scope)
        return kj::Promise<HttpReply>(withCors(HttpReply::unauthenticated(scope.error().message)));
      return ((*api).*handler)(req, *scope);
    });
  };
  route(kj::HttpMethod::GET, "/v1/nearest", &Api::nearest);
  route(kj::HttpMethod::GET, "/v1/radius", &Api::radius);
  route(kj::HttpMethod::GET, "/v1/box", &Api::box);
  route(kj::HttpMethod::GET, "/v1/grid", &Api::grid);
  route(kj::HttpMethod::POST, "/v1/polygon", &Api::polygon);
  route(kj::HttpMethod::GET, "/v1/devices/", &Api::device);
  route(kj::HttpMethod::GET, "/v1/stats", &Api::stats);
  routes.addStream(kj::HttpMethod::GET, "/v1/stream",
                   [&cluster, &counters, &timer, &auth](const HttpRequest& req,
                                                        kj::HttpService::Response& response) {
                     auto scope = auth.check(req.bearer());
                     if (!scope) {
                       return transport::sendReply(
                           *req.headerTable, response,
                           withCors(HttpReply::unauthenticated(scope.error().message)));
                     }
                     return servePositionStream(req, response, *req.headerTable, cluster, timer,
                                                counters.streams, *scope);
                   });
  // The live map (web/), embedded in the binary.
  const auto asset = [](const HttpRequest& req) -> kj::Promise<HttpReply> {
    const web::Asset* a = web::findAsset(req.path);
    if (a == nullptr) return HttpReply::error(404, fmt::format("no such file {}", req.path));
    HttpReply reply{200, std::string(a->contentType), std::string(a->body), {}};
    if (req.path.rfind("/vendor/", 0) == 0) {
      reply.headers.emplace_back("Cache-Control", "public, max-age=86400");
    } else {
      reply.headers.emplace_back("Cache-Control", "no-cache");
    }
    return reply;
  };
  for (const char* path : {"/", "/map.js", "/map.css", "/vendor/"}) {
    routes.add(kj::HttpMethod::GET, path, asset);
  }
  routes.add(kj::HttpMethod::GET, "/v1/openapi.json",
             [](const HttpRequest&) -> kj::Promise<HttpReply> {
               return withCors(HttpReply{200, "application/json", openApiDocument(), {}});
             });
  return routes;
}

}  // namespace locus::server
