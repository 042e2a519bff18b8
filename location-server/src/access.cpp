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

ClientAuth::ClientAuth(std::string keyFile) : keyFile_(std::move(keyFile)) {
  auto keys = auth::ApiKeys::load(keyFile_);
  if (!keys) throw std::runtime_error("--api-keys: " + keys.error().message);
  keys_.emplace(std::move(*keys));
  spdlog::info("API keys required: {} key(s) from {}", keys_->size(), keyFile_);
}

Result<auth::ClientScope> ClientAuth::check(std::string_view key) const {
  if (!keys_) return auth::ClientScope{"", auth::ClientScope::Role::kAdmin, ""};
  auto scope = keys_->check(key);
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
  if (!keys_) return;
  auto keys = auth::ApiKeys::load(keyFile_);
  if (!keys) {
    reloadsFailed_.add(1);
    spdlog::error("SIGHUP: kept the {} API key(s) in use: {}", keys_->size(), keys.error().message);
    return;
  }
  keys_.emplace(std::move(*keys));
  reloadsOk_.add(1);
  spdlog::info("SIGHUP: {} API key(s) from {}", keys_->size(), keyFile_);
}

void ClientAuth::expose(metrics::Registry& r) const {
  const char* calls = "Calls that presented an API key, by outcome";
  r.counter("locus_server_auth_total", calls, {{"outcome", "ok"}}, ok_);
  r.counter("locus_server_auth_total", calls, {{"outcome", "refused"}}, refused_);
  const char* reloads = "Reloads of the --api-keys file (SIGHUP), by outcome";
  r.counter("locus_server_key_reloads_total", reloads, {{"outcome", "ok"}}, reloadsOk_);
  r.counter("locus_server_key_reloads_total", reloads, {{"outcome", "failed"}}, reloadsFailed_);
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
