#include "locus/common/auth.h"

#include <fmt/format.h>
#include <sodium.h>
#include <sys/stat.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "locus/common/report.h"

namespace locus::auth {
namespace {

Error unauthenticated(std::string message) {
  return Error{ErrorCode::kUnauthenticated, std::move(message)};
}

void initSodium() {
  // Thread-safe and idempotent; fails only without a random source.
  if (sodium_init() < 0) throw std::runtime_error("libsodium cannot initialise (no /dev/urandom?)");
}

std::string base64url(const unsigned char* data, size_t n) {
  const int variant = sodium_base64_VARIANT_URLSAFE_NO_PADDING;
  std::string out(sodium_base64_ENCODED_LEN(n, variant), '\0');
  sodium_bin2base64(out.data(), out.size(), data, n, variant);
  out.resize(std::strlen(out.c_str()));
  return out;
}

std::string base64url(std::string_view text) {
  return base64url(reinterpret_cast<const unsigned char*>(text.data()), text.size());
}

// The bytes of base64url `text`, or nothing when it is not base64url.
std::optional<std::string> unbase64url(std::string_view text) {
  std::string out(text.size(), '\0');  // decoding never grows
  size_t n = 0;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), text.data(),
                        text.size(), nullptr, &n, nullptr,
                        sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0) {
    return std::nullopt;
  }
  out.resize(n);
  return out;
}

std::string hex(const unsigned char* data, size_t n) {
  std::string out(2 * n + 1, '\0');
  sodium_bin2hex(out.data(), out.size(), data, n);
  out.pop_back();
  return out;
}

std::array<unsigned char, 32> hashSecret(std::string_view secret) {
  std::array<unsigned char, 32> h{};
  crypto_generichash(h.data(), h.size(), reinterpret_cast<const unsigned char*>(secret.data()),
                     secret.size(), nullptr, 0);
  return h;
}

std::array<unsigned char, crypto_auth_hmacsha256_BYTES> hmac(const TokenKey& key,
                                                             std::string_view message) {
  std::array<unsigned char, crypto_auth_hmacsha256_BYTES> mac{};
  crypto_auth_hmacsha256(mac.data(), reinterpret_cast<const unsigned char*>(message.data()),
                         message.size(), key.secret.data());
  return mac;
}

// The non-comment, non-blank lines of a key file, split on whitespace, each
// with its line number.
struct Line {
  size_t number;
  std::vector<std::string> fields;
};
std::vector<Line> keyLines(std::string_view text) {
  std::vector<Line> lines;
  std::istringstream in{std::string(text)};
  std::string line;
  for (size_t number = 1; std::getline(in, line); ++number) {
    std::istringstream fields(line);
    Line l{number, {}};
    for (std::string f; fields >> f;) {
      if (f[0] == '#') break;
      l.fields.push_back(std::move(f));
    }
    if (!l.fields.empty()) lines.push_back(std::move(l));
  }
  return lines;
}

}  // namespace

bool validKeyId(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) return false;
  }
  return true;
}

Result<std::string> readKeyFile(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) {
    return badRequest(fmt::format("cannot read key file {}: {}", path, std::strerror(errno)));
  }
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    return badRequest(fmt::format(
        "key file {} is readable by group or others (mode {:o}); keys are secrets: chmod 600 {}",
        path, st.st_mode & 0777, path));
  }
  std::ifstream in(path);
  if (!in) return badRequest(fmt::format("cannot read key file {}", path));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// ---------------------------------------------------------- device tokens

Result<TokenKeys> TokenKeys::parse(std::string_view text, std::string_view source) {
  initSodium();
  TokenKeys keys;
  for (const Line& line : keyLines(text)) {
    const auto where = fmt::format("{} line {}", source, line.number);
    if (line.fields.size() != 2) {
      return badRequest(where + ": expected \"KEY_ID SECRET\" (locus token keygen writes one)");
    }
    TokenKey key;
    key.id = line.fields[0];
    if (!validKeyId(key.id)) {
      return badRequest(where + ": a key id is 1..64 of A-Z a-z 0-9 _ -");
    }
    const auto secret = unbase64url(line.fields[1]);
    if (!secret || secret->size() != key.secret.size()) {
      return badRequest(where + ": the secret must be 32 bytes in base64url");
    }
    std::memcpy(key.secret.data(), secret->data(), key.secret.size());
    if (keys.find(key.id)) return badRequest(where + ": key id " + key.id + " appears twice");
    keys.keys_.push_back(std::move(key));
  }
  if (keys.keys_.empty()) return badRequest(fmt::format("{} holds no key", source));
  return keys;
}

