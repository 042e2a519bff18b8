// Running a command line as a user types it, for tests of the CLI: bounded
// by `timeout`, its exit status, stdout and stderr apart. Header-only.
// Uses Catch2.
#pragma once

#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <string>

namespace locus::testkit {

struct CommandOutcome {
  int code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

// Runs `command` with sh, for at most 20 seconds.
inline CommandOutcome runCommand(const std::string& command) {
  static int calls = 0;
  const std::string errFile =
      "/tmp/locus-test-" + std::to_string(getpid()) + "-" + std::to_string(++calls) + ".err";
  FILE* pipe = popen(("timeout 20 " + command + " 2>" + errFile + "; echo \"#$?\"").c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string text;
  char buffer[4096];
  while (size_t n = fread(buffer, 1, sizeof buffer, pipe)) text.append(buffer, n);
  pclose(pipe);
  const auto hash = text.rfind('#');
  REQUIRE(hash != std::string::npos);
  std::string err;
  if (FILE* f = fopen(errFile.c_str(), "r")) {
    while (size_t n = fread(buffer, 1, sizeof buffer, f)) err.append(buffer, n);
    fclose(f);
  }
  std::remove(errFile.c_str());
  return {std::stoi(text.substr(hash + 1)), text.substr(0, hash), err};
}

}  // namespace locus::testkit
