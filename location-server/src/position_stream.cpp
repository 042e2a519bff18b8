#include "position_stream.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>
#include <utility>

#include "http_params.h"
#include "locus/common/json.h"
#include "locus/server/access.h"
#include "locus/server/http_api.h"

namespace locus::server {
namespace {

using transport::HttpReply;

struct Shown {
  double lat, lon;
  int64_t tsMs;
  bool operator==(const Shown&) const = default;
};

// One open stream: its query, what the client was last sent, the stream.
class PositionStream {
 public:
  PositionStream(ScatterGather& cluster, kj::Timer& timer, AreaQuery query, uint32_t intervalMs,
                 kj::Own<kj::AsyncOutputStream> out, metrics::Gauge& open)
      : cluster_(cluster),
        timer_(timer),
        query_(std::move(query)),
        interval_(intervalMs * kj::MILLISECONDS),
        out_(kj::mv(out)),
        open_(open) {
    open_.add(1);
  }
  ~PositionStream() { open_.add(-1); }

  // Events until the client leaves or stalls; heartbeats between them.
  kj::Promise<void> run() { return tick(); }

 private:
  // One round: the query, then an event if anything changed (else a
  // heartbeat when due), then the rest of the interval.
  kj::Promise<void> tick() {
    lastTick_ = timer_.now();
    return cluster_.within(query_).then([this](Result<GatheredResult>&& r) -> kj::Promise<void> {
      std::string event = r ? positionsEvent(*r) : errorEvent(r.error());
      if (event.empty() && timer_.now() - lastWrite_ >= StreamLimits::kHeartbeat) {
        event = ": keep-alive\n\n";
      }
      if (event.empty()) return pause();
      return write(std::move(event)).then([this] { return pause(); });
    });
  }

  kj::Promise<void> pause() {
    return timer_.atTime(lastTick_ + interval_).then([this] { return tick(); });
  }

  kj::Promise<void> write(std::string text) {
    lastWrite_ = timer_.now();
    auto owned = kj::heap<std::string>(std::move(text));
    auto written = out_->write(owned->data(), owned->size()).attach(kj::mv(owned));
    return timer_.timeoutAfter(StreamLimits::kStalledAfter, kj::mv(written));
  }

  std::string positionsEvent(const GatheredResult& g) {
    nlohmann::ordered_json changed = nlohmann::ordered_json::array();
    std::unordered_map<std::string, Shown> now;
    now.reserve(g.result.hits.size());
    for (const Hit& h : g.result.hits) {
      const Shown s{h.lat, h.lon, h.tsMs};
      auto before = shown_.find(h.id);
      if (before == shown_.end() || !(before->second == s)) changed.push_back(toJson(h));
      if (before != shown_.end()) shown_.erase(before);
      now.emplace(h.id, s);
    }
    nlohmann::ordered_json left = nlohmann::ordered_json::array();
    for (const auto& [id, s] : shown_) left.push_back(id);
    shown_ = std::move(now);
    // Nothing new: no event (the first one is sent even when empty).
    if (seq_ > 0 && changed.empty() && left.empty() && g.result.count == count_ &&
        g.shards.partial() == partial_) {
      return "";
    }
    count_ = g.result.count;
    partial_ = g.shards.partial();
    const nlohmann::ordered_json data{{"type", "positions"},           {"seq", ++seq_},
                                      {"changed", std::move(changed)}, {"left", std::move(left)},
                                      {"count", g.result.count},       {"shown", shown_.size()},
                                      {"partial", g.shards.partial()}};
    return "event: positions\ndata: " +
           data.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n\n";
  }

  // A failed round (no unit answered in time, say): said in the stream,
  // which carries on.
  std::string errorEvent(const Error& error) {
    return "event: error\ndata: " +
           nlohmann::ordered_json{{"type", "error"}, {"error", error.message}}.dump(
               -1, ' ', false, nlohmann::json::error_handler_t::replace) +
           "\n\n";
  }

  ScatterGather& cluster_;
  kj::Timer& timer_;
  AreaQuery query_;
  kj::Duration interval_;
  kj::Own<kj::AsyncOutputStream> out_;
  metrics::Gauge& open_;
  kj::TimePoint lastTick_ = kj::origin<kj::TimePoint>();
  kj::TimePoint lastWrite_ = kj::origin<kj::TimePoint>();
  uint64_t seq_ = 0;
  uint64_t count_ = 0;
  bool partial_ = false;
  std::unordered_map<std::string, Shown> shown_;
};

}  // namespace

kj::Promise<void> servePositionStream(const transport::HttpRequest& request,
                                      kj::HttpService::Response& response,
                                      const kj::HttpHeaderTable& table, ScatterGather& cluster,
                                      kj::Timer& timer, metrics::Gauge& open,
                                      const auth::ClientScope& scope) {
  Params p(request, {"bbox", "interval_ms", "limit", "max_age_s", "prefix"});
  geo::Box box;
  uint32_t intervalMs = 1000;
  AreaQuery q;
  q.limit = 1000;
  p.bbox("bbox", box);
  p.whole("interval_ms", intervalMs);
  p.whole("limit", q.limit);
  p.number("max_age_s", q.maxAgeS);
  p.text("prefix", q.idPrefix);
  q.area = box;
  std::optional<std::string> problem = p.error();
  if (!problem && p.geojson()) problem = "a stream is JSON events; format=geojson is for queries";
  if (!problem &&
      (intervalMs < StreamLimits::kMinIntervalMs || intervalMs > StreamLimits::kMaxIntervalMs)) {
    problem = fmt::format("interval_ms {} must be in {}..{}", intervalMs,
                          StreamLimits::kMinIntervalMs, StreamLimits::kMaxIntervalMs);
  }
  if (!problem && (q.limit < 1 || q.limit > StreamLimits::kMaxDevices)) {
    problem = fmt::format(
        "limit {} must be in 1..{} (devices streamed; count says how many "
        "are in the box)",
        q.limit, StreamLimits::kMaxDevices);
  }
  if (!problem) problem = validate(q);
  std::optional<Error> refusal;
  if (problem) refusal = badRequest(*problem);
  if (!refusal) refusal = restrictToScope(scope, q.idPrefix);
  if (refusal) {
    auto reply = HttpReply::error(httpStatusOf(refusal->code), refusal->message);
    reply.headers.emplace_back("Access-Control-Allow-Origin", "*");
    return transport::sendReply(table, response, std::move(reply));
  }

  kj::HttpHeaders headers(table);
  headers.set(kj::HttpHeaderId::CONTENT_TYPE, "text/event-stream");
  headers.add("Cache-Control", "no-cache");
  headers.add("Access-Control-Allow-Origin", "*");
  auto out = response.send(200, "OK", headers);
  auto stream =
      kj::heap<PositionStream>(cluster, timer, std::move(q), intervalMs, kj::mv(out), open);
  auto running = stream->run();
  return running.attach(kj::mv(stream));
}

}  // namespace locus::server