Result<TokenKeys> TokenKeys::load(const std::string& path) {
  auto text = readKeyFile(path);
  if (!text) return text.error();
  return parse(*text, path);
}

const TokenKey* TokenKeys::find(std::string_view id) const {
  for (const auto& key : keys_) {
    if (key.id == id) return &key;
  }
  return nullptr;
}

std::string newTokenKeyLine(std::string_view id) {
  initSodium();
  std::array<unsigned char, 32> secret{};
  randombytes_buf(secret.data(), secret.size());
  std::string line = fmt::format("{} {}\n", id, base64url(secret.data(), secret.size()));
  sodium_memzero(secret.data(), secret.size());
  return line;
}

std::optional<std::string> DeviceScope::refuse(std::string_view id) const {
  if (allows(id)) return std::nullopt;
  return fmt::format(
      "device id is outside this connection's token: it may write ids starting "
      "with \"{}\" only",
      prefix);
}

Result<std::string> issueToken(const TokenKey& key, const DeviceScope& scope, int64_t nowMs) {
  initSodium();
  // The claims are JSON text: they must be UTF-8 (found by fuzz/token_fuzz).
  for (const auto& [what, value] :
       {std::pair{"prefix", &scope.prefix}, std::pair{"tenant", &scope.tenant}}) {
    if (value->empty()) continue;
    if (auto why = validateId(*value)) return badRequest(fmt::format("the {}: {}", what, *why));
  }
  const nlohmann::ordered_json header = {{"alg", "HS256"}, {"typ", "JWT"}, {"kid", key.id}};
  const nlohmann::ordered_json claims = {{"tenant", scope.tenant},
                                         {"prefix", scope.prefix},
                                         {"iat", nowMs / 1000},
                                         {"exp", scope.expiresMs / 1000}};
  const std::string signedPart = base64url(header.dump()) + "." + base64url(claims.dump());
  const auto mac = hmac(key, signedPart);
  return signedPart + "." + base64url(mac.data(), mac.size());
}

Result<DeviceScope> verifyToken(const TokenKeys& keys, std::string_view token, int64_t nowMs) {
  initSodium();
  if (token.size() > 4096) return unauthenticated("token is longer than 4096 bytes");
  const size_t dot1 = token.find('.');
  const size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return unauthenticated("token is not a JWT (three base64url parts joined by '.')");
  }
  const auto headerText = unbase64url(token.substr(0, dot1));
  const auto claimsText = unbase64url(token.substr(dot1 + 1, dot2 - dot1 - 1));
  const auto mac = unbase64url(token.substr(dot2 + 1));
  if (!headerText || !claimsText || !mac) return unauthenticated("token is not base64url");
  const auto header = nlohmann::json::parse(*headerText, nullptr, false);
  const auto claims = nlohmann::json::parse(*claimsText, nullptr, false);
  if (!header.is_object() || !claims.is_object()) {
    return unauthenticated("token header or claims are not JSON objects");
  }
  // Only HS256: a token cannot choose a weaker check ("alg":"none").
  const auto alg = header.find("alg");
  if (alg == header.end() || *alg != "HS256") return unauthenticated("token alg must be HS256");
  const auto kid = header.find("kid");
  if (kid == header.end() || !kid->is_string()) return unauthenticated("token header has no kid");
  const TokenKey* key = keys.find(kid->get<std::string>());
  if (!key) {
    return unauthenticated(fmt::format(
        "token key \"{}\" is not one of the gateway's keys (retired?)", kid->get<std::string>()));
  }
  if (mac->size() != crypto_auth_hmacsha256_BYTES ||
      crypto_auth_hmacsha256_verify(reinterpret_cast<const unsigned char*>(mac->data()),
                                    reinterpret_cast<const unsigned char*>(token.data()), dot2,
                                    key->secret.data()) != 0) {
    return unauthenticated("token signature does not verify (forged, or another key)");
  }
  const auto claim = [&](const char* name) -> const nlohmann::json* {
    const auto it = claims.find(name);
    return it == claims.end() ? nullptr : &*it;
  };
  const auto* exp = claim("exp");
  const auto* prefix = claim("prefix");
  if (!exp || !exp->is_number_integer()) return unauthenticated("token has no exp claim");
  if (!prefix || !prefix->is_string()) return unauthenticated("token has no prefix claim");
  DeviceScope scope;
  scope.keyId = key->id;
  scope.prefix = prefix->get<std::string>();
  if (const auto* tenant = claim("tenant"); tenant && tenant->is_string()) {
    scope.tenant = tenant->get<std::string>();
  }
  const int64_t expS = exp->get<int64_t>();
  if (expS <= nowMs / 1000) {
    return unauthenticated(fmt::format("token expired {} s ago", nowMs / 1000 - expS));
  }
  scope.expiresMs = expS > INT64_MAX / 1000 ? INT64_MAX : expS * 1000;
  return scope;
}

