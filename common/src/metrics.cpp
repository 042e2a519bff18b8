#include "locus/common/metrics.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace locus::metrics {
namespace {

bool validName(const std::string& name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    const bool digit = c >= '0' && c <= '9';
    if (!letter && !(digit && i > 0)) return false;
  }
  return true;
}

// Label values escape backslash, double quote and newline; help text
// escapes backslash and newline.
std::string escape(const std::string& s, bool quotes) {
  std::string out;
  out.reserve(s.size());
  for (const char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quotes) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
  return out;
}

std::string renderLabels(const Labels& labels) {
  std::string out;
  for (const auto& [name, value] : labels) {
    if (!validName(name) || name.find(':') != std::string::npos) {
      throw std::invalid_argument("invalid Prometheus label name: " + name);
    }
    if (!out.empty()) out += ',';
    out += fmt::format("{}=\"{}\"", name, escape(value, true));
  }
  return out;
}

// Numbers as Prometheus reads them: integers without a fraction, +Inf.
std::string number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  return fmt::format("{}", v);
}

std::string braces(const std::string& labels) {
  return labels.empty() ? "" : "{" + labels + "}";
}

}  // namespace

Histogram::Histogram() : Histogram(latencyBuckets()) {}

Histogram::Histogram(std::vector<double> upperBounds)
    : upperBounds_(std::move(upperBounds)),
      counts_(std::make_unique<std::atomic<uint64_t>[]>(upperBounds_.size() + 1)) {
  if (!std::is_sorted(upperBounds_.begin(), upperBounds_.end())) {
    throw std::invalid_argument("histogram bounds must ascend");
  }
}

void Histogram::observe(double v) {
  const auto bucket =
      std::lower_bound(upperBounds_.begin(), upperBounds_.end(), v) - upperBounds_.begin();
  counts_[static_cast<size_t>(bucket)].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  s.upperBounds = upperBounds_;
  s.cumulative.resize(upperBounds_.size() + 1);
  uint64_t running = 0;
  for (size_t i = 0; i <= upperBounds_.size(); ++i) {
    running += counts_[i].load(std::memory_order_relaxed);
    s.cumulative[i] = running;
  }
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

std::vector<double> latencyBuckets() {
  return {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
          0.025,   0.05,   0.1,     0.25,   0.5,   1,      2.5,   10};
}

void Registry::add(const std::string& name, const std::string& help, Type type, Series series) {
  if (!validName(name)) throw std::invalid_argument("invalid Prometheus metric name: " + name);
  std::lock_guard lock(mutex_);
  auto [it, inserted] = families_.try_emplace(name, Family{type, help, {}});
  if (!inserted && it->second.type != type) {
    throw std::invalid_argument("metric " + name + " registered with two types");
  }
  it->second.series.push_back(std::move(series));
}

void Registry::counter(const std::string& name, const std::string& help, const Labels& labels,
                       const Counter& counter) {
  add(name, help, Type::kCounter,
      Series{renderLabels(labels), [&counter] { return static_cast<double>(counter.value()); }});
}

void Registry::gauge(const std::string& name, const std::string& help, const Labels& labels,
                     const Gauge& gauge) {
  add(name, help, Type::kGauge, Series{renderLabels(labels), [&gauge] { return gauge.value(); }});
}

void Registry::gauge(const std::string& name, const std::string& help, const Labels& labels,
                     std::function<double()> read) {
  add(name, help, Type::kGauge, Series{renderLabels(labels), std::move(read)});
}

void Registry::histogram(const std::string& name, const std::string& help, const Labels& labels,
                         const Histogram& histogram) {
  add(name, help, Type::kHistogram, Series{renderLabels(labels), nullptr, &histogram});
}

std::string Registry::render() const {
  std::lock_guard lock(mutex_);
  std::string out;
  for (const auto& [name, family] : families_) {
    static constexpr const char* kTypes[] = {"counter", "gauge", "histogram"};
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, escape(family.help, false), name,
                       kTypes[static_cast<int>(family.type)]);
    for (const auto& series : family.series) {
      if (!series.histogram) {
        out += fmt::format("{}{} {}\n", name, braces(series.labels), number(series.read()));
        continue;
      }
      const auto snap = series.histogram->snapshot();
      const std::string sep = series.labels.empty() ? "" : ",";
      for (size_t i = 0; i <= snap.upperBounds.size(); ++i) {
        const double le = i < snap.upperBounds.size() ? snap.upperBounds[i] : INFINITY;
        out += fmt::format("{}_bucket{{{}{}le=\"{}\"}} {}\n", name, series.labels, sep, number(le),
                           snap.cumulative[i]);
      }
      out += fmt::format("{}_sum{} {}\n", name, braces(series.labels), number(snap.sum));
      out += fmt::format("{}_count{} {}\n", name, braces(series.labels), snap.cumulative.back());
    }
  }
  return out;
}

}  // namespace locus::metrics
