// The fuzz targets' fixed credentials, so that seeds in the corpus can carry
// a valid device token or API key and the fuzzers reach past the checks.
// Test keys only: they guard nothing but the fuzz process's own cluster.
#pragma once

#include <cstdint>

namespace locus::fuzz {

// The device-token key (an --auth-keys line: KEY_ID SECRET, base64url).
inline constexpr const char* kTokenKeyLine = "k1 AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\n";
// What the fixture's device token allows, and when it was issued: the
// token is the same string on every run (issueToken is deterministic).
inline constexpr const char* kTokenPrefix = "fleet/";
inline constexpr int64_t kTokenIssuedMs = 1'763'000'000'000;   // 2025-11-13
inline constexpr int64_t kTokenExpiresMs = 4'102'444'800'000;  // 2100-01-01

// API keys (an --api-keys file: KEY_ID BLAKE2b-256(SECRET) SCOPE) and the
// "KEY_ID.SECRET" a client presents for each.
inline constexpr const char* kApiKeyLines =
    "admin d4776569e9c059a71faefd9ac228865b88e17392cd15db4b3e0db1798dc3099c admin\n"
    "fleet c202c3d919fc228251754c1e9b394aa4a993e2bd0bb4652e672daa3bba5291c5 read:fleet/\n";
inline constexpr const char* kAdminKey = "admin.fuzz-admin-secret";
inline constexpr const char* kFleetKey = "fleet.fuzz-fleet-secret";  // reads ids under fleet/

}  // namespace locus::fuzz
