// Listen addresses (transport/net.h): which are reachable only from this
// machine, for the warning a daemon gives when it listens open to others.
#include "locus/transport/net.h"

#include <catch2/catch.hpp>

namespace locus::transport {
namespace {

TEST_CASE("loopback addresses are told from those other machines reach", "[net]") {
  for (const char* local : {"127.0.0.1:7700", "127.1.2.3:0", "localhost:80", "[::1]:7800",
                            "tcp://127.0.0.1:7900", "inproc://unit-0", "ipc:///tmp/unit.sock"}) {
    CAPTURE(local);
    CHECK(isLoopback(local));
  }
  for (const char* open : {"0.0.0.0:7700", "10.0.0.5:7800", "[::]:7800", "tcp://0.0.0.0:7900",
                           "tcp://*:7900", "example.com:80", "garbage"}) {
    CAPTURE(open);
    CHECK_FALSE(isLoopback(open));
  }
}

}  // namespace
}  // namespace locus::transport
