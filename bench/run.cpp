#include "run.h"

#include <sys/resource.h>

#include <algorithm>
#include <iostream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>

#include "locus/common/clock.h"
#include "locus/testkit/compare.h"

namespace locus::bench {
namespace {

constexpr size_t kSampleQueries = 100;
constexpr auto kOpenLoopDrain = std::chrono::seconds(2);

std::string fixed0(double v) {
  std::ostringstream s;
  s.setf(std::ios::fixed);
  s.precision(0);
  s << v;
  return s.str();
}

// CPU seconds this process has used, every thread.
double ownCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return s(usage.ru_utime) + s(usage.ru_stime);
}

// One run's state: the options, the backend, and what was sent.
class Run {
 public:
  Run(const Options& o, Backend& backend, const Deadline& deadline)
      : o_(o),
        backend_(backend),
        deadline_(deadline),
        workers_(o.concurrency),
        openLoopRate_(*parseOpenLoopRate(o.openLoopRate)) {}

  RunResult operator()() {
    makeFleet();
    before_ = backend_.totals();
    load();
    update();
    const std::vector<Sample> samples = query();
    // Memory, while the system still holds everything.
    r_.totals = backend_.totals();
    r_.rssBytes = backend_.rssBytes();
    check(samples);
    if (openLoopRate_.on()) openLoop();
    return r_;
  }

 private:
  // Every device at a random point. Every report of a device carries a
  // newer tsMs than the one before; all are in the past.
  void makeFleet() {
    std::mt19937_64 rng(o_.seed);
    fleet_.workers = workers_;
    fleet_.positions.resize(o_.devices);
    for (auto& p : fleet_.positions) p = randomPoint(rng);
    updatesPerWorker_ =
        (o_.updates + static_cast<uint64_t>(workers_) - 1) / static_cast<uint64_t>(workers_);
    const uint64_t openLoopUpdates =
        openLoopRate_.on() ? static_cast<uint64_t>(o_.openLoopUpdateRate * o_.openLoopSeconds) + 1
                           : 0;
    fleet_.baseTsMs =
        wallClockMs() - static_cast<int64_t>(updatesPerWorker_ + openLoopUpdates) - 1000;
  }

  void checkDevices(const Totals& totals, const std::string& when) const {
    const bool ok =
        before_.devices == 0 ? totals.devices == o_.devices : totals.devices >= o_.devices;
    if (ok) return;
    const uint64_t expected = before_.devices == 0 ? o_.devices : before_.devices;
    throw std::runtime_error("after " + when + " the cluster holds " +
                             std::to_string(totals.devices) + " devices, expected " +
                             std::to_string(expected));
  }

  // Phase 1: every device once.
  void load() {
    std::atomic<uint64_t> loaded{0};
    const auto start = Clock::now();
    r_.load.count = o_.devices;
    r_.load.ackedSeconds = runPhase(
        "load", workers_, o_.devices, loaded,
        [&](int w) {
          const uint64_t first = fleet_.firstOf(w), last = fleet_.firstOf(w + 1);
          backend_.connect()->send(
              last - first,
              [&](uint64_t k) {
                return Move{first + k, fleet_.baseTsMs};
              },
              fleet_, loaded);
        },
        failures_);
    r_.totals = backend_.waitForReports(before_.reportsSeen + o_.devices, "load");
    r_.load.appliedSeconds = secondsSince(start);
    checkDevices(r_.totals, "loading");
  }

  // Phase 2: worker w moves only its own devices.
  void update() {
    std::atomic<uint64_t> updated{0};
    const auto start = Clock::now();
    r_.updates.count = o_.updates;
    r_.updates.ackedSeconds = runPhase(
        "updates", workers_, o_.updates, updated,
        [&](int w) {
          const uint64_t first = fleet_.firstOf(w), last = fleet_.firstOf(w + 1);
          const uint64_t mine =
              std::min(updatesPerWorker_, o_.updates - std::min(o_.updates, updatesPerWorker_ * w));
          std::mt19937_64 local(o_.seed * 7919 + static_cast<uint64_t>(w) + 1);
          std::uniform_int_distribution<uint64_t> pick(first, last - 1);
          backend_.connect()->send(
              mine,
              [&](uint64_t k) {
                const uint64_t i = pick(local);
                fleet_.positions[i] = moved(fleet_.positions[i], local);
                return Move{i, fleet_.baseTsMs + 1 + static_cast<int64_t>(k)};
              },
              fleet_, updated);
        },
        failures_);
    r_.totals = backend_.waitForReports(before_.reportsSeen + o_.devices + o_.updates, "updates");
    r_.updates.appliedSeconds = secondsSince(start);
    checkDevices(r_.totals, "the updates");
  }

