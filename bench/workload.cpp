#include "workload.h"

#include <kj/exception.h>
#include <sys/prctl.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <thread>

#include "locus/common/city.h"

namespace locus::bench {
namespace {

constexpr double kMaxMoveM = 50;
constexpr double kMetresPerDegree = geo::kEarthRadiusM * geo::kPi / 180;
constexpr auto kProgressEvery = std::chrono::seconds(2);
// Open loop: a query held back by the in-flight bound longer than this
// after its scheduled time is dropped; answers are awaited this long after
// the schedule ends, then abandoned; the updater sends every kUpdateTick.
constexpr auto kMaxSendLag = std::chrono::seconds(1);
constexpr auto kOpenLoopDrain = std::chrono::seconds(2);
constexpr auto kHeldPoll = std::chrono::microseconds(100);
constexpr auto kDrainStep = std::chrono::milliseconds(1);
constexpr auto kUpdateTick = std::chrono::milliseconds(10);

uint64_t nanos(Clock::duration d) {
  return static_cast<uint64_t>(
      std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::nanoseconds>(d).count()));
}

}  // namespace

double secondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

Clock::duration seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

std::string deviceId(uint64_t i) {
  return "bench-" + std::to_string(i);
}

geo::LatLon randomPoint(std::mt19937_64& rng) {
  const geo::LatLon p = city::randomPoint(rng);
  return {geo::quantize(p.lat), geo::quantize(p.lon)};
}

geo::LatLon moved(geo::LatLon p, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> metres(1, kMaxMoveM), bearing(0, 2 * geo::kPi);
  const double d = metres(rng), b = bearing(rng);
  const double dLat = d * std::cos(b) / kMetresPerDegree;
  const double dLon = d * std::sin(b) / (kMetresPerDegree * std::cos(p.lat * geo::kPi / 180));
  return {geo::quantize(p.lat + dLat), geo::quantize(p.lon + dLon)};
}

void Failures::note(const std::string& what) {
  std::lock_guard lock(mutex_);
  if (first_.empty()) first_ = what;
}

void Failures::throwIfAny() {
  std::lock_guard lock(mutex_);
  if (!first_.empty()) throw std::runtime_error(first_);
}

double runPhase(const std::string& name, int workers, uint64_t total,
                const std::atomic<uint64_t>& done, const std::function<void(int)>& body,
                Failures& failures) {
  const auto start = Clock::now();
  std::atomic<int> running{workers};
  std::vector<std::thread> threads;
  for (int w = 0; w < workers; ++w) {
    threads.emplace_back([&, w] {
      try {
        body(w);
      } catch (const kj::Exception& e) {
        failures.note(name + ": " + e.getDescription().cStr());
      } catch (const std::exception& e) {
        failures.note(name + ": " + e.what());
      }
      --running;
    });
  }
  auto nextProgress = start + kProgressEvery;
  while (running > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (Clock::now() >= nextProgress) {
      nextProgress += kProgressEvery;
      const uint64_t n = done.load();
      std::cerr << "locus-bench: " << name << " " << n << "/" << total << ", "
                << static_cast<uint64_t>(static_cast<double>(n) / secondsSince(start)) << "/s\n";
    }
  }
  for (auto& t : threads) t.join();
  const double seconds = secondsSince(start);
  failures.throwIfAny();
  return seconds;
}

QueryOutcome runQueries(Backend& backend, uint64_t count, size_t keep, uint64_t seed, size_t depth,
                        size_t batch, std::atomic<uint64_t>& done) {
  const std::unique_ptr<Session> session = backend.connect();
  std::mt19937_64 rng(seed);
  QueryOutcome out;
  const auto answered = [&](geo::LatLon center, Clock::time_point sent, NearestAnswer&& answer) {
    out.latencyNs.record(nanos(Clock::now() - sent));
    if (answer.partial) ++out.partial;
    if (out.samples.size() < keep && !answer.partial)
      out.samples.push_back(Sample{center, std::move(answer.hits)});
    ++done;
  };
  if (depth <= 1 && batch <= 1) {
    for (uint64_t n = 0; n < count; ++n) {
      const geo::LatLon center = randomPoint(rng);
      const auto sent = Clock::now();
      answered(center, sent, session->nearest(center, kK));
    }
    return out;
  }
  session->nearest(randomPoint(rng), kK);  // connect before the clock matters
  uint64_t started = 0, finished = 0;
  size_t inFlight = 0;
  // Sends the next call (`batch` points, or what is left), and the next
  // again as soon as one is answered: `depth` calls in flight.
  std::function<void()> start = [&] {
    ++inFlight;
    const auto sent = Clock::now();
    const auto next = [&] {
      --inFlight;
      while (started < count && inFlight < depth) start();
    };
    if (batch <= 1) {
      const geo::LatLon center = randomPoint(rng);
      ++started;
      session->startNearest(center, kK, [&, center, sent, next](NearestAnswer&& answer) {
        answered(center, sent, std::move(answer));
        ++finished;
        next();
      });
      return;
    }
    std::vector<geo::LatLon> centers(std::min<uint64_t>(batch, count - started));
    for (auto& c : centers) c = randomPoint(rng);
    started += centers.size();
    session->startNearestMany(
        centers, kK, [&, centers, sent, next](std::vector<NearestAnswer>&& answers) {
          if (answers.size() != centers.size())
            throw std::runtime_error("a batch of " + std::to_string(centers.size()) +
                                     " points came back with " + std::to_string(answers.size()) +
                                     " answers");
          for (size_t i = 0; i < centers.size(); ++i)
            answered(centers[i], sent, std::move(answers[i]));
          finished += centers.size();
          next();
        });
  };
  while (started < count && inFlight < depth) start();
  while (finished < count) session->awaitAnswers(Clock::now() + kDrainStep);
  return out;
}

