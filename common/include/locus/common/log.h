// Process logging: one line per event on stderr, "time level name: message".
#pragma once

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace locus {

// Makes the default spdlog logger write to stderr under `name`.
void initLogging(const std::string& name);

// For events that may come in floods (refused clients): a line at most once
// per interval, saying how many happened since the last. Thread-affinity:
// one thread.
class ThrottledLog {
 public:
  explicit ThrottledLog(std::chrono::steady_clock::duration interval = std::chrono::seconds(10))
      : interval_(interval) {}
  // Counts one event; the count to report when a line is due, else nothing.
  std::optional<uint64_t> due() {
    ++since_;
    const auto now = std::chrono::steady_clock::now();
    if (logged_ && now - *logged_ < interval_) return std::nullopt;
    logged_ = now;
    const uint64_t n = since_;
    since_ = 0;
    return n;
  }

 private:
  std::chrono::steady_clock::duration interval_;
  std::optional<std::chrono::steady_clock::time_point> logged_;
  uint64_t since_ = 0;
};

}  // namespace locus
