// "HOST:PORT" listen addresses, as every Locus daemon takes them.
#pragma once

#include <optional>
#include <string>
#include <utility>

namespace locus::transport {

// "HOST" and "PORT" of "HOST:PORT" (HOST may be a bracketed IPv6 address),
// or nothing when either part is missing.
std::optional<std::pair<std::string, std::string>> splitHostPort(const std::string& address);

// Why `address`, given to `flag`, is not HOST:PORT with a port in 0..65535,
// or nothing. `example` shows a good value in the message.
std::optional<std::string> checkListen(const std::string& flag, const std::string& address,
                                       const std::string& example);

}  // namespace locus::transport
