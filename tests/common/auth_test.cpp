// Device tokens and API keys (common/auth.h): what verifies, what does not,
// and why — forged, retired, expired, malformed — with key files as an
// operator writes them.
#include "locus/common/auth.h"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "locus/testkit/temp_dir.h"

namespace locus::auth {
namespace {

constexpr int64_t kNowMs = 1'800'000'000'000;

TokenKeys keysOf(const std::string& text) {
  auto keys = TokenKeys::parse(text, "test");
  REQUIRE(keys);
  return *keys;
}

std::string refusal(const TokenKeys& keys, const std::string& token, int64_t nowMs = kNowMs) {
  auto scope = verifyToken(keys, token, nowMs);
  REQUIRE_FALSE(scope);
  CHECK(scope.error().code == ErrorCode::kUnauthenticated);
  return scope.error().message;
}

TEST_CASE("a token verifies under its key and carries its scope", "[auth]") {
  const TokenKeys keys = keysOf(newTokenKeyLine("k1") + newTokenKeyLine("k2"));
  CHECK(keys.size() == 2);
  CHECK(keys.newest().id == "k2");
  const DeviceScope want{"fleet-7", "fleet-7/", kNowMs + 3'600'000, ""};
  for (const char* id : {"k1", "k2"}) {
    const std::string token = *issueToken(*keys.find(id), want, kNowMs);
    auto scope = verifyToken(keys, token, kNowMs);
    REQUIRE(scope);
    CHECK(scope->tenant == "fleet-7");
    CHECK(scope->prefix == "fleet-7/");
    CHECK(scope->expiresMs == kNowMs + 3'600'000);
    CHECK(scope->keyId == id);
    CHECK(scope->allows("fleet-7/truck-1"));
    CHECK_FALSE(scope->allows("fleet-70/truck-1"));
    CHECK_FALSE(scope->allows("fleet-7"));
    CHECK(scope->refuse("fleet-8/x")->find("fleet-7/") != std::string::npos);
  }
  // An empty prefix writes any id.
  const std::string any = *issueToken(keys.newest(), {"ops", "", kNowMs + 1000, ""}, kNowMs);
  CHECK(verifyToken(keys, any, kNowMs)->allows("whatever"));
}

TEST_CASE("a token made by any JWT library (HS256) verifies", "[auth]") {
  // Made with Python's hmac and base64 from the standard library, key "py"
  // = bytes 0..31, claims {"tenant":"acme","prefix":"acme/","exp":4102444800}.
  const TokenKeys keys = keysOf("py AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\n");
  const std::string token =
      "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6InB5In0."
      "eyJ0ZW5hbnQiOiJhY21lIiwicHJlZml4IjoiYWNtZS8iLCJleHAiOjQxMDI0NDQ4MDB9."
      "chK4oztbFT7LsbcMoZ61lpGOzFbSCkpeNl0qdEHwWFQ";
  auto scope = verifyToken(keys, token, kNowMs);
  REQUIRE(scope);
  CHECK(scope->prefix == "acme/");
  CHECK(scope->expiresMs == 4'102'444'800'000);
  // "alg":"none" with no signature is refused whatever it claims.
  CHECK(refusal(keys,
                "eyJhbGciOiAibm9uZSIsICJraWQiOiAicHkifQ."
                "eyJ0ZW5hbnQiOiJhY21lIiwicHJlZml4IjoiYWNtZS8iLCJleHAiOjQxMDI0NDQ4MDB9.")
            .find("HS256") != std::string::npos);
}

TEST_CASE("forged, retired, expired and malformed tokens are refused with the reason", "[auth]") {
  const TokenKeys keys = keysOf(newTokenKeyLine("k1"));
  const TokenKeys other = keysOf(newTokenKeyLine("k1"));  // same id, another secret
  const DeviceScope scope{"t", "fleet-7/", kNowMs + 60'000, ""};
  const std::string good = *issueToken(keys.newest(), scope, kNowMs);
  REQUIRE(verifyToken(keys, good, kNowMs));

  CHECK(refusal(other, good).find("signature") != std::string::npos);
  CHECK(refusal(keysOf(newTokenKeyLine("k9")), good).find("\"k1\"") != std::string::npos);
  CHECK(refusal(keys, good, kNowMs + 61'000).find("expired") != std::string::npos);

  // The claims changed after signing (a wider prefix): the signature fails.
  const size_t dot1 = good.find('.'), dot2 = good.find('.', dot1 + 1);
  const std::string wider = *issueToken(keys.newest(), {"t", "", kNowMs + 60'000, ""}, kNowMs);
  const size_t wdot1 = wider.find('.'), wdot2 = wider.find('.', wdot1 + 1);
  const std::string spliced =
      good.substr(0, dot1 + 1) + wider.substr(wdot1 + 1, wdot2 - wdot1 - 1) + good.substr(dot2);
  CHECK(refusal(keys, spliced).find("signature") != std::string::npos);

  for (const std::string& bad :
       {std::string(""), std::string("garbage"), std::string("a.b"), std::string("a.b.c.d"),
        std::string("!!.??.**"), std::string(5000, 'a'), good.substr(0, good.size() - 5)}) {
    CAPTURE(bad.substr(0, 40));
    refusal(keys, bad);
  }
  // Random bytes never verify and never throw.
  std::mt19937_64 rng(13);
  for (int i = 0; i < 2000; ++i) {
    std::string noise(rng() % 200, '\0');
    for (char& c : noise) c = static_cast<char>(rng());
    if (i % 2) noise = good.substr(0, rng() % good.size()) + noise;
    CHECK_FALSE(verifyToken(keys, noise, kNowMs));
  }
}

TEST_CASE("a token for a prefix that is not UTF-8 is refused, not thrown", "[auth][fuzz]") {
  // Found by fuzz/token_fuzz: the claims are JSON, which holds UTF-8 only.
  const TokenKeys keys = keysOf(newTokenKeyLine("k1"));
  for (const std::string& bad :
       {std::string("\x80"), std::string("fleet\x01/"), std::string(200, 'x')}) {
    auto token = issueToken(keys.newest(), {"t", bad, kNowMs + 1000, ""}, kNowMs);
    REQUIRE_FALSE(token);
    CHECK(token.error().message.find("prefix") != std::string::npos);
  }
  CHECK_FALSE(issueToken(keys.newest(), {"\xff", "ok/", kNowMs + 1000, ""}, kNowMs));
}

TEST_CASE("key files: lines, comments, and clear errors", "[auth]") {
  CHECK(keysOf("# the gateway's keys\n\n" + newTokenKeyLine("old") + "  " + newTokenKeyLine("new") +
               "\n")
            .size() == 2);
  const auto error = [](const std::string& text) {
    auto keys = TokenKeys::parse(text, "auth.keys");
    REQUIRE_FALSE(keys);
    return keys.error().message;
  };
  CHECK(error("") == "auth.keys holds no key");
  CHECK(error("k1\n").find("line 1") != std::string::npos);
  CHECK(error("k1 c2hvcnQ\n").find("32 bytes") != std::string::npos);
  CHECK(error("bad/id AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\n").find("key id") !=
        std::string::npos);
  CHECK(error(newTokenKeyLine("k1") + newTokenKeyLine("k1")).find("twice") != std::string::npos);

  testkit::TempDir dir;
  const std::string path = dir.path() + "/auth.keys";
  std::ofstream(path) << newTokenKeyLine("k1");
  namespace fs = std::filesystem;
  fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write | fs::perms::others_read);
  auto open = TokenKeys::load(path);
  REQUIRE_FALSE(open);
  CHECK(open.error().message.find("chmod 600") != std::string::npos);
  fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write);
  CHECK(TokenKeys::load(path));
  CHECK_FALSE(TokenKeys::load(dir.path() + "/missing"));
}

TEST_CASE("API keys: only the hash is kept, the scope comes with the key", "[auth]") {
  auto read = parseClientScope("read");
  auto prefix = parseClientScope("read:fleet-7/");
  auto admin = parseClientScope("admin");
  REQUIRE((read && prefix && admin));
  CHECK_FALSE(parseClientScope("write"));
  CHECK_FALSE(parseClientScope("read:"));
  const NewApiKey a = newApiKey("dispatch", *prefix);
  const NewApiKey b = newApiKey("ops", *admin);
  CHECK(a.line.find(a.key.substr(a.key.find('.') + 1)) == std::string::npos);  // no secret
  auto keys = ApiKeys::parse(a.line + b.line, "api.keys");
  REQUIRE(keys);
  CHECK(keys->contains("ops"));
  auto scope = keys->check(a.key);
  REQUIRE(scope);
  CHECK(scope->keyId == "dispatch");
  CHECK(scope->prefix == "fleet-7/");
  CHECK_FALSE(scope->admin());
  CHECK(scope->describe() == "read:fleet-7/");
  CHECK(keys->check(b.key)->admin());
  for (const std::string& bad :
       {std::string(""), std::string("dispatch"), a.key.substr(0, a.key.size() - 1),
        "ops" + a.key.substr(8), std::string("nobody.x"), std::string(600, 'x')}) {
    CAPTURE(bad);
    auto refused = keys->check(bad);
    REQUIRE_FALSE(refused);
    CHECK(refused.error().code == ErrorCode::kUnauthenticated);
  }
  CHECK_FALSE(ApiKeys::parse("k1 00 read\n", "x"));
  CHECK_FALSE(ApiKeys::parse(a.line + a.line, "x"));
}

}  // namespace
}  // namespace locus::auth
