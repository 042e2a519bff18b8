#include "locus/transport/http_server.h"

#include <fmt/format.h>
#include <kj/compat/url.h>
#include <kj/debug.h>
#include <spdlog/spdlog.h>
#include <strings.h>

#include <array>
#include <chrono>

namespace locus::transport {
namespace {

using Clock = std::chrono::steady_clock;

// Status classes counted in /metrics: 2xx, 3xx, 4xx, 5xx.
constexpr std::array<const char*, 4> kClasses{"2xx", "3xx", "4xx", "5xx"};

size_t classOf(unsigned status) {
  return status < 300 ? 0 : status < 400 ? 1 : status < 500 ? 2 : 3;
}

std::string methodName(kj::HttpMethod method) {
  return kj::str(method).cStr();
}

bool hasBody(kj::HttpMethod method) {
  return method == kj::HttpMethod::POST || method == kj::HttpMethod::PUT ||
         method == kj::HttpMethod::PATCH;
}

}  // namespace

kj::Promise<void> sendReply(const kj::HttpHeaderTable& table, kj::HttpService::Response& response,
                            HttpReply reply) {
  auto owned = kj::heap<HttpReply>(std::move(reply));
  kj::HttpHeaders headers(table);
  headers.set(kj::HttpHeaderId::CONTENT_TYPE, owned->contentType);
  for (const auto& [name, value] : owned->headers) headers.add(name, value);
  auto stream = response.send(owned->status, httpStatusText(owned->status), headers,
                              static_cast<uint64_t>(owned->body.size()));
  auto written = stream->write(owned->body.data(), owned->body.size());
  return written.attach(kj::mv(stream), kj::mv(owned));
}

std::optional<std::string_view> HttpRequest::param(std::string_view name) const {
  std::optional<std::string_view> value;
  for (const auto& [key, v] : params) {
    if (key == name) value = v;
  }
  return value;
}

std::optional<std::string_view> HttpRequest::header(std::string_view name) const {
  std::optional<std::string_view> value;
  if (headers == nullptr) return value;
  headers->forEach([&](kj::StringPtr key, kj::StringPtr v) {
    if (key.size() == name.size() && ::strncasecmp(key.cStr(), name.data(), name.size()) == 0) {
      value = std::string_view(v.cStr(), v.size());
    }
  });
  return value;
}

std::string_view HttpRequest::bearer() const {
  if (const auto value = header("Authorization")) {
    constexpr std::string_view kScheme = "Bearer ";
    if (value->size() > kScheme.size() &&
        ::strncasecmp(value->data(), kScheme.data(), kScheme.size()) == 0) {
      return value->substr(kScheme.size());
    }
    return {};
  }
  return param("access_token").value_or(std::string_view());
}

HttpRoutes operatorRoutes(const metrics::Registry& registry, std::function<Readiness()> readiness) {
  HttpRoutes routes;
  routes.add(kj::HttpMethod::GET, "/healthz",
             [](const HttpRequest&) -> kj::Promise<HttpReply> { return healthReply(); });
  routes.add(kj::HttpMethod::GET, "/readyz",
             [readiness = std::move(readiness)](const HttpRequest&) -> kj::Promise<HttpReply> {
               return readyReply(readiness());
             });
  routes.add(
      kj::HttpMethod::GET, "/metrics",
      [&registry](const HttpRequest&) -> kj::Promise<HttpReply> { return metricsReply(registry); });
  return routes;
}

void HttpRoutes::add(kj::HttpMethod method, const std::string& path, Handler handler) {
  routes_.push_back(Route{method, path, std::move(handler), nullptr});
}

void HttpRoutes::addStream(kj::HttpMethod method, const std::string& path, Streamer streamer) {
  routes_.push_back(Route{method, path, nullptr, std::move(streamer)});
}

void HttpRoutes::merge(HttpRoutes other) {
  for (auto& route : other.routes_) routes_.push_back(std::move(route));
}

// The routes behind kj-http: finds the route, reads the body, runs the
// handler and sends its reply, counting every answer.
class HttpServer::Service final : public kj::HttpService, public kj::HttpServerErrorHandler {
 public:
  Service(const kj::HttpHeaderTable& table, HttpRoutes routes, HttpLimits limits)
      : table_(table), routes_(std::move(routes)), limits_(limits) {}

