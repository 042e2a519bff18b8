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

// Whether HOST:PORT `address` (or a tcp:// ZeroMQ endpoint) can be reached
// only from this machine: 127.0.0.0/8, ::1, localhost, or an inproc:// or
// ipc:// endpoint.
bool isLoopback(const std::string& address);

// Logs the warning SPEC "Security" asks for when a daemon listens on
// `address` for `what` ("device reports", "queries") without checking who
// connects, and the address is not loopback.
void warnIfOpen(const std::string& what, const std::string& address, const std::string& howToClose);

}  // namespace locus::transport
