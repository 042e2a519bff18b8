#include "locus/transport/http_endpoint.h"

#include <fmt/format.h>
#include <httplib.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <stdexcept>

#include "locus/transport/net.h"

namespace locus::transport {
namespace {

// Scrapes and probes are rare and cheap: a few threads, short timeouts, so
// an idle keep-alive connection or a slow client cannot hold the port.
constexpr size_t kThreads = 4;
constexpr time_t kTimeoutS = 2;

void reply(httplib::Response& res, const HttpReply& r) {
  res.status = static_cast<int>(r.status);
  for (const auto& [name, value] : r.headers) res.set_header(name, value);
  res.set_content(r.body, r.contentType);
}

}  // namespace

HttpEndpoint::HttpEndpoint(const std::string& listen, const metrics::Registry& registry,
                           std::function<Readiness()> readiness)
    : server_(std::make_unique<httplib::Server>()) {
  auto& s = *server_;
  s.new_task_queue = [] { return new httplib::ThreadPool(kThreads); };
  s.set_keep_alive_timeout(kTimeoutS);
  s.set_read_timeout(kTimeoutS);
  s.set_write_timeout(kTimeoutS);
  s.set_payload_max_length(4096);
  // SO_REUSEADDR only: cpp-httplib's default adds SO_REUSEPORT, which would
  // let a second daemon bind the same port and share its scrapes unnoticed.
  s.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });

  s.Get("/healthz",
        [](const httplib::Request&, httplib::Response& res) { reply(res, healthReply()); });
  s.Get("/readyz",
        [readiness = std::move(readiness)](const httplib::Request&, httplib::Response& res) {
          reply(res, readyReply(readiness()));
        });
  s.Get("/metrics", [&registry](const httplib::Request&, httplib::Response& res) {
    reply(res, metricsReply(registry));
  });
  // Called for every status >= 400, ours included: those keep their body.
  s.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    const bool ours = req.path == "/healthz" || req.path == "/readyz" || req.path == "/metrics";
    std::string what;
    if (ours && req.method != "GET") {
      res.status = 405;
      res.set_header("Allow", "GET");
      what = fmt::format("{} takes GET only, not {}", req.path, req.method);
    } else if (res.status == 404) {
      what = fmt::format("no such path {}: try {}", req.path, kOperatorPaths);
    } else {
      what = fmt::format("cannot serve {} {} (status {})", req.method, req.path, res.status);
    }
    const int status = res.status;
    reply(res, HttpReply::error(static_cast<unsigned>(status), what));
    res.status = status;
  });

  const auto hostPort = splitHostPort(listen);
  if (!hostPort) throw std::runtime_error(fmt::format("{} is not HOST:PORT", listen));
  std::string host = hostPort->first;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  const int wanted = std::stoi(hostPort->second);
  const int port =
      wanted == 0 ? s.bind_to_any_port(host) : (s.bind_to_port(host, wanted) ? wanted : -1);
  if (port < 0) throw std::runtime_error(fmt::format("cannot bind HTTP on {}", listen));
  address_ = fmt::format("{}:{}", hostPort->first, port);
  thread_ = std::thread([this] {
    if (!server_->listen_after_bind()) spdlog::error("http on {} stopped serving", address_);
    done_ = true;
  });
}

HttpEndpoint::~HttpEndpoint() {
  // cpp-httplib's stop() does nothing until the server runs: wait for that
  // (or for the thread to have ended) so the stop cannot be lost.
  while (!server_->is_running() && !done_)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  server_->stop();
  thread_.join();
}

}  // namespace locus::transport