  kj::Promise<void> request(kj::HttpMethod method, kj::StringPtr url,
                            const kj::HttpHeaders& headers, kj::AsyncInputStream& body,
                            Response& response) override {
    const auto started = Clock::now();
    auto req = kj::heap<HttpRequest>();
    req->method = method;
    req->headers = &headers;
    req->headerTable = &table_;
    KJ_IF_MAYBE (parsed, kj::Url::tryParse(url, kj::Url::HTTP_REQUEST)) {
      for (const auto& segment : parsed->path) {
        req->segments.emplace_back(segment.cStr(), segment.size());
        req->path += "/" + req->segments.back();
      }
      if (req->path.empty() || parsed->hasTrailingSlash) req->path += "/";
      for (const auto& p : parsed->query) {
        req->params.emplace_back(std::string(p.name.cStr(), p.name.size()),
                                 std::string(p.value.cStr(), p.value.size()));
      }
    } else {
      return answer(response, started,
                    HttpReply::error(400, fmt::format("cannot parse the URL {}", url.cStr())));
    }

    const HttpRoutes::Route* route = nullptr;
    std::string allowed;
    for (const auto& r : routes_.routes()) {
      const bool prefix = r.path.size() > 1 && r.path.back() == '/';
      const bool matches = prefix ? req->path.size() > r.path.size() &&
                                        req->path.compare(0, r.path.size(), r.path) == 0
                                  : req->path == r.path;
      if (!matches) continue;
      if (r.method == method && route == nullptr) route = &r;
      if (allowed.find(methodName(r.method)) == std::string::npos) {
        allowed += (allowed.empty() ? "" : ", ") + methodName(r.method);
      }
    }
    if (route == nullptr && allowed.empty()) {
      return answer(
          response, started,
          HttpReply::error(404, fmt::format("no such path {}: try {}", req->path, knownPaths())));
    }
    if (route == nullptr) {
      auto reply = HttpReply::error(
          405, fmt::format("{} takes {}, not {}", req->path, allowed, methodName(method)));
      reply.headers.emplace_back("Allow", allowed);
      return answer(response, started, std::move(reply));
    }

    kj::Promise<void> bodyRead = kj::READY_NOW;
    if (hasBody(method)) {
      KJ_IF_MAYBE (length, body.tryGetLength()) {
        if (*length > limits_.maxBodyBytes) return tooLarge(response, started);
      }
      // A body that cannot be read (a malformed chunk, cut short) fails this
      // promise: handleApplicationError answers it with a 400.
      bodyRead = body.readAllText(limits_.maxBodyBytes + 1).then([&req = *req](kj::String text) {
        req.body.assign(text.cStr(), text.size());
      });
    }
    return bodyRead
        .then([this, route, &req = *req, &response, started]() -> kj::Promise<void> {
          if (req.body.size() > limits_.maxBodyBytes) return tooLarge(response, started);
          if (route->streamer) {
            ++counted_[0];
            return route->streamer(req, response);
          }
          return kj::evalNow([&] { return route->handler(req); })
              .catch_([path = req.path](kj::Exception&& e) {
                spdlog::error("HTTP {} failed: {}", path, e.getDescription().cStr());
                return HttpReply::error(
                    500, fmt::format("{} failed: {}", path, e.getDescription().cStr()));
              })
              .then([this, &response, started](HttpReply reply) {
                return answer(response, started, std::move(reply));
              });
        })
        .attach(kj::mv(req));
  }

  // Malformed HTTP (kj-http's parser said so): a JSON 400, as for any error.
  kj::Promise<void> handleClientProtocolError(kj::HttpHeaders::ProtocolError error,
                                              Response& response) override {
    return answer(response, Clock::now(),
                  HttpReply::error(error.statusCode, fmt::format("malformed HTTP request: {}",
                                                                 error.description.cStr())));
  }

  // What kj-http could not take from the request itself: a header it
  // refuses once it reads it (Content-Length: abc), a body it cannot read
  // (a malformed chunk, cut short). A route's own failure never gets here
  // (request() answers it with a 500 naming the route), so this is the
  // client's: a 400.
  kj::Promise<void> handleApplicationError(kj::Exception exception,
                                           kj::Maybe<Response&> response) override {
    if (exception.getType() != kj::Exception::Type::DISCONNECTED) {
      spdlog::warn("HTTP request failed: {}", exception.getDescription().cStr());
    }
    KJ_IF_MAYBE (r, response) {
      return answer(*r, Clock::now(),
                    HttpReply::error(400, fmt::format("malformed HTTP request: {}",
                                                      exception.getDescription().cStr())));
    }
    return kj::READY_NOW;
  }

