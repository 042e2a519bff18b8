#include "keys.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "locus/common/auth.h"
#include "locus/common/clock.h"
#include "locus/common/json.h"
#include "locus/transport/curve.h"

namespace locus::cli {
namespace {

using json = nlohmann::ordered_json;

int fail(const std::string& message) {
  std::cerr << errorJson(message).dump() << "\n";
  return 1;
}

// Appends `line` to `path`, creating it readable by its owner only.
std::optional<std::string> appendSecret(const std::string& path, const std::string& line) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return fmt::format("cannot write {}: {}", path, std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) == 0 && (st.st_mode & 077) != 0) {
    ::close(fd);
    return fmt::format("{} is readable by group or others; chmod 600 it first", path);
  }
  const bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) &&
                  ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) return fmt::format("cannot write {}: {}", path, std::strerror(errno));
  return std::nullopt;
}

// The key id to write: the one given, or "k" + the next number.
template <typename Taken>
std::string nextKeyId(const std::string& given, Taken taken) {
  if (!given.empty()) return given;
  for (int n = 1;; ++n) {
    std::string id = fmt::format("k{}", n);
    if (!taken(id)) return id;
  }
}

int tokenKeygen(const KeyCommands& k) {
  std::optional<auth::TokenKeys> keys;
  if (::access(k.keyFile.c_str(), F_OK) == 0) {
    auto loaded = auth::TokenKeys::load(k.keyFile);
    if (!loaded) return fail(loaded.error().message);
    keys.emplace(std::move(*loaded));
  }
  const std::string id =
      nextKeyId(k.keyId, [&](const std::string& id) { return keys && keys->find(id); });
  if (!auth::validKeyId(id)) return fail("--key-id: 1..64 of A-Z a-z 0-9 _ -");
  if (keys && keys->find(id)) return fail(fmt::format("{} holds key {} already", k.keyFile, id));
  if (auto e = appendSecret(k.keyFile, auth::newTokenKeyLine(id))) return fail(*e);
  std::cout << json{{"key_id", id}, {"key_file", k.keyFile}}.dump() << "\n";
  return 0;
}

int tokenIssue(const KeyCommands& k) {
  auto keys = auth::TokenKeys::load(k.keyFile);
  if (!keys) return fail(keys.error().message);
  const auth::TokenKey* key = k.keyId.empty() ? &keys->newest() : keys->find(k.keyId);
  if (!key) return fail(fmt::format("{} holds no key {}", k.keyFile, k.keyId));
  if (k.ttlMs <= 0) return fail("--ttl must be positive");
  const int64_t nowMs = wallClockMs();
  auth::DeviceScope scope;
  scope.prefix = k.devicePrefix;
  scope.tenant = k.tenant.empty() ? k.devicePrefix : k.tenant;
  scope.expiresMs = nowMs + k.ttlMs;
  auto token = auth::issueToken(*key, scope, nowMs);
  if (!token) return fail(token.error().message);
  std::cout << json{{"token", *token},
                    {"key_id", key->id},
                    {"tenant", scope.tenant},
                    {"prefix", scope.prefix},
                    {"expires_ms", scope.expiresMs / 1000 * 1000}}
                   .dump()
            << "\n";
  return 0;
}

int apikeyCreate(const KeyCommands& k) {
  auto scope = auth::parseClientScope(k.scope);
  if (!scope) return fail("--scope: " + scope.error().message);
  std::optional<auth::ApiKeys> keys;
  if (::access(k.keyFile.c_str(), F_OK) == 0) {
    auto loaded = auth::ApiKeys::load(k.keyFile);
    if (!loaded) return fail(loaded.error().message);
    keys.emplace(std::move(*loaded));
  }
  const std::string id =
      nextKeyId(k.keyId, [&](const std::string& id) { return keys && keys->contains(id); });
  if (!auth::validKeyId(id)) return fail("--key-id: 1..64 of A-Z a-z 0-9 _ -");
  if (keys && keys->contains(id)) {
    return fail(fmt::format("{} holds key {} already", k.keyFile, id));
  }
  const auth::NewApiKey made = auth::newApiKey(id, *scope);
  if (auto e = appendSecret(k.keyFile, made.line)) return fail(*e);
  std::cout << json{{"api_key", made.key}, {"key_id", id}, {"scope", scope->describe()}}.dump()
            << "\n";
  return 0;
}

