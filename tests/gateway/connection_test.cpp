// The gateway's text connection and router as a library: NDJSON over a KJ
// two-way pipe into a Router whose unit runs in this process (inproc://).
// One reply per line in order, whatever the line; a unit that does not
// answer stops the reading (backpressure) until it is stalled, and then
// only its reports are refused.
#include <kj/async-io.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "device_auth.h"
#include "locus/common/auth.h"
#include "locus/common/clock.h"
#include "locus/common/report_json.h"
#include "locus/gateway/router.h"
#include "locus/testkit/cluster.h"
#include "locus/testkit/inproc.h"
#include "locus/testkit/temp_dir.h"
#include "text_connection.h"

namespace locus::gateway {
namespace {

using namespace locus::testkit;

const std::string kOk = R"({"ok":true})";

// A TextConnection over one end of a pipe; the test holds the other end.
struct Pipe {
  Pipe(kj::AsyncIoContext& io, Router& router, ProtocolCounters& counters,
       DeviceAuth& auth = openAuth())
      : io(io), ends(io.provider->newTwoWayPipe()) {
    connection = kj::heap<TextConnection>(
        kj::mv(ends.ends[0]),
        IngestContext{router, counters, auth, kDefaultMaxFutureSkewMs, limits(), refusals()});
    served = connection->run().eagerlyEvaluate(nullptr);
  }

  static DeviceAuth& openAuth() {
    static DeviceAuth open;
    return open;
  }
  static const ClientLimits& limits() {
    static const ClientLimits defaults;
    return defaults;
  }
  static Refusals& refusals() {
    static Refusals counted;
    return counted;
  }

  // Whether the connection ended (closed its end) within `waitMs`.
  bool ended(int64_t waitMs = 1000) {
    return io.provider->getTimer()
        .timeoutAfter(waitMs * kj::MILLISECONDS, kj::mv(served))
        .then([] { return true; }, [](kj::Exception&&) { return false; })
        .wait(io.waitScope);
  }

  void write(const std::string& bytes) {
    ends.ends[1]->write(bytes.data(), bytes.size()).wait(io.waitScope);
  }

  // The reply lines that arrive within `waitMs` after the last byte.
  std::vector<std::string> replies(size_t atMost, int64_t waitMs = 1000) {
    std::vector<std::string> lines;
    char chunk[65536];
    auto& timer = io.provider->getTimer();
    while (lines.size() < atMost) {
      const size_t newline = buffer.find('\n');
      if (newline != std::string::npos) {
        lines.push_back(buffer.substr(0, newline));
        buffer.erase(0, newline + 1);
        continue;
      }
      auto read = ends.ends[1]->tryRead(chunk, 1, sizeof chunk);
      auto n = timer.timeoutAfter(waitMs * kj::MILLISECONDS, kj::mv(read))
                   .then([](size_t n) -> int64_t { return static_cast<int64_t>(n); },
                         [](kj::Exception&&) -> int64_t { return -1; })
                   .wait(io.waitScope);
      if (n <= 0) break;
      buffer.append(chunk, static_cast<size_t>(n));
    }
    return lines;
  }

