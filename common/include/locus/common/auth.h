// Who may write and who may read (SPEC "Security"): device tokens, checked
// by the gateway, and API keys, checked by the server. The cryptography is
// libsodium's (HMAC-SHA256, BLAKE2b, constant-time compares, base64); the
// token format is JWT (RFC 7519, HS256), so any JWT library can issue
// tokens the gateway accepts.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "locus/common/status.h"

namespace locus::auth {

// The text of a key file, or why it cannot be read (missing, unreadable, or
// readable by others than its owner: keys are secrets).
Result<std::string> readKeyFile(const std::string& path);

// ---------------------------------------------------------- device tokens

// A secret shared by the gateway and whoever issues device tokens.
struct TokenKey {
  std::string id;                          // names the key in a token ("kid")
  std::array<unsigned char, 32> secret{};  // the HMAC-SHA256 key
};

// The keys of an `--auth-keys` file. Several are valid at once, so keys
// rotate without a flag day: add the new key, issue with it, remove the old
// one once its tokens expired, SIGHUP the gateway after each step.
class TokenKeys {
 public:
  // Lines "KEY_ID SECRET" (SECRET: 32 bytes, base64url), '#' comments and
  // blank lines; `source` names the text in errors. At least one key.
  static Result<TokenKeys> parse(std::string_view text, std::string_view source);
  static Result<TokenKeys> load(const std::string& path);

  const TokenKey* find(std::string_view id) const;
  const TokenKey& newest() const { return keys_.back(); }  // the file's last key
  size_t size() const { return keys_.size(); }

 private:
  std::vector<TokenKey> keys_;
};

// A fresh random key as a key-file line (with its newline).
std::string newTokenKeyLine(std::string_view id);

// What one device token lets its connection write.
struct DeviceScope {
  std::string tenant;     // who the token was issued to, for logs
  std::string prefix;     // ids it may write start with this; "" = any id
  int64_t expiresMs = 0;  // Unix ms; the token is refused from then on
  std::string keyId;      // the key that signed it

  bool allows(std::string_view id) const { return id.substr(0, prefix.size()) == prefix; }
  // Why `id` may not be written under this scope, or nothing.
  std::optional<std::string> refuse(std::string_view id) const;
};

// A JWT signed with HS256 by `key`: header {"alg":"HS256","typ":"JWT",
// "kid"}, claims {"tenant","prefix","iat","exp"} (exp and iat in seconds);
// or why not: the prefix or the tenant is not the start of a valid device id
// (UTF-8, no control characters, at most 128 bytes).
Result<std::string> issueToken(const TokenKey& key, const DeviceScope& scope, int64_t nowMs);

// The scope of a token signed by one of `keys` that has not expired at
// `nowMs`, or why it is refused (kUnauthenticated): malformed, unknown key,
// bad signature, expired, or a claim missing. Never throws.
Result<DeviceScope> verifyToken(const TokenKeys& keys, std::string_view token, int64_t nowMs);

// ---------------------------------------------------------------- API keys

// What a client's API key may do on the server.
struct ClientScope {
  enum class Role { kRead, kAdmin };
  std::string keyId;
  Role role = Role::kRead;
  std::string prefix;  // reads see only ids starting with this; "" = every id

  bool admin() const { return role == Role::kAdmin; }
  // "read", "read:PREFIX" or "admin", as in the key file.
  std::string describe() const;
};

// Parses "read", "read:PREFIX" or "admin", or says why not.
Result<ClientScope> parseClientScope(std::string_view text);

// The keys of a server's `--api-keys` file: lines "KEY_ID HASH SCOPE" where
// HASH is the BLAKE2b-256 of the key's secret (hex), so the file never
// holds a usable key. A client presents "KEY_ID.SECRET".
class ApiKeys {
 public:
  static Result<ApiKeys> parse(std::string_view text, std::string_view source);
  static Result<ApiKeys> load(const std::string& path);

  // The scope of a presented key, or why it is refused (kUnauthenticated).
  Result<ClientScope> check(std::string_view presented) const;
  bool contains(std::string_view id) const;
  size_t size() const { return keys_.size(); }

 private:
  struct Entry {
    std::string id;
    std::array<unsigned char, 32> hash{};
    ClientScope scope;
  };
  std::vector<Entry> keys_;
};

// A fresh API key: the line for the key file and the key to hand out once.
struct NewApiKey {
  std::string line;  // "KEY_ID HASH SCOPE\n"
  std::string key;   // "KEY_ID.SECRET"
};
NewApiKey newApiKey(std::string_view id, const ClientScope& scope);

// Whether `id` is a valid key id: 1..64 of [A-Za-z0-9_-].
bool validKeyId(std::string_view id);

}  // namespace locus::auth
