// What both HTTP servers of Locus answer (kj-http on the gateway's and the
// server's event loop, cpp-httplib on the unit's threads): replies as plain
// values, and the operators' paths every daemon serves — /healthz (alive),
// /readyz (can do its job) and /metrics (Prometheus text format).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "locus/common/metrics.h"

namespace locus::transport {

// One answer: a status, a body and its type, and extra headers.
struct HttpReply {
  unsigned status = 200;
  std::string contentType = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;

  // The body as one line of JSON, "\n"-terminated.
  static HttpReply json(unsigned status, const nlohmann::ordered_json& body);
  // {"error":"..."} with `status` (4xx, 5xx): the SPEC's error body.
  static HttpReply error(unsigned status, const std::string& message);
  // 401 with `message` and "WWW-Authenticate: Bearer" (RFC 6750).
  static HttpReply unauthenticated(const std::string& message);
};

struct Readiness {
  bool ready = false;
  nlohmann::ordered_json detail = nlohmann::ordered_json::object();  // merged into the body
};

// GET /healthz: 200 {"status":"ok"} while the process serves.
HttpReply healthReply();
// GET /readyz: 200 or 503 {"ready":B, ...detail}.
HttpReply readyReply(const Readiness& readiness);
// GET /metrics: the registry rendered.
HttpReply metricsReply(const metrics::Registry& registry);

// The operators' paths, for "no such path" errors.
inline constexpr const char* kOperatorPaths = "/healthz, /readyz or /metrics";

}  // namespace locus::transport
