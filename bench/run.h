// locus-bench's run: the four phases of the city workload against one
// backend, with the checks that make the numbers trustworthy.
//
//   phase 1  load D devices ("bench-<i>")
//   phase 2  U updates, each moving a random device 1..50 m, at full rate
//   phase 3  Q nearest-10 queries at uniform random points, --pipeline D
//            in flight per client, 1 by default (the closed loop: its rate
//            is the maximum throughput at this concurrency and depth)
//   phase 4  with --open-loop-rate only: nearest-10 queries on a fixed
//            Poisson schedule while one more connection streams updates
#pragma once

#include <cstdint>
#include <vector>

#include "backend.h"
#include "options.h"
#include "workload.h"

namespace locus::bench {

struct PhaseResult {
  uint64_t count = 0;
  double ackedSeconds = 0;    // until the last call was answered
  double appliedSeconds = 0;  // until the units' counters showed every report
};

struct OpenLoopResult {
  bool ran = false;
  double targetPerS = 0;      // queries/s asked for
  double closedLoopPerS = 0;  // phase 3's rate it is a fraction of; 0 for a fixed rate
  double seconds = 0;         // length of the schedule
  OpenLoopOutcome queries;
  double updateTargetPerS = 0;
  UpdateOutcome updates;
};

// Phase 3 at one pipeline depth.
struct QueryPhase {
  int depth = 1;  // queries in flight per connection
  double seconds = 0;
  QueryOutcome outcome;
  // CPU seconds used meanwhile by the system's processes (negative when
  // unknown) and by this bench's own.
  double systemCpuSeconds = -1;
  double clientCpuSeconds = 0;
};

struct RunResult {
  PhaseResult load, updates;
  OpenLoopResult openLoop;
  std::vector<QueryPhase> queries;  // one per --pipeline depth, in its order
  Totals totals;
  uint64_t rssBytes = 0;  // spawned units' sum, Redis' growth; 0 for an external cluster
  size_t checkedSamples = 0;
};

// Runs every phase; throws with a reason on any failed check.
RunResult run(const Options& o, Backend& backend, const Deadline& deadline);

double perSecond(double count, double seconds);

}  // namespace locus::bench
