#include "http_ingest.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "locus/common/clock.h"
#include "locus/common/report_json.h"
#include "locus/gateway/acks.h"

namespace locus::gateway {
namespace {

using transport::HttpReply;
using transport::HttpRequest;

// One request's reports, read and handed to the router; the results once
// every one is settled.
class Upload {
 public:
  Upload(Router& router, ProtocolCounters& counters, int64_t maxFutureSkewMs,
         std::optional<auth::DeviceScope> scope)
      : router_(router),
        counters_(counters),
        scope_(std::move(scope)),
        admission_{wallClockMs(), maxFutureSkewMs, "gateway", scope_ ? &*scope_ : nullptr},
        acks_(kj::refcounted<Acks>(0)) {}

  // Splits the body into reports (each parsed or refused), or says why the
  // body cannot be read at all.
  std::optional<HttpReply> read(const std::string& body) {
    const size_t first = body.find_first_not_of(" \t\r\n");
    if (first == std::string::npos) return HttpReply::error(400, "the body holds no reports");
    array_ = body[first] == '[';
    if (array_) {
      const auto j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
      if (j.is_discarded() || !j.is_array()) {
        return HttpReply::error(400, "the body starts with '[' but is not a JSON array");
      }
      if (j.size() > kMaxHttpReports) return tooMany(j.size());
      for (const auto& element : j) pending_.push_back(reportFromJson(element));
      return std::nullopt;
    }
    for (size_t start = 0; start < body.size();) {
      size_t end = body.find('\n', start);
      if (end == std::string::npos) end = body.size();
      std::string_view line(body.data() + start, end - start);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      start = end + 1;
      if (line.find_first_not_of(" \t") == std::string_view::npos) continue;  // blank: no report
      if (pending_.size() == kMaxHttpReports) return tooMany(kMaxHttpReports + 1);
      pending_.push_back(parseReportLine(line));
    }
    return std::nullopt;
  }

  // Routes every report read (after the router admits more); resolves with
  // the results.
  kj::Promise<HttpReply> send() {
    return router_.whenReady().then([this]() {
      admission_.nowMs = wallClockMs();
      for (auto& parsed : pending_) {
        const uint32_t slot = acks_->add();
        if (!parsed) {
          acks_->failed(slot, parsed.error().message);
          continue;
        }
        Report report = parsed->view();
        if (auto why = admitReport(report, admission_)) {
          acks_->failed(slot, *why);
          continue;
        }
        router_.add(report, *acks_, slot);
      }
      return acks_->done().then([this]() { return results(); });
    });
  }

 private:
  static HttpReply tooMany(size_t n) {
    return HttpReply::error(
        413, fmt::format("{}{} reports in one request; at most {} are allowed",
                         n > kMaxHttpReports ? "over " : "",
                         n > kMaxHttpReports ? kMaxHttpReports : n, kMaxHttpReports));
  }

  HttpReply results() {
    const BatchOutcome outcome = acks_->outcome();
    counters_.accepted += outcome.accepted;
    counters_.rejected += outcome.rejected.size();
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    auto failure = outcome.rejected.begin();
    for (uint32_t slot = 0; slot < acks_->slots(); ++slot) {
      if (failure != outcome.rejected.end() && failure->first == slot) {
        out.push_back({{"ok", false}, {"error", failure->second}});
        ++failure;
      } else {
        out.push_back({{"ok", true}});
      }
    }
    // Replace rather than throw on invalid UTF-8 (a message may quote input).
    const auto dump = [](const nlohmann::ordered_json& j) {
      return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    };
    if (array_) return HttpReply{200, "application/json", dump(out) + "\n", {}};
    std::string lines;
    for (const auto& result : out) lines += dump(result) + "\n";
    return HttpReply{200, "application/x-ndjson", std::move(lines), {}};
  }

  Router& router_;
  ProtocolCounters& counters_;
  std::optional<auth::DeviceScope> scope_;  // set: tokens required
  Admission admission_;
  kj::Own<Acks> acks_;
  bool array_ = false;
  std::vector<Result<OwnedReport>> pending_;
};

}  // namespace

transport::HttpRoutes httpIngest(IngestContext c) {
  transport::HttpRoutes routes;
  routes.add(
      kj::HttpMethod::POST, "/v1/reports", [c](const HttpRequest& req) -> kj::Promise<HttpReply> {
        Router& router = c.router;
        ProtocolCounters& counters = c.counters;
        if (router.closing()) return HttpReply::error(503, "the gateway is stopping");
        std::optional<auth::DeviceScope> scope;
        if (c.auth.required()) {
          auto login = c.auth.login(req.bearer(), wallClockMs());
          if (!login) return HttpReply::unauthenticated(login.error().message);
          scope = std::move(*login);
        }
        auto upload = kj::heap<Upload>(router, counters, c.maxFutureSkewMs, std::move(scope));
        if (auto refused = upload->read(req.body)) return std::move(*refused);
        counters.connections.add(1);
        auto sent = upload->send();
        return sent.attach(kj::mv(upload),
                           kj::defer([&counters] { counters.connections.add(-1); }));
      });
  return routes;
}

}  // namespace locus::gateway
