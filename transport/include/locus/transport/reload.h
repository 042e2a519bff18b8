// SIGHUP on a daemon's KJ event loop: "read your key files again".
#pragma once

#include <kj/async-unix.h>

#include <functional>

namespace locus::transport {

// Runs `reload` on the loop's thread each time signalfd `fd` (a
// ReloadSignal's) becomes readable, for as long as the returned promise
// lives. fd < 0: never.
kj::Promise<void> reloadOnSignal(kj::UnixEventPort& port, int fd, std::function<void()> reload);

}  // namespace locus::transport
