#include "locus/transport/idle.h"

namespace locus::transport {

kj::Promise<void> whenIdle(kj::Timer& timer, const WatchedStream& stream, kj::Duration idle) {
  const kj::TimePoint due = stream.lastRead() + idle;
  if (timer.now() >= due) return kj::READY_NOW;
  return timer.atTime(due).then(
      [&timer, &stream, idle]() { return whenIdle(timer, stream, idle); });
}

}  // namespace locus::transport
