// The HTTP path of both daemons on any bytes, as a client's connection
// would deliver them: kj-http parses them, the routes (the server's /v1/
// queries, the gateway's POST /v1/reports, /healthz, /readyz, /metrics)
// answer against the fixture's cluster with API keys and device tokens
// required. Every connection is answered with HTTP (or closed) in bounded
// time, and no response is a 500 (a handler that threw: a bug of ours).
#include <spdlog/spdlog.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string_view>

#include "cluster_fixture.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto& c = locus::fuzz::clusterFor(100'000);  // POST /v1/reports stores devices
  auto pipe = c.io.provider->newTwoWayPipe();
  auto served = c.http->serve(kj::mv(pipe.ends[0]));
  auto& client = *pipe.ends[1];
  auto exchange =
      client.write(data, size)
          .then([&client] {
            client.shutdownWrite();
            return client.readAllText(64 << 20);
          })
          .exclusiveJoin(
              c.io.provider->getTimer().afterDelay(5 * kj::SECONDS).then([]() -> kj::String {
                std::abort();
              }));
  const kj::String response = exchange.wait(c.io.waitScope);
  const std::string_view text(response.cStr(), response.size());
  if (!text.empty() && !text.starts_with("HTTP/1.1 ")) std::abort();
  // Bodies are JSON or NDJSON lines, so a status line follows a newline.
  if (text.starts_with("HTTP/1.1 500") || text.find("\nHTTP/1.1 500") != std::string_view::npos) {
    std::abort();
  }
  (void)served;
  return 0;
}
