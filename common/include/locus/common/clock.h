// Wall-clock time as Locus measures it: ms since the Unix epoch, the unit of
// every tsMs. Components take "now" as a parameter so tests can choose it.
#pragma once

#include <chrono>
#include <cstdint>

namespace locus {

inline int64_t wallClockMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace locus