// ---------------------------------------------------------------- API keys

std::string ClientScope::describe() const {
  if (admin()) return "admin";
  return prefix.empty() ? "read" : "read:" + prefix;
}

Result<ClientScope> parseClientScope(std::string_view text) {
  ClientScope scope;
  if (text == "admin") {
    scope.role = ClientScope::Role::kAdmin;
  } else if (text == "read") {
  } else if (text.substr(0, 5) == "read:" && text.size() > 5) {
    scope.prefix = std::string(text.substr(5));
  } else {
    return badRequest(fmt::format("scope \"{}\" is not read, read:PREFIX or admin", text));
  }
  return scope;
}

Result<ApiKeys> ApiKeys::parse(std::string_view text, std::string_view source) {
  initSodium();
  ApiKeys keys;
  for (const Line& line : keyLines(text)) {
    const auto where = fmt::format("{} line {}", source, line.number);
    if (line.fields.size() != 3) {
      return badRequest(where +
                        ": expected \"KEY_ID HASH SCOPE\" (locus apikey create writes one)");
    }
    Entry e;
    e.id = line.fields[0];
    if (!validKeyId(e.id)) return badRequest(where + ": a key id is 1..64 of A-Z a-z 0-9 _ -");
    size_t n = 0;
    if (sodium_hex2bin(e.hash.data(), e.hash.size(), line.fields[1].data(), line.fields[1].size(),
                       nullptr, &n, nullptr) != 0 ||
        n != e.hash.size() || line.fields[1].size() != 2 * e.hash.size()) {
      return badRequest(where + ": the hash must be 64 hex digits");
    }
    auto scope = parseClientScope(line.fields[2]);
    if (!scope) return badRequest(where + ": " + scope.error().message);
    e.scope = std::move(*scope);
    e.scope.keyId = e.id;
    if (keys.contains(e.id)) return badRequest(where + ": key id " + e.id + " appears twice");
    keys.keys_.push_back(std::move(e));
  }
  if (keys.keys_.empty()) return badRequest(fmt::format("{} holds no key", source));
  return keys;
}

Result<ApiKeys> ApiKeys::load(const std::string& path) {
  auto text = readKeyFile(path);
  if (!text) return text.error();
  return parse(*text, path);
}

Result<ClientScope> ApiKeys::check(std::string_view presented) const {
  const size_t dot = presented.find('.');
  if (presented.empty()) return unauthenticated("an API key is required (KEY_ID.SECRET)");
  if (dot == std::string_view::npos || presented.size() > 512) {
    return unauthenticated("an API key is KEY_ID.SECRET");
  }
  const std::string_view id = presented.substr(0, dot);
  const auto hash = hashSecret(presented.substr(dot + 1));
  for (const auto& e : keys_) {
    if (e.id != id) continue;
    if (sodium_memcmp(e.hash.data(), hash.data(), hash.size()) != 0) break;
    return e.scope;
  }
  return unauthenticated("API key is not valid (unknown, revoked or mistyped)");
}

bool ApiKeys::contains(std::string_view id) const {
  for (const auto& e : keys_) {
    if (e.id == id) return true;
  }
  return false;
}

NewApiKey newApiKey(std::string_view id, const ClientScope& scope) {
  initSodium();
  std::array<unsigned char, 24> secret{};
  randombytes_buf(secret.data(), secret.size());
  const std::string secretText = base64url(secret.data(), secret.size());
  const auto hash = hashSecret(secretText);
  return NewApiKey{fmt::format("{} {} {}\n", id, hex(hash.data(), hash.size()), scope.describe()),
                   fmt::format("{}.{}", id, secretText)};
}

}  // namespace locus::auth
