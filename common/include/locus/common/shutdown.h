// Pollable stop signals for server loops, which wait in zmq::poll and so
// take a file descriptor rather than a flag.
#pragma once

namespace locus {

// SIGINT and SIGTERM as a readable file descriptor (signalfd). Construct it
// in main before any thread starts: it blocks both signals in the calling
// thread, and threads started later inherit that mask.
class ShutdownSignal {
 public:
  ShutdownSignal();
  ~ShutdownSignal();
  ShutdownSignal(const ShutdownSignal&) = delete;
  ShutdownSignal& operator=(const ShutdownSignal&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
};

// SIGHUP as a readable file descriptor: "read your key files again". As
// ShutdownSignal, construct it before any thread starts.
class ReloadSignal {
 public:
  ReloadSignal();
  ~ReloadSignal();
  ReloadSignal(const ReloadSignal&) = delete;
  ReloadSignal& operator=(const ReloadSignal&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
};

// Consumes the signals pending on signalfd `fd` (it stays readable until
// they are read).
void drainSignalFd(int fd);

// A stop request from another thread (eventfd): readable once notify() ran.
class StopEvent {
 public:
  StopEvent();
  ~StopEvent();
  StopEvent(const StopEvent&) = delete;
  StopEvent& operator=(const StopEvent&) = delete;
  void notify();
  int fd() const { return fd_; }

 private:
  int fd_;
};

}  // namespace locus
