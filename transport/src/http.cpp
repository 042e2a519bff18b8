#include "locus/transport/http.h"

namespace locus::transport {

HttpReply HttpReply::json(unsigned status, const nlohmann::ordered_json& body) {
  // Strings from a request (a path in an error, say) need not be UTF-8:
  // replaced with U+FFFD rather than throwing (fuzz/http_request found it).
  const auto text = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return HttpReply{status, "application/json", text + "\n", {}};
}

HttpReply HttpReply::error(unsigned status, const std::string& message) {
  return json(status, {{"error", message}});
}

HttpReply HttpReply::unauthenticated(const std::string& message) {
  HttpReply reply = error(401, message);
  reply.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"locus\"");
  return reply;
}

HttpReply healthReply() {
  return HttpReply::json(200, {{"status", "ok"}});
}

HttpReply readyReply(const Readiness& r) {
  nlohmann::ordered_json body{{"ready", r.ready}};
  body.update(r.detail);
  return HttpReply::json(r.ready ? 200 : 503, body);
}

HttpReply metricsReply(const metrics::Registry& registry) {
  return HttpReply{200, "text/plain; version=0.0.4; charset=utf-8", registry.render(), {}};
}

}  // namespace locus::transport
