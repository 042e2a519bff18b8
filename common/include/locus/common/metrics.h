// Metrics for operators, in the Prometheus text exposition format (0.0.4).
//
// Counter, Gauge and Histogram are plain members of whatever they measure:
// the thread that owns that object updates them (relaxed atomics, no locks
// on the hot path) and any other thread may read them. A Registry is the
// exposition list: it names the metrics (with help text and labels) and
// renders them for /metrics; it references them, so it must not outlive
// them.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace locus::metrics {

// A count that only goes up.
class Counter {
 public:
  void add(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  Counter& operator++() {
    add();
    return *this;
  }
  Counter& operator+=(uint64_t n) {
    add(n);
    return *this;
  }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// A value that goes up and down.
class Gauge {
 public:
  void set(double v) { value_.store(v, std::memory_order_relaxed); }
  void add(double d) { value_.fetch_add(d, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Observations counted into fixed buckets (upper bounds, ascending; +Inf is
// implied), with their sum.
// Bucket bounds for request latencies in seconds: 50 µs to 10 s.
std::vector<double> latencyBuckets();

class Histogram {
 public:
  // Latency buckets (latencyBuckets()), for durations in seconds.
  Histogram();
  explicit Histogram(std::vector<double> upperBounds);

  void observe(double v);

  struct Snapshot {
    std::vector<double> upperBounds;
    std::vector<uint64_t> cumulative;  // per bound, then +Inf (= count)
    double sum = 0;
  };
  // Consistent enough for scraping: buckets are read one by one while
  // observations may continue, then made cumulative.
  Snapshot snapshot() const;

 private:
  std::vector<double> upperBounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // per bound, then +Inf
  std::atomic<double> sum_{0};
};

using Labels = std::vector<std::pair<std::string, std::string>>;

// Thread-safety: registering and rendering take a mutex, so both may run on
// any thread; register everything before serving to keep scrapes stable.
class Registry {
 public:
  // `name` must be a valid Prometheus metric name (checked: throws
  // std::invalid_argument). A family (one name) has one help text and type;
  // each call adds one labelled series to it.
  void counter(const std::string& name, const std::string& help, const Labels& labels,
               const Counter& counter);
  void gauge(const std::string& name, const std::string& help, const Labels& labels,
             const Gauge& gauge);
  // A gauge computed at each scrape; `read` runs on the scraping thread.
  void gauge(const std::string& name, const std::string& help, const Labels& labels,
             std::function<double()> read);
  void histogram(const std::string& name, const std::string& help, const Labels& labels,
                 const Histogram& histogram);

  // Every family in name order, in the text exposition format.
  std::string render() const;

 private:
  enum class Type { kCounter, kGauge, kHistogram };
  struct Series {
    std::string labels;  // rendered without braces: a="1",b="2" (or empty)
    std::function<double()> read;
    const Histogram* histogram = nullptr;
  };
  struct Family {
    Type type;
    std::string help;
    std::vector<Series> series;
  };

  void add(const std::string& name, const std::string& help, Type type, Series series);

  mutable std::mutex mutex_;
  std::map<std::string, Family> families_;
};

}  // namespace locus::metrics
