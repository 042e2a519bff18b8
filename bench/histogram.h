// A latency histogram with log-linear buckets (HdrHistogram-style): values
// below 256 are exact; above, each power of two is split into 128 equal
// buckets, so any reported percentile is within 1/128 (< 0.8 %) of a value
// that was recorded. Fixed size (7,424 counters), no allocation per record.
//
// Thread-affinity: none; one histogram per thread, merged at the end.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>

namespace locus::bench {

class Histogram {
 public:
  static constexpr int kSubBits = 7;
  static constexpr uint64_t kSub = uint64_t{1} << kSubBits;       // buckets per power of two
  static constexpr size_t kBuckets = (64 - kSubBits + 1) * kSub;  // indexOf(2^64-1) + 1

  // The bucket of `value`; buckets are ordered like their values.
  static size_t indexOf(uint64_t value) {
    if (value < 2 * kSub) return static_cast<size_t>(value);
    const int shift = std::bit_width(value) - (kSubBits + 1);  // >= 1
    return static_cast<size_t>(shift) * kSub + static_cast<size_t>(value >> shift);
  }
  // The smallest value in bucket `index`.
  static uint64_t lowestOf(size_t index) {
    if (index < 2 * kSub) return index;
    const size_t shift = index / kSub - 1;
    return static_cast<uint64_t>(index - shift * kSub) << shift;
  }
  // The largest value in bucket `index`.
  static uint64_t highestOf(size_t index) {
    return index + 1 >= kBuckets ? std::numeric_limits<uint64_t>::max() : lowestOf(index + 1) - 1;
  }

  void record(uint64_t value) {
    ++counts_[indexOf(value)];
    ++count_;
    sum_ += static_cast<double>(value);
    min_ = std::min(min_, value);
    max_ = std::max(max_, value);
  }

  void merge(const Histogram& other) {
    for (size_t i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
    count_ += other.count_;
    sum_ += other.sum_;
    min_ = std::min(min_, other.min_);
    max_ = std::max(max_, other.max_);
  }

  uint64_t count() const { return count_; }
  uint64_t min() const { return count_ == 0 ? 0 : min_; }
  uint64_t max() const { return max_; }
  double mean() const { return count_ == 0 ? 0 : sum_ / static_cast<double>(count_); }

  // The value below or at which `percent` (0..100] of the records lie: the
  // highest value of the bucket holding that record, never above max(). 0
  // when empty.
  uint64_t percentile(double percent) const {
    if (count_ == 0) return 0;
    const double wanted =
        std::ceil(std::clamp(percent, 0.0, 100.0) / 100.0 * static_cast<double>(count_));
    const uint64_t rank = std::max<uint64_t>(1, static_cast<uint64_t>(wanted));
    uint64_t seen = 0;
    for (size_t i = 0; i < kBuckets; ++i) {
      seen += counts_[i];
      if (seen >= rank) return std::min(highestOf(i), max_);
    }
    return max_;
  }

 private:
  std::array<uint64_t, kBuckets> counts_{};
  uint64_t count_ = 0;
  double sum_ = 0;
  uint64_t min_ = std::numeric_limits<uint64_t>::max();
  uint64_t max_ = 0;
};

}  // namespace locus::bench
