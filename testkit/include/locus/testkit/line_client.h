// A blocking TCP client for tests of line protocols and of what a daemon
// does with raw bytes on its ports. Header-only, Linux.
// Uses Catch2.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "locus/testkit/cluster.h"

namespace locus::testkit {

// A blocking TCP client of the text protocol; every operation is bounded
// by kWait.
class LineClient {
 public:
  explicit LineClient(const std::string& address) {
    const size_t colon = address.rfind(':');
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(std::stoi(address.substr(colon + 1))));
    REQUIRE(inet_pton(AF_INET, address.substr(0, colon).c_str(), &addr.sin_addr) == 1);
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    REQUIRE(connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  }
  ~LineClient() { close(fd_); }
  LineClient(const LineClient&) = delete;
  LineClient& operator=(const LineClient&) = delete;

  // Sends every byte; false if the socket failed or stayed full for kWait.
  bool send(std::string_view bytes) {
    while (!bytes.empty()) {
      pollfd item{fd_, POLLOUT, 0};
      if (poll(&item, 1, static_cast<int>(kWait.count())) <= 0) return false;
      const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  void shutdownWrite() { shutdown(fd_, SHUT_WR); }
  int fd() const { return fd_; }

  // Sends each line (a newline added) and reads one reply line for each;
  // fails the test if they cannot all be sent or answered in time.
  std::vector<std::string> exchange(const std::vector<std::string>& lines) {
    std::string out;
    for (const auto& l : lines) out.append(l).push_back('\n');
    REQUIRE(send(out));
    auto replies = readLines(lines.size());
    REQUIRE(replies.size() == lines.size());
    return replies;
  }

  // Whether the peer closes the connection (end of stream or a reset)
  // within kWait, reading and dropping whatever it sends until then.
  bool closedByPeer() {
    const auto giveUp = std::chrono::steady_clock::now() + kWait;
    while (std::chrono::steady_clock::now() < giveUp) {
      pollfd item{fd_, POLLIN, 0};
      if (poll(&item, 1, 50) < 0) return false;
      if (!(item.revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char chunk[65536];
      const ssize_t n = recv(fd_, chunk, sizeof chunk, MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) return true;
    }
    return false;
  }

  // The next `count` reply lines (fewer if the peer closed or kWait passed
  // without a byte).
  std::vector<std::string> readLines(size_t count) {
    std::vector<std::string> lines;
    while (lines.size() < count) {
      const size_t newline = buffer_.find('\n');
      if (newline != std::string::npos) {
        lines.push_back(buffer_.substr(0, newline));
        buffer_.erase(0, newline + 1);
        continue;
      }
      pollfd item{fd_, POLLIN, 0};
      if (poll(&item, 1, static_cast<int>(kWait.count())) <= 0) break;
      char chunk[65536];
      const ssize_t n = recv(fd_, chunk, sizeof chunk, 0);
      if (n <= 0) break;
      buffer_.append(chunk, static_cast<size_t>(n));
    }
    return lines;
  }

 private:
  int fd_ = -1;
  std::string buffer_;
};

}  // namespace locus::testkit
