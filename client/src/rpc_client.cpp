#include "locus/client/rpc_client.h"

#include <kj/debug.h>
#include <kj/refcount.h>
#include <kj/time.h>

#include "locus/transport/net.h"

namespace locus::client {

// The thread's event loop, shared by its RpcClients and alive while one is.
class RpcClient::ThreadLoop final : public kj::Refcounted {
 public:
  static kj::Own<ThreadLoop> get() {
    if (current_ != nullptr) return kj::addRef(*current_);
    auto loop = kj::refcounted<ThreadLoop>();
    current_ = loop.get();
    return loop;
  }
  ThreadLoop() : io(kj::setupAsyncIo()) {}
  ~ThreadLoop() noexcept(false) { current_ = nullptr; }

  kj::AsyncIoContext io;

 private:
  static thread_local ThreadLoop* current_;
};

thread_local RpcClient::ThreadLoop* RpcClient::ThreadLoop::current_ = nullptr;

struct RpcClient::Connection {
  explicit Connection(kj::Own<kj::AsyncIoStream> s) : stream(kj::mv(s)), client(*stream) {}
  kj::Own<kj::AsyncIoStream> stream;
  capnp::TwoPartyClient client;
};

RpcClient::RpcClient(const std::string& address, const transport::TlsClientOptions& tls)
    : loop_(ThreadLoop::get()),
      tls_(tls.on() ? transport::tlsClientContext(tls) : kj::Own<kj::TlsContext>()),
      connected_(nullptr) {
  std::string serverName = tls.serverName;
  if (serverName.empty()) {
    const auto hostPort = transport::splitHostPort(address);
    serverName = hostPort ? hostPort->first : address;
  }
  auto stream = loop_->io.provider->getNetwork().parseAddress(address).then(
      [](kj::Own<kj::NetworkAddress>&& addr) { return addr->connect(); });
  if (tls_.get() != nullptr) {
    stream = stream.then([this, serverName](kj::Own<kj::AsyncIoStream>&& plain) {
      return tls_->wrapClient(kj::mv(plain), serverName);
    });
  }
  connected_ = stream
                   .then([this](kj::Own<kj::AsyncIoStream>&& s) {
                     connection_ = kj::heap<Connection>(kj::mv(s));
                   })
                   .fork();
}

RpcClient::~RpcClient() = default;

capnp::Capability::Client RpcClient::bootstrap() {
  KJ_IF_MAYBE (connection, connection_) {
    return (*connection)->client.bootstrap();
  }
  return connected_.addBranch().then(
      [this]() { return KJ_ASSERT_NONNULL(connection_)->client.bootstrap(); });
}

kj::Promise<void> RpcClient::afterDelay(kj::Duration delay) {
  return getIoProvider().getTimer().atTime(kj::systemPreciseMonotonicClock().now() + delay);
}

kj::WaitScope& RpcClient::getWaitScope() {
  return loop_->io.waitScope;
}

kj::AsyncIoProvider& RpcClient::getIoProvider() {
  return *loop_->io.provider;
}

kj::LowLevelAsyncIoProvider& RpcClient::getLowLevelIoProvider() {
  return *loop_->io.lowLevelProvider;
}

}  // namespace locus::client
