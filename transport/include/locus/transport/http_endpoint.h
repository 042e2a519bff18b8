// The operators' HTTP port of a unit (`--http-listen`): /healthz, /readyz
// and /metrics (see http.h). Served by cpp-httplib on threads of its own,
// because a unit's loop is a ZeroMQ loop, not KJ's: a scrape never waits
// for it, and the unit never waits for a scrape. (The gateway and the
// server serve HTTP from their KJ loop instead: http_server.h.)
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "locus/common/metrics.h"
#include "locus/transport/http.h"

namespace httplib {
class Server;
}

namespace locus::transport {

// Thread-safety: `readiness` and the registry's metrics are read on the
// endpoint's threads; both must be safe to read from any thread and outlive
// the endpoint.
class HttpEndpoint {
 public:
  // Binds `listen` ("HOST:PORT", port 0 picks one) and starts serving.
  // Throws std::runtime_error when it cannot be bound. Precondition:
  // checkListen() passed.
  HttpEndpoint(const std::string& listen, const metrics::Registry& registry,
               std::function<Readiness()> readiness);
  // Stops serving and joins the threads.
  ~HttpEndpoint();
  HttpEndpoint(const HttpEndpoint&) = delete;
  HttpEndpoint& operator=(const HttpEndpoint&) = delete;

  // "HOST:PORT" actually bound.
  const std::string& address() const { return address_; }

 private:
  std::unique_ptr<httplib::Server> server_;
  std::string address_;
  std::atomic<bool> done_{false};  // listen_after_bind() returned
  std::thread thread_;
};

}  // namespace locus::transport
