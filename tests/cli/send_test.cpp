// `locus send` against a gateway that is not there: one clear error and a
// non-zero exit, whether or not the input held a valid line.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <string>

#include "locus/testkit/cluster.h"

namespace {

const std::string kBin = locus::testkit::binDir();

// Runs the command `shell` (bounded) and returns its stdout and stderr, then "#<exit code>".
std::string run(const std::string& shell) {
  FILE* pipe = popen(("timeout 20 " + shell + " 2>&1; echo \"#$?\"").c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string out;
  char buffer[4096];
  while (size_t n = fread(buffer, 1, sizeof buffer, pipe)) out.append(buffer, n);
  pclose(pipe);
  return out;
}

TEST_CASE("locus send says the gateway is unreachable, valid lines or not", "[cli]") {
  char path[] = "/tmp/locus-send-test-XXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  close(fd);
  for (const std::string input : {R"({"id":"a","lat":1,"lon":2})", "not json", ""}) {
    INFO("input: " << input);
    std::ofstream(path) << input << "\n";
    const std::string out = run(kBin + "/locus --gateway 127.0.0.1:1 send " + path);
    CHECK_THAT(out, Catch::Contains("cannot send to the gateway at 127.0.0.1:1"));
    CHECK_THAT(out, Catch::EndsWith("#1\n"));
  }
  unlink(path);
}

}  // namespace
