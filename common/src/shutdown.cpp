#include "locus/common/shutdown.h"

#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <initializer_list>
#include <system_error>

namespace locus {
namespace {

// Blocks `signals` in the calling thread (threads started later inherit
// the mask) and returns a signalfd that reads them.
int blockedSignalFd(std::initializer_list<int> signals) {
  sigset_t mask;
  sigemptyset(&mask);
  for (int s : signals) sigaddset(&mask, s);
  if (pthread_sigmask(SIG_BLOCK, &mask, nullptr) != 0) {
    throw std::system_error(errno, std::generic_category(), "pthread_sigmask");
  }
  const int fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "signalfd");
  return fd;
}

}  // namespace

ShutdownSignal::ShutdownSignal() : fd_(blockedSignalFd({SIGINT, SIGTERM})) {}

ShutdownSignal::~ShutdownSignal() {
  close(fd_);
}

ReloadSignal::ReloadSignal() : fd_(blockedSignalFd({SIGHUP})) {}

ReloadSignal::~ReloadSignal() {
  close(fd_);
}

void drainSignalFd(int fd) {
  signalfd_siginfo info;
  while (read(fd, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
  }
}

StopEvent::StopEvent() : fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
}

StopEvent::~StopEvent() {
  close(fd_);
}

void StopEvent::notify() {
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(fd_, &one, sizeof one);
}

}  // namespace locus
