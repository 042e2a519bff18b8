// Bounded HTTP requests for tests of the daemons' HTTP ports (/healthz,
// /readyz, /metrics and the /v1/ API), and a reader of Prometheus text.
#pragma once

#include <httplib.h>

#include <chrono>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

namespace locus::testkit {

struct HttpReply {
  int status = 0;  // 0: no answer
  std::string body;
  std::string contentType;
};

// GET http://<address><path>, waiting at most two seconds.
inline HttpReply httpGet(const std::string& address, const std::string& path,
                         const httplib::Headers& headers = {}) {
  httplib::Client client("http://" + address);
  client.set_connection_timeout(2);
  client.set_read_timeout(2);
  auto res = client.Get(path.c_str(), headers);
  if (!res) return {};
  return {res->status, res->body, res->get_header_value("Content-Type")};
}

// POST `body` to http://<address><path>, waiting at most five seconds.
inline HttpReply httpPost(const std::string& address, const std::string& path,
                          const std::string& body,
                          const std::string& contentType = "application/json",
                          const httplib::Headers& headers = {}) {
  httplib::Client client("http://" + address);
  client.set_connection_timeout(2);
  client.set_read_timeout(5);
  auto res = client.Post(path.c_str(), headers, body, contentType.c_str());
  if (!res) return {};
  return {res->status, res->body, res->get_header_value("Content-Type")};
}

// "Authorization: Bearer <credential>".
inline httplib::Headers bearer(const std::string& credential) {
  return {{"Authorization", "Bearer " + credential}};
}

// Polls GET `path` until it answers `status`, for at most `timeout`.
inline HttpReply awaitHttpStatus(const std::string& address, const std::string& path, int status,
                                 std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  HttpReply r = httpGet(address, path);
  while (r.status != status && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    r = httpGet(address, path);
  }
  return r;
}

// The value of the series written exactly as `series` (name and labels as
// rendered, e.g. `locus_unit_up{shard="0",...}`), or nothing.
inline std::optional<double> metricValue(const std::string& text, const std::string& series) {
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 &&
        line[series.size()] == ' ') {
      return std::stod(line.substr(series.size() + 1));
    }
  }
  return std::nullopt;
}

// The sum over every series of family `name` whose labels contain `having`
// (e.g. outcome="applied"); not histogram buckets.
inline double metricSum(const std::string& text, const std::string& name,
                        const std::string& having = "") {
  std::istringstream lines(text);
  std::string line;
  double sum = 0;
  while (std::getline(lines, line)) {
    if (line.compare(0, name.size(), name) != 0) continue;
    const char next = line.size() > name.size() ? line[name.size()] : '\0';
    if (next != '{' && next != ' ') continue;
    if (!having.empty() && line.find(having) == std::string::npos) continue;
    sum += std::stod(line.substr(line.rfind(' ') + 1));
  }
  return sum;
}

}  // namespace locus::testkit