void OpenLoopOutcome::merge(const OpenLoopOutcome& o) {
  latencyNs.merge(o.latencyNs);
  sendLagNs.merge(o.sendLagNs);
  scheduled += o.scheduled;
  sent += o.sent;
  answered += o.answered;
  late += o.late;
  dropped += o.dropped;
  unanswered += o.unanswered;
  partial += o.partial;
}

OpenLoopOutcome runOpenLoopQueries(Backend& backend, double ratePerS, double windowS,
                                   size_t maxInFlight, uint64_t seed, size_t wantHits,
                                   std::atomic<uint64_t>& done) {
  prctl(PR_SET_TIMERSLACK, 1UL);  // wake at the due time, not up to 50 us after
  const std::unique_ptr<Session> session = backend.connect();
  std::mt19937_64 rng(seed);
  session->nearest(randomPoint(rng), kK);  // connect before the schedule starts
  OpenLoopOutcome out;
  std::optional<std::string> problem;
  size_t inFlight = 0;
  const auto answered = [&](Clock::time_point due) {
    return [&, due](NearestAnswer&& answer) {
      out.latencyNs.record(nanos(Clock::now() - due));
      --inFlight;
      ++out.answered;
      ++done;
      if (answer.partial) {
        ++out.partial;
        return;
      }
      if (wantHits > 0 && answer.hits.size() != wantHits && !problem)
        problem = "an open-loop answer held " + std::to_string(answer.hits.size()) +
                  " hits, expected " + std::to_string(wantHits);
      for (size_t j = 1; j < answer.hits.size(); ++j) {
        if (answer.hits[j].distanceM < answer.hits[j - 1].distanceM && !problem)
          problem = "an open-loop answer is not nearest first";
      }
    };
  };

  std::exponential_distribution<double> gapS(ratePerS);
  const auto start = Clock::now(), end = start + seconds(windowS);
  double dueS = gapS(rng);
  bool held = false;                           // the next query has waited for a free slot
  auto releasedAt = Clock::time_point::min();  // the bound last let a held query go
  while (dueS < windowS) {
    const auto due = start + seconds(dueS);
    const auto now = Clock::now();
    if (due > now) {
      session->awaitAnswers(due);
      continue;
    }
    if (inFlight >= maxInFlight && now - due < kMaxSendLag) {
      held = true;
      session->awaitAnswers(now + kHeldPoll);
      continue;
    }
    ++out.scheduled;
    if (inFlight >= maxInFlight) {
      ++out.dropped;
    } else {
      if (held) releasedAt = now;
      out.late += held || due < releasedAt ? 1 : 0;
      out.sendLagNs.record(nanos(now - due));
      ++inFlight;
      ++out.sent;
      session->startNearest(randomPoint(rng), kK, answered(due));
    }
    held = false;
    dueS += gapS(rng);
  }
  const auto drainUntil = std::max(Clock::now(), end) + kOpenLoopDrain;
  while (inFlight > 0 && Clock::now() < drainUntil)
    session->awaitAnswers(std::min(Clock::now() + kDrainStep, drainUntil));
  out.unanswered = inFlight;  // abandoned with the session
  if (problem) throw std::runtime_error(*problem);
  return out;
}

UpdateOutcome runOpenLoopUpdates(Backend& backend, Fleet& fleet, double ratePerS, double windowS,
                                 int64_t firstTsMs, uint64_t seed, std::atomic<uint64_t>& done) {
  const std::unique_ptr<Session> session = backend.connect();
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<uint64_t> pick(0, fleet.positions.size() - 1);
  const auto start = Clock::now(), end = start + seconds(windowS);
  uint64_t sent = 0;
  for (auto tick = start; Clock::now() < end;) {
    tick += kUpdateTick;
    std::this_thread::sleep_until(std::min(tick, end));
    const double elapsedS = std::min(windowS, secondsSince(start));
    const auto due = static_cast<uint64_t>(ratePerS * elapsedS);
    if (due <= sent) continue;
    session->send(
        due - sent,
        [&](uint64_t k) {
          const uint64_t i = pick(rng);
          fleet.positions[i] = moved(fleet.positions[i], rng);
          return Move{i, firstTsMs + static_cast<int64_t>(sent + k)};
        },
        fleet, done);
    sent = due;
  }
  return UpdateOutcome{.reports = sent, .seconds = secondsSince(start)};
}

// The k nearest devices of `center` by (distance, id), by scanning all.
std::vector<Hit> bruteForceNearest(const Fleet& fleet, geo::LatLon center, uint32_t k) {
  const geo::DistanceFrom from(center);
  std::vector<std::pair<double, uint64_t>> all(fleet.positions.size());
  for (uint64_t i = 0; i < all.size(); ++i) all[i] = {from.metres(fleet.positions[i]), i};
  const auto take = std::min<size_t>(k, all.size());
  std::partial_sort(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(take), all.end(),
                    [](const auto& a, const auto& b) {
                      if (a.first != b.first) return a.first < b.first;
                      return deviceId(a.second) < deviceId(b.second);
                    });
  std::vector<Hit> hits;
  for (size_t j = 0; j < take; ++j) {
    const auto& [distanceM, i] = all[j];
    hits.push_back(Hit{.id = deviceId(i),
                       .lat = fleet.positions[i].lat,
                       .lon = fleet.positions[i].lon,
                       .distanceM = distanceM});
  }
  return hits;
}

}  // namespace locus::bench
