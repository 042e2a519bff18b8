// A partial answer is never silent: `locus` prints it, says so on stderr,
// and with --require-complete (or LOCUS_REQUIRE_COMPLETE) exits 2, so a
// script can treat it as the failure it is.
#include <catch2/catch.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>

#include "locus/testkit/cluster.h"
#include "locus/testkit/command.h"
#include "locus/testkit/process.h"

namespace {

using namespace std::chrono_literals;
const std::string kBin = locus::testkit::binDir();

// Runs `ENV locus --server SERVER ARGS` (bounded).
locus::testkit::CommandOutcome locus(const std::string& env, const std::string& server,
                                     const std::string& args) {
  return locus::testkit::runCommand((env.empty() ? "" : "env " + env + " ") + kBin +
                                    "/locus --server " + server + " " + args);
}

TEST_CASE("locus says a partial answer on stderr and fails it on request", "[cli]") {
  // The server's only unit does not exist: every answer is partial.
  locus::testkit::ChildProcess server(
      kBin + "/locus-server",
      {"--units", "tcp://127.0.0.1:1", "--listen", "127.0.0.1:0", "--timeout-ms", "50"});
  const auto bound = server.waitForStderr(std::regex(R"(listening on ([0-9.]+:[0-9]+))"), 5s);
  INFO(server.stderrText());
  REQUIRE(bound);

  for (const std::string query :
       {"nearest --lat 31.2 --lon 121.4", "box --south 31 --west 121 --north 32 --east 122 --count",
        "stats"}) {
    INFO(query);
    const auto plain = locus("", *bound, query);
    CHECK(plain.code == 0);
    const auto answer = nlohmann::json::parse(plain.out);
    CHECK(answer["partial"] == true);
    CHECK(answer["shards"]["answered"] == 0);
    CHECK_THAT(plain.err, Catch::Contains("partial answer: 0 of 1 units answered"));
    CHECK(nlohmann::json::parse(plain.err).contains("warning"));

    const auto strict = locus("", *bound, "--require-complete " + query);
    CHECK(strict.code == 2);
    CHECK(nlohmann::json::parse(strict.out)["partial"] == true);  // still printed
    const auto byEnv = locus("LOCUS_REQUIRE_COMPLETE=1", *bound, query);
    CHECK(byEnv.code == 2);
  }
}

}  // namespace
