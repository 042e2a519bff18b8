// Command-line flags that also read LOCUS_* environment variables, as the
// SPEC requires of every binary: `--ttl-s` reads LOCUS_TTL_S; flags win.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <map>
#include <string>

namespace locus {

// LOCUS_<FLAG>: upper case, '-' → '_', leading dashes dropped.
std::string envNameForFlag(const std::string& flag);

// Adds `--name` bound to `value`, with its default shown in --help and the
// matching environment variable as a fallback.
template <typename T>
CLI::Option* addFlag(CLI::App& app, const std::string& flag, T& value,
                     const std::string& description) {
  return app.add_option(flag, value, description)
      ->envname(envNameForFlag(flag))
      ->capture_default_str();
}

// Adds `--name` for a duration held in milliseconds: a bare number is
// milliseconds, or it carries a unit ("250ms", "30s", "5m", "1h").
inline CLI::Option* addDurationFlag(CLI::App& app, const std::string& flag, int64_t& valueMs,
                                    const std::string& description) {
  return addFlag(app, flag, valueMs, description + " (ms, or with a unit: 30s, 5m, 1h)")
      ->transform(CLI::AsNumberWithUnit(
          std::map<std::string, int64_t>{{"ms", 1}, {"s", 1000}, {"m", 60'000}, {"h", 3'600'000}},
          CLI::AsNumberWithUnit::CASE_SENSITIVE));
}

}  // namespace locus
