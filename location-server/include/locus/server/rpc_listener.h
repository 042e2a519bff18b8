// Listening for clients from a KJ event loop, as the server and the gateway
// both do: binding HOST:PORT, accepting connection after connection, and
// serving Cap'n Proto RPC on each with untrusted-input limits.
#pragma once

#include <capnp/rpc-twoparty.h>
#include <capnp/rpc.h>
#include <kj/async-io.h>
#include <spdlog/spdlog.h>

#include <cstddef>
#include <optional>
#include <string>
#include <utility>

#include "locus/common/metrics.h"

namespace locus::server {

// Binds `address` ("HOST:PORT", port 0 picks one). Sets `bound` to the
// address with the port actually bound. Throws kj::Exception when the
// address is malformed or cannot be bound. Precondition: checkListen()
// passed.
kj::Own<kj::ConnectionReceiver> bindListener(kj::AsyncIoContext& io, const std::string& address,
                                             std::string& bound);

// One accepted RPC connection: its stream, the two-party network over it
// (reading messages with untrusted limits) and an RPC system serving
// `bootstrap`. Counted in `open` while it lives; lives until the peer hangs
// up (onDisconnect()).
class RpcConnection {
 public:
  // `flowLimitBytes`: calls in flight from the client, in bytes, before the
  // connection stops reading from it (nothing: no limit).
  RpcConnection(kj::Own<kj::AsyncIoStream> stream, capnp::Capability::Client bootstrap,
                metrics::Gauge* open = nullptr, std::optional<size_t> flowLimitBytes = {});
  ~RpcConnection();

  kj::Promise<void> onDisconnect() { return network_.onDisconnect(); }

 private:
  metrics::Gauge* open_;
  kj::Own<kj::AsyncIoStream> stream_;
  capnp::TwoPartyVatNetwork network_;
  capnp::RpcSystem<capnp::rpc::twoparty::VatId> rpc_;
};

namespace detail {
template <typename Serve>
kj::Promise<void> acceptFrom(kj::ConnectionReceiver& listener, Serve& serve, const char* what) {
  return listener.accept()
      .then([&serve](kj::Own<kj::AsyncIoStream>&& stream) { serve(kj::mv(stream)); })
      .catch_([what](kj::Exception&& e) {
        // E.g. out of file descriptors: keep accepting the next ones.
        spdlog::warn("{} accept failed: {}", what, e.getDescription().cStr());
      })
      .then([&listener, &serve, what]() { return acceptFrom(listener, serve, what); });
}
}  // namespace detail

// Accepts connections on `listener` for as long as the returned promise
// lives, handing each stream to `serve`. A failed accept is logged as
// "`what` accept failed" and accepting goes on. Ownership: `listener` must
// outlive the promise.
template <typename Serve>
kj::Promise<void> acceptEach(kj::ConnectionReceiver& listener, Serve serve, const char* what) {
  auto owned = kj::heap<Serve>(kj::mv(serve));
  Serve& ref = *owned;
  return detail::acceptFrom(listener, ref, what).attach(kj::mv(owned));
}

}  // namespace locus::server
