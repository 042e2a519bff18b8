// `locus local` as a user starts it: a whole cluster in one process that
// answers a nearest query within seconds, takes reports through `locus send`
// and the NDJSON port, and stops cleanly on SIGINT.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>

#include "locus/testkit/cluster.h"
#include "locus/testkit/http.h"
#include "locus/testkit/process.h"
#include "locus/testkit/temp_dir.h"

namespace {

using namespace std::chrono_literals;
const std::string kBin = locus::testkit::binDir();

// Runs a shell command (bounded by `timeout`) and returns its stdout.
std::string run(const std::string& command) {
  std::string out;
  FILE* pipe = popen(("timeout 20 " + command).c_str(), "r");
  REQUIRE(pipe != nullptr);
  char buffer[4096];
  while (size_t n = fread(buffer, 1, sizeof buffer, pipe)) out.append(buffer, n);
  pclose(pipe);
  return out;
}

// Sends `text` to HOST:PORT over TCP and reads until `lines` lines came back.
std::string talk(const std::string& address, const std::string& text, int lines) {
  const auto colon = address.rfind(':');
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::stoi(address.substr(colon + 1))));
  inet_pton(AF_INET, address.substr(0, colon).c_str(), &addr.sin_addr);
  REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
  std::string reply;
  char buffer[4096];
  while (std::count(reply.begin(), reply.end(), '\n') < lines) {
    const ssize_t n = read(fd, buffer, sizeof buffer);
    if (n <= 0) break;
    reply.append(buffer, static_cast<size_t>(n));
  }
  close(fd);
  return reply;
}

// A locus local on free ports, started and ready; the addresses it bound.
struct Local {
  explicit Local(const std::vector<std::string>& more) : process(kBin + "/locus", withPorts(more)) {
    const auto ready = process.waitForStderr(std::regex("ready: "), 30s);
    INFO(process.stderrText());
    REQUIRE(ready);
    std::smatch m;
    const std::string log = process.stderrText();
    REQUIRE(std::regex_search(log, m, std::regex(R"(server listening on (\S+))")));
    server = m[1];
    REQUIRE(std::regex_search(
        log, m, std::regex(R"(gateway listening on (\S+) \(rpc\) and (\S+) \(text\))")));
    gateway = m[1];
    text = m[2];
    REQUIRE(std::regex_search(log, m, std::regex(R"(server HTTP API on http://(\S+)/v1/)")));
    http = m[1];
    REQUIRE(std::regex_search(log, m, std::regex(R"(gateway HTTP ingest on http://(\S+)/v1/)")));
    gatewayHttp = m[1];
  }
  static std::vector<std::string> withPorts(std::vector<std::string> args) {
    args.insert(args.begin(), {"local", "--gateway-listen", "127.0.0.1:0", "--text-listen",
                               "127.0.0.1:0", "--server-listen", "127.0.0.1:0", "--http-listen",
                               "127.0.0.1:0", "--gateway-http-listen", "127.0.0.1:0"});
    return args;
  }
  locus::testkit::ChildProcess process;
  std::string server, gateway, text, http, gatewayHttp;
};

