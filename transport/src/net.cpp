#include "locus/transport/net.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <charconv>

namespace locus::transport {

std::optional<std::pair<std::string, std::string>> splitHostPort(const std::string& address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size()) return std::nullopt;
  return std::make_pair(address.substr(0, colon), address.substr(colon + 1));
}

std::optional<std::string> checkListen(const std::string& flag, const std::string& address,
                                       const std::string& example) {
  const auto hostPort = splitHostPort(address);
  if (!hostPort) return fmt::format("{} {} must be HOST:PORT, e.g. {}", flag, address, example);
  unsigned port = 0;
  const auto& p = hostPort->second;
  const auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), port);
  if (ec != std::errc() || end != p.data() + p.size() || port > 65535) {
    return fmt::format("{} {}: the port must be a number in 0..65535", flag, address);
  }
  return std::nullopt;
}

bool isLoopback(const std::string& address) {
  std::string a = address;
  if (a.rfind("inproc://", 0) == 0 || a.rfind("ipc://", 0) == 0) return true;
  if (a.rfind("tcp://", 0) == 0) a = a.substr(6);
  const auto hostPort = splitHostPort(a);
  if (!hostPort) return false;
  const std::string& host = hostPort->first;
  return host.rfind("127.", 0) == 0 || host == "[::1]" || host == "::1" || host == "localhost";
}

void warnIfOpen(const std::string& what, const std::string& address,
                const std::string& howToClose) {
  if (isLoopback(address)) return;
  spdlog::warn(
      "OPEN TO THE NETWORK: {} is reachable from other machines and accepts {} from anyone; "
      "{}, or listen on 127.0.0.1",
      address, what, howToClose);
}

}  // namespace locus::transport