  // Every route's path, once each, for "no such path" errors.
  std::string knownPaths() const {
    std::string out;
    for (const auto& r : routes_.routes()) {
      const std::string path = r.path.back() == '/' && r.path.size() > 1 ? r.path + "..." : r.path;
      if (out.find(path) == std::string::npos) out += (out.empty() ? "" : ", ") + path;
    }
    return out;
  }

  void expose(metrics::Registry& r) const {
    for (size_t c = 0; c < kClasses.size(); ++c) {
      r.counter("locus_http_requests_total", "HTTP requests answered, by status class",
                {{"status", kClasses[c]}}, counted_[c + 1]);
    }
    r.counter("locus_http_streams_total", "HTTP streams opened (answers that stay open)", {},
              counted_[0]);
    r.histogram("locus_http_request_duration_seconds",
                "Time from an HTTP request's headers to its answer written", {}, seconds_);
  }

 private:
  kj::Promise<void> tooLarge(Response& response, Clock::time_point started) {
    return answer(response, started,
                  HttpReply::error(
                      413, fmt::format("the request body is over {} bytes", limits_.maxBodyBytes)));
  }

  kj::Promise<void> answer(Response& response, Clock::time_point started, HttpReply reply) {
    const size_t c = classOf(reply.status);
    return sendReply(table_, response, std::move(reply)).then([this, c, started] {
      ++counted_[c + 1];
      seconds_.observe(std::chrono::duration<double>(Clock::now() - started).count());
    });
  }

  const kj::HttpHeaderTable& table_;
  HttpRoutes routes_;
  HttpLimits limits_;
  std::array<metrics::Counter, kClasses.size() + 1> counted_;  // [0]: streams
  metrics::Histogram seconds_;
};

HttpServer::HttpServer(kj::AsyncIoContext& io, const std::string& listen, HttpRoutes routes,
                       ConnectionLimit& limit, HttpLimits limits, kj::TlsContext* tls)
    : headerTable_(kj::heap<kj::HttpHeaderTable>()),
      service_(std::make_unique<Service>(*headerTable_, std::move(routes), limits)),
      server_(kj::heap<kj::HttpServer>(io.provider->getTimer(), *headerTable_, *service_,
                                       kj::HttpServerSettings{
                                           .headerTimeout = limits.headerTimeout,
                                           .pipelineTimeout = limits.idleTimeout,
                                           // A body refused as too large is still read
                                           // (and dropped) up to twice the limit, so
                                           // that the client reads the 413 rather than
                                           // a reset connection.
                                           .canceledUploadGracePeriod = 2 * kj::SECONDS,
                                           .canceledUploadGraceBytes = 2 * limits.maxBodyBytes,
                                           .errorHandler = *service_,
                                       })),
      listener_(io, listen, "http", limit),
      connections_(*this) {
  if (tls) listener_.useTls(*tls);
  accepting_ = listener_
                   .acceptEach([this](kj::Own<kj::AsyncIoStream>&& stream,
                                      kj::Own<ConnectionLimit::Slot>&& slot) {
                     connections_.add(serve(kj::mv(stream)).attach(kj::mv(slot)));
                   })
                   .eagerlyEvaluate([](kj::Exception&& e) {
                     spdlog::error("HTTP stopped accepting: {}", e.getDescription().cStr());
                   });
}

HttpServer::~HttpServer() = default;

kj::Promise<void> HttpServer::serve(kj::Own<kj::AsyncIoStream> stream) {
  return server_->listenHttp(kj::mv(stream));
}

void HttpServer::expose(metrics::Registry& registry) const {
  service_->expose(registry);
  listener_.expose(registry);
}

void HttpServer::taskFailed(kj::Exception&& exception) {
  if (exception.getType() == kj::Exception::Type::DISCONNECTED) return;
  spdlog::warn("HTTP connection failed: {}", exception.getDescription().cStr());
}

const char* httpStatusText(unsigned status) {
  switch (status) {
    case 200:
      return "OK";
    case 204:
      return "No Content";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 413:
      return "Payload Too Large";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return status < 400 ? "OK" : status < 500 ? "Bad Request" : "Internal Server Error";
  }
}

}  // namespace locus::transport