TEST_CASE("locus local answers a nearest query within seconds of starting", "[local]") {
  Local cluster({"--units", "3", "--simulate", "20000", "--rate", "5000"});
  auto& local = cluster.process;
  const std::string server = cluster.server, gateway = cluster.gateway, text = cluster.text;

  const auto nearest = nlohmann::json::parse(
      run(kBin + "/locus --server " + server + " nearest --lat 31.23 --lon 121.47 -k 5"));
  CHECK(nearest["results"].size() == 5);
  CHECK(nearest["partial"] == false);
  CHECK(nearest["shards"]["total"] == 3);
  const auto stats = nlohmann::json::parse(run(kBin + "/locus --server " + server + " stats"));
  uint64_t devices = 0;
  for (const auto& u : stats["units"]) devices += u["devices"].get<uint64_t>();
  CHECK(devices == 20000);

  // A report through `locus send`, another through the NDJSON port.
  const auto sent =
      nlohmann::json::parse(run("echo '{\"id\":\"me\",\"lat\":-33.86,\"lon\":151.21}' | " + kBin +
                                "/locus --gateway " + gateway + " send"));
  CHECK(sent["accepted"] == 1);
  CHECK(talk(text, "{\"id\":\"you\",\"lat\":-33.87,\"lon\":151.2}\nnot json\n", 2) ==
        "{\"ok\":true}\n{\"ok\":false,\"error\":\"invalid JSON\"}\n");
  nlohmann::json near;
  for (int attempt = 0; attempt < 50; ++attempt) {  // visible within ~100 ms
    near = nlohmann::json::parse(
        run(kBin + "/locus --server " + server + " nearest --lat -33.86 --lon 151.21 -k 2"));
    if (near["results"].size() == 2) break;
    usleep(100'000);
  }
  REQUIRE(near["results"].size() == 2);
  CHECK(near["results"][0]["id"] == "me");
  CHECK(near["results"][1]["id"] == "you");

  // The same cluster over HTTP: a report in through the gateway, seen by
  // the server's API.
  const auto posted = locus::testkit::httpPost(cluster.gatewayHttp, "/v1/reports",
                                               "{\"id\":\"them\",\"lat\":-33.85,\"lon\":151.2}\n");
  CHECK(posted.status == 200);
  CHECK(posted.body == "{\"ok\":true}\n");
  const auto overHttp = locus::testkit::httpGet(cluster.http, "/v1/devices/them");
  REQUIRE(overHttp.status == 200);
  CHECK(nlohmann::json::parse(overHttp.body)["results"][0]["lat"] == -33.85);

  local.signal(SIGINT);
  const auto status = local.waitExit(10s);
  REQUIRE(status);
  CHECK(status->exited);
  CHECK(status->code == 0);
}

TEST_CASE("locus local refuses bad options and busy ports", "[local]") {
  locus::testkit::ChildProcess bad(kBin + "/locus", {"local", "--units", "0"});
  auto status = bad.waitExit(10s);
  REQUIRE(status);
  CHECK(status->code != 0);
  CHECK_THAT(bad.stderrText(), Catch::Contains("--units"));

  // A port someone else holds: the cluster does not start, and says why.
  const int holder = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(holder, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(listen(holder, 1) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(getsockname(holder, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  const std::string busy = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  locus::testkit::ChildProcess clash(
      kBin + "/locus", {"local", "--units", "1", "--server-listen", busy, "--gateway-listen",
                        "127.0.0.1:0", "--text-listen", "127.0.0.1:0", "--http-listen",
                        "127.0.0.1:0", "--gateway-http-listen", "127.0.0.1:0"});
  status = clash.waitExit(10s);
  close(holder);
  REQUIRE(status);
  CHECK(status->code != 0);
  CHECK_THAT(clash.stderrText(), Catch::Contains("cannot start server"));
}

}  // namespace

TEST_CASE("locus local --data-dir keeps what it stored across a restart", "[local]") {
  locus::testkit::TempDir dir;
  {
    Local local({"--units", "2", "--data-dir", dir.path()});
    CHECK(talk(local.text,
               R"({"id":"kept","lat":31.2,"lon":121.4,"ts":1763000000000})"
               "\n",
               1) == "{\"ok\":true}\n");
    local.process.signal(SIGTERM);
    REQUIRE(local.process.waitExit(10'000ms));
  }
  Local again({"--units", "2", "--data-dir", dir.path()});
  const auto got =
      nlohmann::json::parse(run(kBin + "/locus --server " + again.server + " get kept"));
  INFO(got.dump());
  REQUIRE(got["results"].size() == 1);
  CHECK(got["results"][0]["ts"] == 1763000000000);
}