  kj::AsyncIoContext& io;
  kj::TwoWayPipe ends;
  kj::Own<TextConnection> connection;
  kj::Promise<void> served = nullptr;
  std::string buffer;
};

std::string line(const std::string& id) {
  return reportToJsonLine(Report{.id = id, .lat = 31.2, .lon = 121.4, .tsMs = kTsMs}) + "\n";
}

TEST_CASE("TextConnection answers every line once, in order: CRLF, split, overlong and empty",
          "[gateway][library]") {
  zmq::context_t context;
  InprocUnit unit(context, "tc-unit-0");
  auto io = kj::setupAsyncIo();
  Router router(RouterOptions{}, context, io.unixEventPort, io.provider->getTimer(),
                {unit.endpoint()});
  ProtocolCounters counters;
  Pipe pipe(io, router, counters);

  std::string crlf = line("crlf");
  crlf.insert(crlf.size() - 1, "\r");
  const std::string split = line("split");
  pipe.write(crlf + split.substr(0, 10));
  pipe.write(split.substr(10) + std::string(5000, 'x') + "\n\n" + line("after"));
  const auto replies = pipe.replies(5);
  REQUIRE(replies.size() == 5);
  CHECK(replies[0] == kOk);
  CHECK(replies[1] == kOk);
  CHECK(replies[2] == R"({"ok":false,"error":"line is longer than 4096 bytes"})");
  CHECK(replies[3] == R"({"ok":false,"error":"empty line"})");
  CHECK(replies[4] == kOk);
  CHECK(counters.accepted.value() == 3);
  CHECK(counters.rejected.value() == 2);
  CHECK(counters.connections.value() == 1);

  // An unterminated last line is answered at the end of the stream.
  const std::string last = line("last");
  pipe.write(last.substr(0, last.size() - 1));
  pipe.ends.ends[1]->shutdownWrite();
  CHECK(pipe.replies(1) == std::vector<std::string>{kOk});
  pipe.served.wait(io.waitScope);
}

// A key file with one key, and tokens signed by it.
struct Keys {
  Keys() {
    path = dir.path() + "/auth.keys";
    std::ofstream(path) << auth::newTokenKeyLine("k1");
    std::filesystem::permissions(
        path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  }
  std::string token(const std::string& prefix, int64_t ttlMs = 3'600'000) const {
    auto keys = auth::TokenKeys::load(path);
    return *auth::issueToken(keys->newest(), {"t", prefix, wallClockMs() + ttlMs, ""},
                             wallClockMs());
  }
  TempDir dir;
  std::string path;
};

TEST_CASE("TextConnection with tokens: the first line logs in, the scope holds per line",
          "[gateway][library][auth]") {
  zmq::context_t context;
  InprocUnit unit(context, "tc-auth-0");
  auto io = kj::setupAsyncIo();
  Router router(RouterOptions{}, context, io.unixEventPort, io.provider->getTimer(),
                {unit.endpoint()});
  ProtocolCounters counters;
  Keys keys;
  DeviceAuth auth(keys.path);

  SECTION("a good token: its ids are stored, others refused one by one; a new token swaps scope") {
    Pipe pipe(io, router, counters, auth);
    pipe.write(R"({"auth":")" + keys.token("fleet-7/") + "\"}\n" + line("fleet-7/a") +
               line("fleet-8/b") + line("fleet-7/c"));
    const auto replies = pipe.replies(4);
    REQUIRE(replies.size() == 4);
    CHECK(replies[0] == kOk);
    CHECK(replies[1] == kOk);
    CHECK(replies[2].find("outside this connection's token") != std::string::npos);
    CHECK(replies[2].find("fleet-7/") != std::string::npos);
    CHECK(replies[3] == kOk);
    CHECK(counters.accepted.value() == 2);  // the auth line is not a report
    CHECK(counters.rejected.value() == 1);
    pipe.write(R"({"auth":")" + keys.token("fleet-8/") + "\"}\n" + line("fleet-8/b"));
    CHECK(pipe.replies(2) == std::vector<std::string>{kOk, kOk});
  }

  SECTION("no auth line, a forged, an expired or a malformed token: the reason, then closed") {
    std::string forged = keys.token("fleet-7/");
    forged[forged.size() - 3] = forged[forged.size() - 3] == 'A' ? 'B' : 'A';
    for (const auto& [first, why] : std::vector<std::pair<std::string, std::string>>{
             {line("fleet-7/a"), "log in first"},
             {R"({"auth":")" + forged + "\"}\n", "signature does not verify"},
             {R"({"auth":")" + keys.token("fleet-7/", -1000) + "\"}\n", "expired"},
             {R"({"auth":"garbage"})"
              "\n",
              "not a JWT"},
             {R"({"auth":7})"
              "\n",
              "an auth line is"}}) {
      CAPTURE(first);
      Pipe pipe(io, router, counters, auth);
      pipe.write(first + line("fleet-7/after"));
      const auto replies = pipe.replies(2, 300);
      REQUIRE(replies.size() == 1);  // the line after is not read
      CHECK(replies[0].find("unauthenticated") != std::string::npos);
      CHECK(replies[0].find(why) != std::string::npos);
      CHECK(pipe.ended());
    }
  }
}

