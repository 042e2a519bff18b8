// `locus health`, the check a container engine runs: exit 0 and the JSON of
// /readyz (or /healthz) when the daemon is ready, 1 when it is not or cannot
// be reached, with the reason.
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

struct Outcome {
  int code = -1;
  std::string out;  // stdout then stderr
};

// Runs `locus health ARGS` (bounded) and returns its exit code and output.
Outcome health(const std::string& args) {
  const auto run = locus::testkit::runCommand(kBin + "/locus health " + args);
  return {run.code, run.out + run.err};
}

std::string httpAddressOf(locus::testkit::ChildProcess& daemon) {
  const auto bound = daemon.waitForStderr(std::regex(R"(http listening on ([0-9.]+:[0-9]+))"), 5s);
  INFO(daemon.stderrText());
  REQUIRE(bound);
  return *bound;
}

TEST_CASE("locus health follows a server's readiness", "[cli][http]") {
  // A server whose only unit does not exist: alive, never ready.
  locus::testkit::ChildProcess server(
      kBin + "/locus-server",
      {"--units", "tcp://127.0.0.1:1", "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"});
  const std::string address = httpAddressOf(server);

  const Outcome live = health(address + " --live");
  CHECK(live.code == 0);
  CHECK(nlohmann::json::parse(live.out)["status"] == "ok");

  const Outcome notReady = health(address);
  CHECK(notReady.code == 1);
  const auto body = nlohmann::json::parse(notReady.out);
  CHECK(body["ready"] == false);
  CHECK(body["units"][0]["up"] == false);
}

TEST_CASE("locus health says ready for a serving unit", "[cli][http]") {
  locus::testkit::ChildProcess unit(
      kBin + "/locus-unit", {"--listen", "tcp://127.0.0.1:0", "--http-listen", "127.0.0.1:0"});
  const Outcome ready = health(httpAddressOf(unit));
  CHECK(ready.code == 0);
  CHECK(nlohmann::json::parse(ready.out)["ready"] == true);
}

TEST_CASE("locus health fails with a reason when nothing answers or the address is bad",
          "[cli][http]") {
  const Outcome nobody = health("127.0.0.1:1");
  CHECK(nobody.code == 1);
  CHECK_THAT(nobody.out, Catch::Contains("cannot reach 127.0.0.1:1/readyz"));
  const Outcome bad = health("no-port");
  CHECK(bad.code == 1);
  CHECK_THAT(bad.out, Catch::Contains("HOST:PORT"));
}

}  // namespace
