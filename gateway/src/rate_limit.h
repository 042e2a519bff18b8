// A token bucket (private to locus::gateway): at most `perS` events a
// second on average, in bursts of up to a second's worth.
#pragma once

#include <algorithm>
#include <cstdint>

namespace locus::gateway {

class RateLimit {
 public:
  // 0 = no limit.
  explicit RateLimit(uint32_t perS) : perS_(perS), tokens_(perS) {}

  // Whether one more event fits at `nowMs` (and takes its token).
  bool take(int64_t nowMs) {
    if (perS_ == 0) return true;
    if (nowMs > lastMs_) {
      tokens_ = std::min<double>(perS_, tokens_ + perS_ * double(nowMs - lastMs_) / 1000.0);
      lastMs_ = nowMs;
    }
    if (tokens_ < 1) return false;
    tokens_ -= 1;
    return true;
  }

 private:
  uint32_t perS_;
  double tokens_;
  int64_t lastMs_ = 0;
};

}  // namespace locus::gateway
