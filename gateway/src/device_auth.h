// Device tokens at the gateway (private to locus::gateway): the keys of
// --auth-keys, reloaded on SIGHUP, and the checks every protocol makes.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "locus/common/auth.h"
#include "locus/common/key_file.h"
#include "locus/common/metrics.h"
#include "locus/common/status.h"

namespace locus::gateway {

// Thread-affinity: the gateway's thread (reload() included); the counters
// may be read from any thread.
class DeviceAuth {
 public:
  // Off: every connection writes any id, tokens are not checked.
  DeviceAuth() = default;
  // Loads `keyFile`. Throws std::runtime_error with the reason when it
  // cannot be read: a gateway never starts open by mistake.
  explicit DeviceAuth(std::string keyFile);

  bool required() const { return keys_.on(); }

  // The scope of `token`, or why the connection must close
  // (kUnauthenticated). Counted in locus_gateway_logins_total.
  Result<auth::DeviceScope> login(std::string_view token, int64_t nowMs);
  // Why a connection logged in with `scope` may write no more (its key was
  // retired by a reload, or the token expired since), or nothing.
  std::optional<std::string> revoked(const auth::DeviceScope& scope, int64_t nowMs) const;
  // What a connection that has not logged in is told.
  static constexpr std::string_view kLoginFirst =
      "unauthenticated: this gateway requires a device token (locus token issue): "
      "log in first";

  // Reads the key file again; on failure keeps the keys it has and says why
  // in the log. A no-op when off.
  void reload();

  // locus_gateway_logins_total{outcome} and locus_gateway_key_reloads_total{outcome}.
  void expose(metrics::Registry& registry) const;

 private:
  KeyFile<auth::TokenKeys> keys_;
  metrics::Counter loginsOk_, loginsRefused_;
};

}  // namespace locus::gateway