TEST_CASE("TextConnection stops reading while a unit holds its buffer full, until it stalls",
          "[gateway][library]") {
  zmq::context_t context;
  SilentUnit silent(context, "tc-silent-0");
  auto io = kj::setupAsyncIo();
  RouterOptions options;
  options.batchReports = 10;
  options.maxInFlightBatches = 1;
  options.maxBufferedReports = 20;
  options.batchTimeoutMs = 1500;
  Router router(options, context, io.unixEventPort, io.provider->getTimer(), {silent.endpoint});
  ProtocolCounters counters;
  Pipe pipe(io, router, counters);

  std::string lines;
  for (int i = 0; i < 200; ++i) lines += line("bp-" + std::to_string(i));
  auto writing = pipe.ends.ends[1]->write(lines.data(), lines.size()).eagerlyEvaluate(nullptr);
  // Nothing is acknowledged while the unit is silent: nothing is stored.
  CHECK(pipe.replies(200, 300).empty());
  const uint64_t readBeforeStall = router.counters().reportsRouted.value();
  CHECK(readBeforeStall >= 20);  // the window and the buffer were filled ...
  CHECK(readBeforeStall < 200);  // ... and then reading stopped
  // Stalled: every line gets its error, the one sent "not confirmed", the
  // buffered and the rest (read now) refused; none an ok.
  const auto replies = pipe.replies(200, 3000);
  REQUIRE(replies.size() == 200);
  size_t unconfirmed = 0, refused = 0;
  for (const auto& r : replies) {
    INFO(r);
    if (r.find("not confirmed") != std::string::npos) {
      ++unconfirmed;
    } else {
      CHECK_THAT(r, Catch::Contains("has not answered"));
      ++refused;
    }
  }
  writing.wait(io.waitScope);
  CHECK(unconfirmed == 10);  // the one batch the window let out
  CHECK(router.counters().reportsUnconfirmed.value() == 10);
  CHECK(router.counters().reportsRefusedStalled.value() == refused);
  CHECK(router.counters().reportsLost.value() == 0);
}

// A stream that fails its second read, as a reset peer's does.
class ResetAfterFirstRead final : public kj::AsyncIoStream {
 public:
  explicit ResetAfterFirstRead(kj::Own<kj::AsyncIoStream> inner) : inner_(kj::mv(inner)) {}
  kj::Promise<size_t> tryRead(void* buffer, size_t minBytes, size_t maxBytes) override {
    if (reads_++ > 0) return KJ_EXCEPTION(DISCONNECTED, "connection reset by peer");
    return inner_->tryRead(buffer, minBytes, maxBytes);
  }
  kj::Promise<void> write(const void* buffer, size_t size) override {
    return inner_->write(buffer, size);
  }
  kj::Promise<void> write(kj::ArrayPtr<const kj::ArrayPtr<const kj::byte>> pieces) override {
    return inner_->write(pieces);
  }
  kj::Promise<void> whenWriteDisconnected() override { return inner_->whenWriteDisconnected(); }
  void shutdownWrite() override { inner_->shutdownWrite(); }

 private:
  kj::Own<kj::AsyncIoStream> inner_;
  int reads_ = 0;
};

TEST_CASE("TextConnection ends when its peer resets, even with replies still owed",
          "[gateway][library]") {
  zmq::context_t context;
  SilentUnit silent(context, "tc-reset-0");  // never answers: replies stay owed
  auto io = kj::setupAsyncIo();
  Router router(RouterOptions{}, context, io.unixEventPort, io.provider->getTimer(),
                {silent.endpoint});
  ProtocolCounters counters;
  auto ends = io.provider->newTwoWayPipe();
  {
    TextConnection connection(
        kj::heap<ResetAfterFirstRead>(kj::mv(ends.ends[0])),
        IngestContext{router, counters, Pipe::openAuth(), kDefaultMaxFutureSkewMs, Pipe::limits(),
                      Pipe::refusals()});
    const std::string lines = line("reset-0") + line("reset-1");
    ends.ends[1]->write(lines.data(), lines.size()).wait(io.waitScope);
    // The read after the first fails: run() must end (with that error), not
    // wait for the silent unit's answers or a writer that has nothing left.
    bool ended = false;
    auto served =
        connection.run().then([&] { ended = true; }, [&](kj::Exception&&) { ended = true; });
    io.provider->getTimer().timeoutAfter(3 * kj::SECONDS, kj::mv(served)).wait(io.waitScope);
    CHECK(ended);
    CHECK(counters.connections.value() == 1);
  }
  CHECK(counters.connections.value() == 0);
}

}  // namespace
}  // namespace locus::gateway
