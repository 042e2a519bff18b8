#include "device_auth.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <stdexcept>
#include <utility>

namespace locus::gateway {

DeviceAuth::DeviceAuth(std::string keyFile) : keyFile_(std::move(keyFile)) {
  auto keys = auth::TokenKeys::load(keyFile_);
  if (!keys) throw std::runtime_error("--auth-keys: " + keys.error().message);
  keys_.emplace(std::move(*keys));
  spdlog::info("device tokens required: {} key(s) from {}", keys_->size(), keyFile_);
}

Result<auth::DeviceScope> DeviceAuth::login(std::string_view token, int64_t nowMs) {
  if (!keys_) {
    loginsOk_.add(1);
    return auth::DeviceScope{};  // off: any id
  }
  if (token.empty()) {
    loginsRefused_.add(1);
    return Error{ErrorCode::kUnauthenticated, std::string(kLoginFirst)};
  }
  auto scope = auth::verifyToken(*keys_, token, nowMs);
  if (!scope) {
    loginsRefused_.add(1);
    return Error{ErrorCode::kUnauthenticated, "unauthenticated: " + scope.error().message};
  }
  loginsOk_.add(1);
  return scope;
}

std::optional<std::string> DeviceAuth::revoked(const auth::DeviceScope& scope,
                                               int64_t nowMs) const {
  if (!keys_) return std::nullopt;
  if (!keys_->find(scope.keyId)) {
    return fmt::format("unauthenticated: token key \"{}\" was retired; log in with a new token",
                       scope.keyId);
  }
  if (scope.expiresMs <= nowMs) {
    return "unauthenticated: the token expired; log in with a new token";
  }
  return std::nullopt;
}

void DeviceAuth::reload() {
  if (!keys_) return;
  auto keys = auth::TokenKeys::load(keyFile_);
  if (!keys) {
    reloadsFailed_.add(1);
    spdlog::error("SIGHUP: kept the {} device token key(s) in use: {}", keys_->size(),
                  keys.error().message);
    return;
  }
  keys_.emplace(std::move(*keys));
  reloadsOk_.add(1);
  spdlog::info("SIGHUP: {} device token key(s) from {}", keys_->size(), keyFile_);
}

void DeviceAuth::expose(metrics::Registry& r) const {
  const char* logins = "Device logins (tokens presented), by outcome";
  r.counter("locus_gateway_logins_total", logins, {{"outcome", "ok"}}, loginsOk_);
  r.counter("locus_gateway_logins_total", logins, {{"outcome", "refused"}}, loginsRefused_);
  const char* reloads = "Reloads of the --auth-keys file (SIGHUP), by outcome";
  r.counter("locus_gateway_key_reloads_total", reloads, {{"outcome", "ok"}}, reloadsOk_);
  r.counter("locus_gateway_key_reloads_total", reloads, {{"outcome", "failed"}}, reloadsFailed_);
}

}  // namespace locus::gateway
