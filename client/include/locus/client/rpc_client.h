// One Cap'n Proto RPC connection to a Locus daemon (the gateway's Ingest,
// the server's LocationService), over plain TCP or TLS. It takes the place
// of capnp::EzRpcClient, which cannot do TLS, and keeps its shape: the
// connection is made in the background and getMain() may be called (and
// calls pipelined on it) at once; every RpcClient of a thread shares one
// event loop, so a thread may hold several (as IngestClient does while it
// reconnects).
//
// Thread-affinity: the thread that made it. A thread must not mix it with
// capnp::EzRpcClient (each wants the thread's one event loop).
#pragma once

#include <capnp/capability.h>
#include <capnp/rpc-twoparty.h>
#include <kj/async-io.h>
#include <kj/compat/tls.h>

#include <string>

#include "locus/transport/tls.h"

namespace locus::client {

class RpcClient {
 public:
  // "HOST:PORT"; with tls.on(), TLS trusting tls.caFile and expecting
  // tls.serverName (else the HOST) in the server's certificate.
  explicit RpcClient(const std::string& address, const transport::TlsClientOptions& tls = {});
  ~RpcClient();
  RpcClient(const RpcClient&) = delete;
  RpcClient& operator=(const RpcClient&) = delete;

  // The server's bootstrap capability; calls on it wait for the connection.
  template <typename T>
  typename T::Client getMain() {
    return bootstrap().castAs<T>();
  }
  capnp::Capability::Client bootstrap();

  kj::WaitScope& getWaitScope();
  kj::AsyncIoProvider& getIoProvider();
  kj::LowLevelAsyncIoProvider& getLowLevelIoProvider();

  // Resolves `delay` from now. Use it, not kj::Timer::afterDelay(), for a
  // deadline: the timer counts from the loop's last poll, and a client's
  // loop runs only while it waits, so after a pause of the caller (reading
  // stdin, a phase of other work) a timer's "now" is that far behind and
  // its deadlines have passed already.
  kj::Promise<void> afterDelay(kj::Duration delay);
  // `promise`, or a DISCONNECTED exception saying `what` after `delay`.
  template <typename T>
  kj::Promise<T> timeoutAfter(kj::Duration delay, kj::Promise<T> promise, kj::StringPtr what) {
    return promise.exclusiveJoin(afterDelay(delay).then(
        [what = kj::str(what)]() -> kj::Promise<T> { return KJ_EXCEPTION(DISCONNECTED, what); }));
  }

 private:
  class ThreadLoop;
  struct Connection;

  kj::Own<ThreadLoop> loop_;
  kj::Own<kj::TlsContext> tls_;
  kj::Maybe<kj::Own<Connection>> connection_;
  kj::ForkedPromise<void> connected_;
};

}  // namespace locus::client
