// `locus token ...`, `locus apikey ...` and `locus keygen`: the credentials
// of SPEC "Security", made where the operator keeps the key files.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <optional>
#include <string>

namespace locus::cli {

struct KeyCommands {
  std::string keyFile;
  std::string keyId;
  std::string devicePrefix;
  std::string tenant;
  int64_t ttlMs = 30LL * 24 * 3'600'000;  // 30 days
  std::string scope = "read";
  CLI::App* tokenKeygen = nullptr;
  CLI::App* tokenIssue = nullptr;
  CLI::App* apikeyCreate = nullptr;
  std::string keygenOut;
  CLI::App* curveKeygen = nullptr;
};

// Adds `token keygen`, `token issue`, `apikey create` and `keygen` (CURVE)
// to `app`.
void addKeyCommands(CLI::App& app, KeyCommands& k);

// Runs the key command the command line named: its exit status, or nothing
// when it named none. Prints one JSON object on stdout (errors on stderr).
std::optional<int> runKeyCommand(const KeyCommands& k);

}  // namespace locus::cli
