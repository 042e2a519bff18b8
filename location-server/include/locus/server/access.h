// Client API keys at the server (SPEC "Security"): the keys of --api-keys,
// reloaded on SIGHUP, and what a key's scope lets a call see. RPC and HTTP
// both ask here, so both enforce the same rules.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "locus/common/auth.h"
#include "locus/common/key_file.h"
#include "locus/common/metrics.h"
#include "locus/common/query.h"
#include "locus/common/status.h"

namespace locus::server {

// Thread-affinity: the server's event-loop thread (reload() included); the
// counters may be read from any thread.
class ClientAuth {
 public:
  // Off: every call may read everything and ask for stats.
  ClientAuth() = default;
  // Loads `keyFile`. Throws std::runtime_error with the reason when it
  // cannot be read: a server never starts open by mistake.
  explicit ClientAuth(std::string keyFile);

  bool required() const { return keys_.on(); }

  // The scope of a presented key ("KEY_ID.SECRET"), or why the call is
  // refused (kUnauthenticated). Off: admin over every id, whatever is
  // presented. Checked on every call, so a key removed from the file and
  // reloaded stops working at once. Counted in locus_server_auth_total.
  Result<auth::ClientScope> check(std::string_view key) const;

  // Reads the key file again; on failure keeps the keys it has and says
  // why in the log. A no-op when off.
  void reload();

  // locus_server_auth_total{outcome} and locus_server_key_reloads_total{outcome}.
  void expose(metrics::Registry& registry) const;

 private:
  KeyFile<auth::ApiKeys> keys_;
  mutable metrics::Counter ok_, refused_;
};

// Narrows a query's idPrefix to what `scope` may read, or says why the two
// cannot meet (kForbidden: the query asks for ids outside the scope).
std::optional<Error> restrictToScope(const auth::ClientScope& scope, std::string& idPrefix);
// Why `scope` may not read device `id` (kForbidden), or nothing.
std::optional<Error> checkGet(const auth::ClientScope& scope, std::string_view id);
// Why `scope` may not ask for the cluster's stats (kForbidden), or nothing.
std::optional<Error> checkStats(const auth::ClientScope& scope);

}  // namespace locus::server
