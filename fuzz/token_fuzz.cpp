// The gateway's device-token check and the server's API-key check: any
// bytes are refused with a reason or (for a valid signature, which random
// bytes never make) accepted, never a crash, a hang or a leak. The first
// byte picks the check; a token made from the input's claims must verify.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "locus/common/auth.h"

namespace {

const locus::auth::TokenKeys& tokenKeys() {
  static const auto keys =
      *locus::auth::TokenKeys::parse("k1 AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\n", "fuzz");
  return keys;
}

const locus::auth::ApiKeys& apiKeys() {
  static const auto keys = *locus::auth::ApiKeys::parse(
      "k1 0000000000000000000000000000000000000000000000000000000000000000 read:fleet/\n", "fuzz");
  return keys;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  constexpr int64_t kNowMs = 1'800'000'000'000;
  switch (data[0] % 3) {
    case 0: {
      // Refused (random bytes never carry a valid signature) and refused
      // the same way twice.
      auto scope = locus::auth::verifyToken(tokenKeys(), input, kNowMs);
      if (scope) std::abort();
      break;
    }
    case 1: {
      // A token issued for this prefix (if it is one) verifies and carries
      // it back.
      const locus::auth::DeviceScope want{"t", std::string(input), kNowMs + 1000, ""};
      auto token = locus::auth::issueToken(tokenKeys().newest(), want, kNowMs);
      if (!token) break;
      auto scope = locus::auth::verifyToken(tokenKeys(), *token, kNowMs);
      if (!scope || scope->prefix != want.prefix) std::abort();
      break;
    }
    default:
      if (apiKeys().check(input)) std::abort();
  }
  return 0;
}
