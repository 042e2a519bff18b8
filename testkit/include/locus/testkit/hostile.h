// What a hostile client does to a daemon's ports, for tests that it stays
// up: announce a huge Cap'n Proto message, hold many connections, and a
// look at the daemon's memory while it happens. Header-only, Linux.
// Uses Catch2.
#pragma once

#include <cstdint>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>

#include "locus/testkit/line_client.h"

namespace locus::testkit {

// The start of a Cap'n Proto stream message of one segment of `words`
// words: what a client sends before the segment itself.
inline std::string capnpStreamHeader(uint32_t words) {
  std::string header(8, '\0');
  const uint32_t segmentsLessOne = 0;
  std::memcpy(header.data(), &segmentsLessOne, 4);
  std::memcpy(header.data() + 4, &words, 4);
  return header;
}

// Announces a message of 4M words (32 MiB) on `client` and sends up to
// `bytes` of it; how many bytes the daemon took before it hung up.
inline size_t sendHugeRpcMessage(LineClient& client, size_t bytes) {
  if (!client.send(capnpStreamHeader(4u << 20))) return 0;
  const std::string chunk(1 << 20, '\0');
  size_t sent = 0;
  while (sent < bytes && client.send(chunk)) sent += chunk.size();
  return sent;
}

// Resident memory of process `pid` in bytes (VmRSS), or nothing.
inline std::optional<uint64_t> residentBytes(int pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  while (status >> key) {
    if (key == "VmRSS:") {
      uint64_t kib = 0;
      status >> kib;
      return kib * 1024;
    }
    status.ignore(4096, '\n');
  }
  return std::nullopt;
}

}  // namespace locus::testkit
