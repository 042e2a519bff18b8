#include "device_auth.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <stdexcept>
#include <utility>

namespace locus::gateway {

DeviceAuth::DeviceAuth(std::string keyFile)
    : keys_(std::move(keyFile), "--auth-keys", "device token") {}

Result<auth::DeviceScope> DeviceAuth::login(std::string_view token, int64_t nowMs) {
  if (!keys_.on()) {
    loginsOk_.add(1);
    return auth::DeviceScope{};  // off: any id
  }
  if (token.empty()) {
    loginsRefused_.add(1);
    return Error{ErrorCode::kUnauthenticated, std::string(kLoginFirst)};
  }
  auto scope = auth::verifyToken(keys_.keys(), token, nowMs);
  if (!scope) {
    loginsRefused_.add(1);
    return Error{ErrorCode::kUnauthenticated, "unauthenticated: " + scope.error().message};
  }
  loginsOk_.add(1);
  return scope;
}

std::optional<std::string> DeviceAuth::revoked(const auth::DeviceScope& scope,
                                               int64_t nowMs) const {
  if (!keys_.on()) return std::nullopt;
  if (!keys_.keys().find(scope.keyId)) {
    return fmt::format("unauthenticated: token key \"{}\" was retired; log in with a new token",
                       scope.keyId);
  }
  if (scope.expiresMs <= nowMs) {
    return "unauthenticated: the token expired; log in with a new token";
  }
  return std::nullopt;
}

void DeviceAuth::reload() {
  keys_.reload();
}

void DeviceAuth::expose(metrics::Registry& r) const {
  const char* logins = "Device logins (tokens presented), by outcome";
  r.counter("locus_gateway_logins_total", logins, {{"outcome", "ok"}}, loginsOk_);
  r.counter("locus_gateway_logins_total", logins, {{"outcome", "refused"}}, loginsRefused_);
  keys_.expose(r, "locus_gateway_key_reloads_total");
}

}  // namespace locus::gateway
