// The city workload of locus-bench, independent of the system under test:
// the devices and their moves, the phases' workers, the closed-loop and
// open-loop query drivers, and the brute-force check of answers.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "backend.h"
#include "histogram.h"
#include "locus/common/geo.h"
#include "locus/common/query.h"

namespace locus::bench {

inline constexpr uint32_t kK = 10;  // every query is a nearest-10

std::string deviceId(uint64_t i);
// A uniform point of the city box, quantized as the units store it.
geo::LatLon randomPoint(std::mt19937_64& rng);
// `p` moved 1..50 metres in a random direction, quantized.
geo::LatLon moved(geo::LatLon p, std::mt19937_64& rng);

double secondsSince(Clock::time_point start);
Clock::duration seconds(double s);

// A worker's failure, reported by the phase after all workers ended.
class Failures {
 public:
  void note(const std::string& what);
  void throwIfAny();

 private:
  std::mutex mutex_;
  std::string first_;
};

// Runs `body(worker)` on `workers` threads and prints progress of `done`
// every 2 s until they end. Returns the seconds taken; throws the first
// worker's failure.
double runPhase(const std::string& name, int workers, uint64_t total,
                const std::atomic<uint64_t>& done, const std::function<void(int)>& body,
                Failures& failures);

struct Sample {
  geo::LatLon center;
  std::vector<Hit> hits;
};

struct QueryOutcome {
  Histogram latencyNs;
  uint64_t partial = 0;
  std::vector<Sample> samples;
};

// Nearest-kK queries over one session in calls of `batch` points
// (startNearestMany when more than 1), `depth` calls in flight (1: one at a
// time; more: the next is sent as soon as one is answered, on the one
// connection), each timed from its call's send to its answer; keeps the
// first `keep` whole answers for the check.
QueryOutcome runQueries(Backend& backend, uint64_t count, size_t keep, uint64_t seed, size_t depth,
                        size_t batch, std::atomic<uint64_t>& done);

// One connection's share of the open loop. A query is "late" when the
// in-flight bound held it back; "dropped" when held past 1 s; "unanswered"
// when still in flight 2 s after the schedule.
struct OpenLoopOutcome {
  Histogram latencyNs;  // scheduled send time to answer, answered queries
  Histogram sendLagNs;  // scheduled to actual send time, sent queries
  uint64_t scheduled = 0, sent = 0, answered = 0, late = 0, dropped = 0, unanswered = 0,
           partial = 0;

  void merge(const OpenLoopOutcome& o);
};

// Nearest-kK queries over one session at Poisson arrivals of `ratePerS` for
// `windowS` seconds, whether or not earlier ones have been answered, each
// timed from its scheduled send time (so a slow answer that holds back
// later queries shows in their latency too: no coordinated omission). At
// most `maxInFlight` in flight. Answers must hold `wantHits` hits (when not
// 0), nearest first.
OpenLoopOutcome runOpenLoopQueries(Backend& backend, double ratePerS, double windowS,
                                   size_t maxInFlight, uint64_t seed, size_t wantHits,
                                   std::atomic<uint64_t>& done);

struct UpdateOutcome {
  uint64_t reports = 0;  // acknowledged
  double seconds = 0;    // from the first tick to the last acknowledgement
};

// Moves random devices at `ratePerS` reports/s for `windowS` seconds over
// one session, in a batch every 10 ms (catching up when behind), with tsMs
// counting up from `firstTsMs`. The only writer of `fleet` meanwhile.
UpdateOutcome runOpenLoopUpdates(Backend& backend, Fleet& fleet, double ratePerS, double windowS,
                                 int64_t firstTsMs, uint64_t seed, std::atomic<uint64_t>& done);

// The k nearest devices of `center` by (distance, id), by scanning all.
std::vector<Hit> bruteForceNearest(const Fleet& fleet, geo::LatLon center, uint32_t k);

}  // namespace locus::bench
