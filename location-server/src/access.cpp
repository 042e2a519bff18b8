#include "locus/server/access.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <stdexcept>
#include <utility>

namespace locus::server {
namespace {

Error forbidden(std::string message) {
  return Error{ErrorCode::kForbidden, std::move(message)};
}

bool startsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

}  // namespace

ClientAuth::ClientAuth(std::string keyFile) : keys_(std::move(keyFile), "--api-keys", "API") {}

Result<auth::ClientScope> ClientAuth::check(std::string_view key) const {
  if (!keys_.on()) return auth::ClientScope{"", auth::ClientScope::Role::kAdmin, ""};
  auto scope = keys_.keys().check(key);
  if (!scope) {
    refused_.add(1);
    return Error{ErrorCode::kUnauthenticated,
                 "unauthenticated: " + scope.error().message +
                     "; this server requires an API key (locus apikey create): "
                     "\"Authorization: Bearer KEY\" over HTTP, login(KEY) over RPC"};
  }
  ok_.add(1);
  return scope;
}

void ClientAuth::reload() {
  keys_.reload();
}

void ClientAuth::expose(metrics::Registry& r) const {
  const char* calls = "Calls that presented an API key, by outcome";
  r.counter("locus_server_auth_total", calls, {{"outcome", "ok"}}, ok_);
  r.counter("locus_server_auth_total", calls, {{"outcome", "refused"}}, refused_);
  keys_.expose(r, "locus_server_key_reloads_total");
}

std::optional<Error> restrictToScope(const auth::ClientScope& scope, std::string& idPrefix) {
  if (startsWith(idPrefix, scope.prefix)) return std::nullopt;  // within the scope already
  if (startsWith(scope.prefix, idPrefix)) {
    idPrefix = scope.prefix;  // the scope is narrower: it is what the query sees
    return std::nullopt;
  }
  return forbidden(fmt::format("forbidden: API key {} reads ids starting with \"{}\" only",
                               scope.keyId, scope.prefix));
}

std::optional<Error> checkGet(const auth::ClientScope& scope, std::string_view id) {
  if (startsWith(id, scope.prefix)) return std::nullopt;
  return forbidden(fmt::format("forbidden: API key {} reads ids starting with \"{}\" only",
                               scope.keyId, scope.prefix));
}

std::optional<Error> checkStats(const auth::ClientScope& scope) {
  if (scope.admin()) return std::nullopt;
  return forbidden(fmt::format("forbidden: stats need an admin API key; {} has scope {}",
                               scope.keyId, scope.describe()));
}

}  // namespace locus::server
