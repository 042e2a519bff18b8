// Polling through signals (transport/poll.h): a signal with a handler that
// lands on a thread waiting in zmq::poll interrupts it with EINTR, which
// cppzmq throws. fuzz/http_request found a UnitClient ending its process
// so, on libFuzzer's SIGALRM; the unit's own loop had the same fault.
#include "locus/transport/poll.h"

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <optional>
#include <thread>

#include "locus/transport/unit_client.h"

namespace locus::transport {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

void ignoreSignal(int) {}

// Runs `wait` on a thread of its own and sends that thread SIGUSR1 (with a
// handler, without SA_RESTART) every 2 ms until it returns.
template <typename Fn>
void underSignals(Fn&& wait) {
  struct sigaction action {};
  action.sa_handler = ignoreSignal;
  struct sigaction saved {};
  REQUIRE(sigaction(SIGUSR1, &action, &saved) == 0);
  std::atomic<bool> done{false};
  std::thread waiter([&] {
    wait();
    done = true;
  });
  int sent = 0;
  while (!done) {
    pthread_kill(waiter.native_handle(), SIGUSR1);
    ++sent;
    std::this_thread::sleep_for(milliseconds(2));
  }
  waiter.join();
  sigaction(SIGUSR1, &saved, nullptr);
  CHECK(sent > 10);
}

TEST_CASE("a poll waits out its whole timeout through signals, and still sees what arrives",
          "[transport]") {
  zmq::context_t context;
  zmq::socket_t in(context, zmq::socket_type::pair), out(context, zmq::socket_type::pair);
  in.bind("inproc://poll-test");
  out.connect("inproc://poll-test");

  int ready = -1;
  auto took = Clock::duration{};
  underSignals([&] {
    zmq::pollitem_t item{in.handle(), 0, ZMQ_POLLIN, 0};
    const auto start = Clock::now();
    ready = pollThroughSignals(&item, 1, milliseconds(150));
    took = Clock::now() - start;
  });
  CHECK(ready == 0);
  // Not cut short by the first signal (2 ms in): ZeroMQ's own clock may end
  // a wait a fraction of a millisecond early.
  CHECK(took >= milliseconds(140));

  std::thread sender([&] {
    std::this_thread::sleep_for(milliseconds(50));
    out.send(zmq::str_buffer("hello"), zmq::send_flags::none);
  });
  zmq::pollitem_t item{in.handle(), 0, ZMQ_POLLIN, 0};
  underSignals([&] { ready = pollThroughSignals(&item, 1, milliseconds(-1)); });
  sender.join();
  CHECK(ready == 1);
  CHECK((item.revents & ZMQ_POLLIN) != 0);
}

TEST_CASE("a UnitClient waits for its answer through signals meant for its process",
          "[transport]") {
  zmq::context_t context;
  // A "unit" that takes requests and never answers: the client must come
  // back with a timeout, not an exception, however many signals land.
  zmq::socket_t silent(context, zmq::socket_type::router);
  silent.bind("inproc://silent-unit");
  UnitClient client(context, "inproc://silent-unit", milliseconds(150));
  std::optional<Result<UnitStats>> stats;
  underSignals([&] { stats = client.stats(); });
  REQUIRE(stats);
  REQUIRE_FALSE(*stats);
  CHECK(stats->error().code == ErrorCode::kTimeout);
}

}  // namespace
}  // namespace locus::transport