int curveKeygen(const KeyCommands& k) {
  const std::string pub = k.keygenOut + ".pub";
  for (const auto& path : {k.keygenOut, pub}) {
    if (::access(path.c_str(), F_OK) == 0) {
      return fail(path + " exists; keygen never overwrites a key");
    }
  }
  const transport::CurveKeypair keys = transport::newCurveKeypair();
  if (auto e = appendSecret(k.keygenOut, transport::curveKeypairText(keys))) return fail(*e);
  std::ofstream(pub) << keys.publicKey << "\n";
  std::cout << json{{"public_key", keys.publicKey}, {"key_file", k.keygenOut}, {"public_file", pub}}
                   .dump()
            << "\n";
  return 0;
}

}  // namespace

void addKeyCommands(CLI::App& app, KeyCommands& k) {
  auto* token = app.add_subcommand("token", "device tokens for a gateway's --auth-keys");
  token->require_subcommand(1);
  k.tokenKeygen = token->add_subcommand(
      "keygen", "add a new random key to a key file (created mode 600); SIGHUP the gateway");
  k.tokenKeygen->add_option("--key-file", k.keyFile, "the gateway's --auth-keys file")->required();
  k.tokenKeygen->add_option("--key-id", k.keyId, "its name (default: k1, k2, ...)");

  k.tokenIssue =
      token->add_subcommand("issue", "print a token that lets a device write ids with a prefix");
  k.tokenIssue->add_option("--key-file", k.keyFile, "the gateway's --auth-keys file")->required();
  k.tokenIssue->add_option("--key-id", k.keyId, "the key to sign with (default: the file's last)");
  k.tokenIssue
      ->add_option("--device-prefix", k.devicePrefix,
                   "ids the token may write start with this (\"\" = any id)")
      ->required();
  k.tokenIssue->add_option("--tenant", k.tenant, "who it is for, in logs (default: the prefix)");
  k.tokenIssue->add_option("--ttl", k.ttlMs, "how long it is valid: 30d, 12h, 90m, 3600s")
      ->transform(CLI::AsNumberWithUnit(
          std::map<std::string, int64_t>{
              {"ms", 1}, {"s", 1000}, {"m", 60'000}, {"h", 3'600'000}, {"d", 86'400'000}},
          CLI::AsNumberWithUnit::CASE_SENSITIVE))
      ->capture_default_str();

  k.curveKeygen = app.add_subcommand(
      "keygen", "a CURVE keypair for the links to the units: FILE (secret, mode 600) and FILE.pub");
  k.curveKeygen->add_option("--out", k.keygenOut, "where to write it")->required();

  auto* apikey = app.add_subcommand("apikey", "client API keys for a server's --api-keys");
  apikey->require_subcommand(1);
  k.apikeyCreate = apikey->add_subcommand(
      "create", "add a key to a key file (only its hash is kept) and print it once");
  k.apikeyCreate->add_option("--key-file", k.keyFile, "the server's --api-keys file")->required();
  k.apikeyCreate->add_option("--key-id", k.keyId, "its name (default: k1, k2, ...)");
  k.apikeyCreate
      ->add_option("--scope", k.scope, "read (every device), read:PREFIX, or admin (also stats)")
      ->capture_default_str();
}

std::optional<int> runKeyCommand(const KeyCommands& k) {
  if (k.tokenKeygen && *k.tokenKeygen) return tokenKeygen(k);
  if (k.tokenIssue && *k.tokenIssue) return tokenIssue(k);
  if (k.apikeyCreate && *k.apikeyCreate) return apikeyCreate(k);
  if (k.curveKeygen && *k.curveKeygen) return curveKeygen(k);
  return std::nullopt;
}

}  // namespace locus::cli
