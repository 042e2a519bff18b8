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

// --curve-key and --unit-public-key: how a process that talks to units
// (`who`: "this gateway's") proves itself and knows them (transport/curve.h).
inline void addUnitLinkFlags(CLI::App& app, std::string& curveKey, std::string& unitPublicKey,
                             const std::string& who) {
  addFlag(app, "--curve-key", curveKey,
          who + " CURVE keypair file (locus keygen), listed in the units' --curve-clients");
  addFlag(app, "--unit-public-key", unitPublicKey,
          "the units' CURVE public key file: with --curve-key, speak only CURVE to them");
}

// --tls-cert and --tls-key: TLS on `ports` ("the RPC and HTTP ports").
inline void addTlsFlags(CLI::App& app, std::string& cert, std::string& key,
                        const std::string& ports) {
  addFlag(app, "--tls-cert", cert, "PEM certificate chain: TLS on " + ports + " (with --tls-key)");
  addFlag(app, "--tls-key", key, "PEM private key of --tls-cert (mode 600)");
}

}  // namespace locus
