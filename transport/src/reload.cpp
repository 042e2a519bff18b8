#include "locus/transport/reload.h"

#include <utility>

#include "locus/common/shutdown.h"

namespace locus::transport {
namespace {

kj::Promise<void> each(kj::UnixEventPort::FdObserver& observer, int fd,
                       const std::function<void()>& reload) {
  return observer.whenBecomesReadable().then([&observer, fd, &reload]() {
    drainSignalFd(fd);
    reload();
    return each(observer, fd, reload);
  });
}

}  // namespace

kj::Promise<void> reloadOnSignal(kj::UnixEventPort& port, int fd, std::function<void()> reload) {
  if (fd < 0) return kj::NEVER_DONE;
  auto observer = kj::heap<kj::UnixEventPort::FdObserver>(
      port, fd, kj::UnixEventPort::FdObserver::OBSERVE_READ);
  auto action = kj::heap<std::function<void()>>(std::move(reload));
  auto loop = each(*observer, fd, *action);
  return loop.attach(kj::mv(observer), kj::mv(action));
}

}  // namespace locus::transport