  // Phase 3: queries, --pipeline in flight per client, once per depth.
  // Returns the sampled answers (of every depth).
  std::vector<Sample> query() {
    std::vector<Sample> samples;
    for (size_t d = 0; d < o_.pipeline.size(); ++d) {
      QueryPhase& phase = r_.queries.emplace_back();
      phase.depth = o_.pipeline[d];
      queryAt(phase, o_.seed * 104729 + d * 7'919, samples);
    }
    return samples;
  }

  void queryAt(QueryPhase& phase, uint64_t seed, std::vector<Sample>& samples) {
    std::atomic<uint64_t> queried{0};
    const double systemCpu = backend_.cpuSeconds(), clientCpu = ownCpuSeconds();
    std::vector<QueryOutcome> outcomes(static_cast<size_t>(workers_));
    const size_t keepPerWorker =
        (kSampleQueries + static_cast<size_t>(workers_) - 1) / static_cast<size_t>(workers_);
    phase.seconds = runPhase(
        "queries at depth " + std::to_string(phase.depth), workers_, o_.queries, queried,
        [&](int w) {
          const uint64_t count = o_.queries * static_cast<uint64_t>(w + 1) / workers_ -
                                 o_.queries * static_cast<uint64_t>(w) / workers_;
          outcomes[static_cast<size_t>(w)] =
              runQueries(backend_, count, keepPerWorker, seed + static_cast<uint64_t>(w),
                         static_cast<size_t>(phase.depth), static_cast<size_t>(o_.batch), queried);
        },
        failures_);
    if (systemCpu >= 0) phase.systemCpuSeconds = backend_.cpuSeconds() - systemCpu;
    phase.clientCpuSeconds = ownCpuSeconds() - clientCpu;
    for (auto& outcome : outcomes) {
      phase.outcome.latencyNs.merge(outcome.latencyNs);
      phase.outcome.partial += outcome.partial;
      for (auto& s : outcome.samples) {
        if (samples.size() < kSampleQueries * o_.pipeline.size()) samples.push_back(std::move(s));
      }
    }
    if (phase.outcome.partial > 0)
      throw std::runtime_error(std::to_string(phase.outcome.partial) +
                               " nearest answers were partial (a unit missed the deadline)");
  }

  // Sampled answers against a brute-force scan, only valid when the system
  // holds nothing but this run's devices and answers exactly.
  void check(const std::vector<Sample>& samples) {
    if (!backend_.exact()) {
      std::cerr << "locus-bench: " << backend_.name()
                << " answers approximately: skipping the brute-force check\n";
      return;
    }
    if (before_.devices != 0) {
      std::cerr << "locus-bench: the cluster held " << before_.devices
                << " devices before the run: skipping the brute-force check\n";
      return;
    }
    std::vector<std::string> problems(samples.size());
    std::vector<std::thread> checkers;
    for (int w = 0; w < workers_; ++w) {
      checkers.emplace_back([&, w] {
        for (size_t s = static_cast<size_t>(w); s < samples.size();
             s += static_cast<size_t>(workers_)) {
          problems[s] = deadline_.passed() ? "--max-seconds passed during the check"
                                           : testkit::placesDiffer(
                                                 samples[s].hits,
                                                 bruteForceNearest(fleet_, samples[s].center, kK));
        }
      });
    }
    for (auto& t : checkers) t.join();
    for (size_t s = 0; s < samples.size(); ++s) {
      if (problems[s].empty()) continue;
      std::ostringstream why;
      why.precision(10);
      why << "nearest at (" << samples[s].center.lat << ", " << samples[s].center.lon
          << ") is wrong: " << problems[s];
      throw std::runtime_error(why.str());
    }
    r_.checkedSamples = samples.size();
  }

  // Phase 4: queries on a Poisson schedule from every connection, one more
  // connection streaming updates at a fixed rate.
  void openLoop() {
    OpenLoopResult& ol = r_.openLoop;
    ol.ran = true;
    ol.seconds = o_.openLoopSeconds;
    // The closed loop's maximum: its best depth.
    ol.closedLoopPerS = 0;
    for (const QueryPhase& q : r_.queries) {
      if (openLoopRate_.ofClosedLoop > 0)
        ol.closedLoopPerS =
            std::max(ol.closedLoopPerS,
                     perSecond(static_cast<double>(q.outcome.latencyNs.count()), q.seconds));
    }
    ol.targetPerS = openLoopRate_.ofClosedLoop > 0 ? openLoopRate_.ofClosedLoop * ol.closedLoopPerS
                                                   : openLoopRate_.perS;
    ol.updateTargetPerS = o_.openLoopUpdateRate;
    if (!(ol.targetPerS > 0)) throw std::runtime_error("the open loop's query rate came out 0");
    if (Clock::now() + seconds(ol.seconds) + kOpenLoopDrain > deadline_.at())
      throw std::runtime_error(
          "--max-seconds would pass during the open loop: raise it or lower "
          "--open-loop-seconds");
    std::cerr << "locus-bench: open loop at " << fixed0(ol.targetPerS) << " queries/s and "
              << fixed0(ol.updateTargetPerS) << " reports/s for " << ol.seconds << " s\n";
    runOpenLoop(ol);
    const Totals after = backend_.waitForReports(
        before_.reportsSeen + o_.devices + o_.updates + ol.updates.reports, "the open loop");
    checkDevices(after, "the open loop");
    const OpenLoopOutcome& q = ol.queries;
    if (q.late + q.dropped + q.unanswered + q.partial > 0)
      std::cerr << "locus-bench: open loop: " << q.late << " queries late, " << q.dropped
                << " dropped, " << q.unanswered << " unanswered, " << q.partial
                << " partial: the rate is beyond what the system sustains here\n";
  }

  void runOpenLoop(OpenLoopResult& ol) {
    std::atomic<uint64_t> answered{0}, updated{0};
    std::vector<OpenLoopOutcome> outcomes(static_cast<size_t>(workers_));
    const bool updating = ol.updateTargetPerS > 0;
    const int64_t firstTsMs = fleet_.baseTsMs + static_cast<int64_t>(updatesPerWorker_) + 1;
    const size_t wantHits = backend_.exact() ? std::min<size_t>(kK, o_.devices) : 0;
    runPhase(
        "open loop", workers_ + (updating ? 1 : 0),
        static_cast<uint64_t>(ol.targetPerS * ol.seconds), answered,
        [&](int w) {
          if (w == workers_) {
            ol.updates = runOpenLoopUpdates(backend_, fleet_, ol.updateTargetPerS, ol.seconds,
                                            firstTsMs, o_.seed * 15485863, updated);
            return;
          }
          outcomes[static_cast<size_t>(w)] =
              runOpenLoopQueries(backend_, ol.targetPerS / workers_, ol.seconds,
                                 static_cast<size_t>(o_.openLoopInFlight),
                                 o_.seed * 1299709 + static_cast<uint64_t>(w), wantHits, answered);
        },
        failures_);
    for (const auto& outcome : outcomes) ol.queries.merge(outcome);
  }

  const Options& o_;
  Backend& backend_;
  const Deadline& deadline_;
  const int workers_;
  const OpenLoopRate openLoopRate_;
  Failures failures_;
  Fleet fleet_;
  uint64_t updatesPerWorker_ = 0;
  Totals before_;
  RunResult r_;
};

}  // namespace

double perSecond(double count, double seconds) {
  return seconds > 0 ? count / seconds : 0;
}

RunResult run(const Options& o, Backend& backend, const Deadline& deadline) {
  return Run(o, backend, deadline)();
}

}  // namespace locus::bench
