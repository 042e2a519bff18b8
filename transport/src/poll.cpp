#include "locus/transport/poll.h"

#include <cerrno>

namespace locus::transport {

int pollThroughSignals(zmq::pollitem_t* items, size_t count, std::chrono::milliseconds timeout) {
  using Clock = std::chrono::steady_clock;
  const bool forever = timeout.count() < 0;
  const auto deadline = Clock::now() + (forever ? std::chrono::milliseconds(0) : timeout);
  for (auto left = timeout;;) {
    try {
      return zmq::poll(items, count, left);
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) throw;
    }
    if (forever) continue;
    left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      for (size_t i = 0; i < count; ++i) items[i].revents = 0;  // none ready, as a timeout says
      return 0;
    }
  }
}

}  // namespace locus::transport
