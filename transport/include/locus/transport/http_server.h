// HTTP/1.1 served from a daemon's KJ event loop (kj-http, from Cap'n
// Proto): the gateway's and the server's `--http-listen`, which carry the
// operators' paths (/healthz, /readyz, /metrics) and the /v1/ API.
//
// Why kj-http: a handler runs on the same event loop as the RPC interface
// and the ScatterGather it calls, so an HTTP query costs no thread hop and
// no lock; connections and streams are promises rather than threads, so a
// thousand open streams cost memory, not a thousand threads; and kj-tls
// wraps the same streams for TLS. HTTP parsing is kj-http's, never ours.
#pragma once

#include <kj/async-io.h>
#include <kj/compat/http.h>

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "locus/common/metrics.h"
#include "locus/transport/http.h"
#include "locus/transport/rpc_listener.h"

namespace locus::transport {

// One request, read whole (the body up to the server's limit).
struct HttpRequest {
  kj::HttpMethod method = kj::HttpMethod::GET;
  std::string path;                   // decoded, without the query: "/v1/devices/truck 7"
  std::vector<std::string> segments;  // the path's decoded segments: {"v1", "devices", "truck 7"}
  std::vector<std::pair<std::string, std::string>> params;  // decoded query parameters, in order
  std::string body;
  const kj::HttpHeaders* headers = nullptr;
  const kj::HttpHeaderTable* headerTable = nullptr;  // for a Streamer's own response

  // The last value of query parameter `name`, or nothing.
  std::optional<std::string_view> param(std::string_view name) const;
  // A request header by name (any case), or nothing.
  std::optional<std::string_view> header(std::string_view name) const;
  // The credential of "Authorization: Bearer CREDENTIAL", else of the
  // `access_token` query parameter (RFC 6750 2.3: for EventSource, which
  // cannot set headers), or "" when neither is there.
  std::string_view bearer() const;
};

// The routes of one HTTP port: a path (exact, or a prefix ending in '/')
// and the methods it takes. A request for a path no route has gets 404, a
// method the path does not take 405 with Allow, both with an error body.
class HttpRoutes {
 public:
  using Handler = std::function<kj::Promise<HttpReply>(const HttpRequest&)>;
  // A handler that writes its own response, for answers that stream (the
  // response's stream is kept open as long as the promise lives).
  using Streamer = std::function<kj::Promise<void>(const HttpRequest&, kj::HttpService::Response&)>;

  // `path` exact, or a prefix when it ends in '/' (and is longer than "/").
  void add(kj::HttpMethod method, const std::string& path, Handler handler);
  void addStream(kj::HttpMethod method, const std::string& path, Streamer streamer);
  // Every route of `other`, after those here.
  void merge(HttpRoutes other);

  struct Route {
    kj::HttpMethod method;
    std::string path;
    Handler handler;    // one of handler...
    Streamer streamer;  // ...or streamer
  };
  const std::vector<Route>& routes() const { return routes_; }

 private:
  std::vector<Route> routes_;
};

// Limits of one HTTP port against slow or greedy clients.
struct HttpLimits {
  size_t maxBodyBytes = 8 << 20;                  // larger request bodies get 413
  kj::Duration headerTimeout = 10 * kj::SECONDS;  // to send a request's headers
  kj::Duration idleTimeout = 30 * kj::SECONDS;    // a keep-alive connection between requests
};

// Thread-affinity: the thread that owns `io`; construct, serve and destroy
// there. Ownership: `limit` and everything the handlers use must outlive it.
class HttpServer final : private kj::TaskSet::ErrorHandler {
 public:
  // Binds `listen` ("HOST:PORT", port 0 picks one) and serves `routes` from
  // then on, whenever the event loop runs; HTTPS with `tls`, which must
  // outlive the server. Throws kj::Exception when the address is malformed
  // or cannot be bound. Precondition: checkListen() passed.
  HttpServer(kj::AsyncIoContext& io, const std::string& listen, HttpRoutes routes,
             ConnectionLimit& limit, HttpLimits limits = {}, kj::TlsContext* tls = nullptr);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  const std::string& address() const { return listener_.address(); }
  const Listener& listener() const { return listener_; }

  // locus_http_requests_total by status class, locus_http_request_duration_seconds,
  // and the listener's metrics (listener="http").
  void expose(metrics::Registry& registry) const;

  // Serves HTTP on one connection that did not come through the listener
  // (a pipe, in the fuzz target); resolves when it closes.
  kj::Promise<void> serve(kj::Own<kj::AsyncIoStream> stream);

 private:
  class Service;
  void taskFailed(kj::Exception&& exception) override;

  kj::Own<kj::HttpHeaderTable> headerTable_;
  std::unique_ptr<Service> service_;
  kj::Own<kj::HttpServer> server_;
  Listener listener_;
  kj::TaskSet connections_;
  kj::Promise<void> accepting_ = nullptr;  // declared last: stops first
};

// /healthz, /readyz (asking `readiness` on the event loop) and /metrics.
// Ownership: `registry` must outlive the routes.
HttpRoutes operatorRoutes(const metrics::Registry& registry, std::function<Readiness()> readiness);

// Sends `reply` on `response`; resolves once the body is written.
kj::Promise<void> sendReply(const kj::HttpHeaderTable& table, kj::HttpService::Response& response,
                            HttpReply reply);

// The reason phrase of an HTTP status ("Not Found").
const char* httpStatusText(unsigned status);

}  // namespace locus::transport
