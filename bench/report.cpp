#include "report.h"

#include <sstream>
#include <utility>
#include <vector>

namespace locus::bench {
namespace {

using json = nlohmann::ordered_json;
using Rows = std::vector<std::pair<std::string, std::string>>;

double us(uint64_t ns) {
  return static_cast<double>(ns) / 1000.0;
}

std::string fixed(double v, int decimals) {
  std::ostringstream s;
  s.setf(std::ios::fixed);
  s.precision(decimals);
  s << v;
  return s.str();
}

}  // namespace

json toJson(const Options& o, const std::string& system, const RunResult& r) {
  const auto perDevice = [&](uint64_t bytes) {
    return r.totals.devices > 0 ? static_cast<double>(bytes) / static_cast<double>(r.totals.devices)
                                : 0.0;
  };
  const auto phase = [](const PhaseResult& p) {
    return json{
        {"reports", p.count},
        {"acked_seconds", p.ackedSeconds},
        {"reports_per_s", perSecond(static_cast<double>(p.count), p.ackedSeconds)},
        {"applied_seconds", p.appliedSeconds},
        {"applied_reports_per_s", perSecond(static_cast<double>(p.count), p.appliedSeconds)}};
  };
  json memory{{"units", r.totals.shardsTotal},
              {"index_bytes", r.totals.memoryBytes},
              {"index_bytes_per_device", perDevice(r.totals.memoryBytes)}};
  if (r.rssBytes > 0) {
    memory["rss_bytes"] = r.rssBytes;
    memory["rss_bytes_per_device"] = perDevice(r.rssBytes);
  }
  const auto latency = [](const bench::Histogram& h) {
    return json{{"p50", us(h.percentile(50))}, {"p90", us(h.percentile(90))},
                {"p99", us(h.percentile(99))}, {"p99_9", us(h.percentile(99.9))},
                {"max", us(h.max())},          {"mean", h.mean() / 1000.0}};
  };
  // Phase 3 at each depth; "queries" is the first.
  json byDepth = json::array();
  for (const QueryPhase& q : r.queries) {
    const auto& h = q.outcome.latencyNs;
    const auto perQuery = [&](double cpuSeconds) -> json {
      if (cpuSeconds < 0 || h.count() == 0) return nullptr;
      return cpuSeconds * 1e6 / static_cast<double>(h.count());
    };
    byDepth.push_back(json{{"pipeline", q.depth},
                           {"count", h.count()},
                           {"seconds", q.seconds},
                           {"queries_per_s", perSecond(static_cast<double>(h.count()), q.seconds)},
                           {"partial", q.outcome.partial},
                           {"cpu_us_per_query", perQuery(q.systemCpuSeconds)},
                           {"client_cpu_us_per_query", perQuery(q.clientCpuSeconds)},
                           {"latency_us", latency(h)}});
  }
  json openLoop = nullptr;  // null: no phase 4
  if (r.openLoop.ran) {
    const OpenLoopResult& ol = r.openLoop;
    const OpenLoopOutcome& q = ol.queries;
    openLoop = json{
        {"seconds", ol.seconds},
        {"target_queries_per_s", ol.targetPerS},
        {"closed_loop_queries_per_s", ol.closedLoopPerS},
        {"in_flight_per_connection", o.openLoopInFlight},
        {"scheduled", q.scheduled},
        {"sent", q.sent},
        {"answered", q.answered},
        {"late", q.late},
        {"dropped", q.dropped},
        {"unanswered", q.unanswered},
        {"partial", q.partial},
        {"queries_per_s", perSecond(static_cast<double>(q.answered), ol.seconds)},
        {"latency_us", latency(q.latencyNs)},
        {"send_lag_us", {{"p99", us(q.sendLagNs.percentile(99))}, {"max", us(q.sendLagNs.max())}}},
        {"updates",
         {{"target_reports_per_s", ol.updateTargetPerS},
          {"reports", ol.updates.reports},
          {"seconds", ol.updates.seconds},
          {"reports_per_s",
           perSecond(static_cast<double>(ol.updates.reports), ol.updates.seconds)}}}};
  }
  return json{
      {"system", system},
      {"devices", o.devices},
      {"concurrency", o.concurrency},
      {"batch", o.batch},
      {"seed", o.seed},
      {"load", phase(r.load)},
      {"updates", phase(r.updates)},
      {"queries", byDepth.empty() ? json(nullptr) : byDepth.front()},
      {"queries_by_depth", byDepth},
      {"open_loop", openLoop},
      {"memory", memory},
      {"checks", {{"device_count", r.totals.devices}, {"nearest_checked", r.checkedSamples}}}};
}

void printTable(std::ostream& out, const Options& o, const std::string& system,
                const RunResult& r) {
  std::vector<std::pair<std::string, std::string>> rows;
  const auto phase = [&](const std::string& name, const PhaseResult& p) {
    rows.emplace_back(name + " reports", std::to_string(p.count));
    rows.emplace_back(name + " acked reports/s",
                      fixed(perSecond(static_cast<double>(p.count), p.ackedSeconds), 0) + "  (" +
                          fixed(p.ackedSeconds, 2) + " s)");
    rows.emplace_back(name + " applied reports/s",
                      fixed(perSecond(static_cast<double>(p.count), p.appliedSeconds), 0) + "  (" +
                          fixed(p.appliedSeconds, 2) + " s)");
  };
  rows.emplace_back("system", system);
  rows.emplace_back("units / concurrency",
                    std::to_string(r.totals.shardsTotal) + " / " + std::to_string(o.concurrency));
  phase("load", r.load);
  phase("update", r.updates);
  for (const QueryPhase& q : r.queries) {
    const auto& h = q.outcome.latencyNs;
    const std::string at = r.queries.size() > 1 ? " @" + std::to_string(q.depth) : "";
    rows.emplace_back("nearest-10 queries" + at,
                      std::to_string(h.count()) + "  (" + std::to_string(q.outcome.partial) +
                          " partial, " + std::to_string(q.depth) + " calls of " +
                          std::to_string(o.batch) + " in flight a connection)");
    rows.emplace_back("queries/s" + at,
                      fixed(perSecond(static_cast<double>(h.count()), q.seconds), 0) + "  (" +
                          fixed(q.seconds, 2) + " s)");
    rows.emplace_back("latency p50 / p90 (us)" + at,
                      fixed(us(h.percentile(50)), 1) + " / " + fixed(us(h.percentile(90)), 1));
    rows.emplace_back("latency p99 / p99.9 (us)" + at,
                      fixed(us(h.percentile(99)), 1) + " / " + fixed(us(h.percentile(99.9)), 1));
    rows.emplace_back("latency max (us)" + at, fixed(us(h.max()), 1));
    if (h.count() > 0) {
      const double n = static_cast<double>(h.count());
      rows.emplace_back(
          "CPU/query system / bench (us)" + at,
          (q.systemCpuSeconds >= 0 ? fixed(q.systemCpuSeconds * 1e6 / n, 1) : std::string("?")) +
              " / " + fixed(q.clientCpuSeconds * 1e6 / n, 1));
    }
  }
  if (r.openLoop.ran) {
    const OpenLoopResult& ol = r.openLoop;
    const OpenLoopOutcome& q = ol.queries;
    const auto& l = q.latencyNs;
    rows.emplace_back(
        "open loop target queries/s",
        fixed(ol.targetPerS, 0) + (ol.closedLoopPerS > 0
                                       ? "  (" + fixed(100 * ol.targetPerS / ol.closedLoopPerS, 0) +
                                             "% of " + fixed(ol.closedLoopPerS, 0) + " closed loop)"
                                       : ""));
    rows.emplace_back("open loop queries/s",
                      fixed(perSecond(static_cast<double>(q.answered), ol.seconds), 0) + "  (" +
                          std::to_string(q.answered) + " answered in " + fixed(ol.seconds, 2) +
                          " s)");
    rows.emplace_back("open loop late / dropped",
                      std::to_string(q.late) + " / " + std::to_string(q.dropped) + "  (" +
                          std::to_string(q.unanswered) + " unanswered, " +
                          std::to_string(q.partial) + " partial)");
    rows.emplace_back("open loop p50 / p90 (us)",
                      fixed(us(l.percentile(50)), 1) + " / " + fixed(us(l.percentile(90)), 1));
    rows.emplace_back("open loop p99 / p99.9 (us)",
                      fixed(us(l.percentile(99)), 1) + " / " + fixed(us(l.percentile(99.9)), 1));
    rows.emplace_back("open loop max / send lag p99 (us)",
                      fixed(us(l.max()), 1) + " / " + fixed(us(q.sendLagNs.percentile(99)), 1));
    rows.emplace_back(
        "open loop updates/s",
        fixed(perSecond(static_cast<double>(ol.updates.reports), ol.updates.seconds), 0) +
            "  (target " + fixed(ol.updateTargetPerS, 0) + ")");
  }
  rows.emplace_back("devices (stats)", std::to_string(r.totals.devices));
  rows.emplace_back(system == "redis" ? "used_memory growth bytes/device" : "index bytes/device",
                    fixed(static_cast<double>(r.totals.memoryBytes) /
                              static_cast<double>(std::max<uint64_t>(1, r.totals.devices)),
                          1));
  if (r.rssBytes > 0) {
    rows.emplace_back(system == "redis" ? "RSS growth bytes/device" : "units RSS bytes/device",
                      fixed(static_cast<double>(r.rssBytes) /
                                static_cast<double>(std::max<uint64_t>(1, r.totals.devices)),
                            1) +
                          "  (" + fixed(static_cast<double>(r.rssBytes) / (1 << 20), 1) + " MiB)");
  }
  rows.emplace_back("nearest answers checked", std::to_string(r.checkedSamples) + " exact");
  size_t width = 0;
  for (const auto& row : rows) width = std::max(width, row.first.size());
  for (const auto& [name, value] : rows)
    out << name << std::string(width + 2 - name.size(), ' ') << value << "\n";
}

}  // namespace locus::bench
