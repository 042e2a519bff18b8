// Command-line flags that also read LOCUS_* environment variables, as the
// SPEC requires of every binary: `--ttl-s` reads LOCUS_TTL_S; flags win.
#pragma once

#include <CLI/CLI.hpp>
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

}  // namespace locus
