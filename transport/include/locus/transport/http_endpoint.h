// The operators' HTTP port of a Locus daemon (`--http-listen`): /healthz
// (the process is alive and serving), /readyz (it can do its job: for the
// gateway and the server, every unit answers) and /metrics (Prometheus text
// format). Served by cpp-httplib on threads of its own, so a scrape never
// waits for the daemon's event loop, and the daemon never waits for a scrape.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "locus/common/metrics.h"

namespace httplib {
class Server;
}

namespace locus::transport {

struct Readiness {
  bool ready = false;
  nlohmann::ordered_json detail = nlohmann::ordered_json::object();  // merged into the body
};

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
