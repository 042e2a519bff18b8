// Connections that go quiet: a stream that notes when its peer last sent a
// byte, and a promise that resolves once it has been silent too long. The
// gateway closes such connections (--idle-timeout), so a client that
// opens connections and sends nothing (a slowloris) holds them for a
// bounded time only.
#pragma once

#include <kj/async-io.h>
#include <kj/timer.h>

namespace locus::transport {

// Forwards everything to `inner`, noting when each read returned bytes.
class WatchedStream final : public kj::AsyncIoStream {
 public:
  WatchedStream(kj::Own<kj::AsyncIoStream> inner, kj::Timer& timer)
      : inner_(kj::mv(inner)), timer_(timer), lastRead_(timer.now()) {}

  kj::TimePoint lastRead() const { return lastRead_; }

  kj::Promise<size_t> tryRead(void* buffer, size_t minBytes, size_t maxBytes) override {
    return inner_->tryRead(buffer, minBytes, maxBytes).then([this](size_t n) {
      if (n > 0) lastRead_ = timer_.now();
      return n;
    });
  }
  kj::Maybe<uint64_t> tryGetLength() override { return inner_->tryGetLength(); }
  kj::Promise<void> write(const void* buffer, size_t size) override {
    return inner_->write(buffer, size);
  }
  kj::Promise<void> write(kj::ArrayPtr<const kj::ArrayPtr<const kj::byte>> pieces) override {
    return inner_->write(pieces);
  }
  kj::Promise<void> whenWriteDisconnected() override { return inner_->whenWriteDisconnected(); }
  void shutdownWrite() override { inner_->shutdownWrite(); }
  void abortRead() override { inner_->abortRead(); }
  void getsockopt(int level, int option, void* value, kj::uint* length) override {
    inner_->getsockopt(level, option, value, length);
  }
  void setsockopt(int level, int option, const void* value, kj::uint length) override {
    inner_->setsockopt(level, option, value, length);
  }
  void getsockname(struct sockaddr* addr, kj::uint* length) override {
    inner_->getsockname(addr, length);
  }
  void getpeername(struct sockaddr* addr, kj::uint* length) override {
    inner_->getpeername(addr, length);
  }

 private:
  kj::Own<kj::AsyncIoStream> inner_;
  kj::Timer& timer_;
  kj::TimePoint lastRead_;
};

// Resolves once `stream`'s peer has sent nothing for `idle` (checked at
// most `idle` after each read). The stream must outlive the promise.
kj::Promise<void> whenIdle(kj::Timer& timer, const WatchedStream& stream, kj::Duration idle);

}  // namespace locus::transport
