#include "locus/server/rpc_listener.h"

#include <fmt/format.h>

#include "locus/common/net.h"
#include "locus/common/wire.h"

namespace locus::server {

kj::Own<kj::ConnectionReceiver> bindListener(kj::AsyncIoContext& io, const std::string& address,
                                             std::string& bound) {
  auto parsed = io.provider->getNetwork().parseAddress(address).wait(io.waitScope);
  auto listener = parsed->listen();
  bound = fmt::format("{}:{}", splitHostPort(address)->first, listener->getPort());
  return listener;
}

RpcConnection::RpcConnection(kj::Own<kj::AsyncIoStream> stream, capnp::Capability::Client bootstrap,
                             metrics::Gauge* open, std::optional<size_t> flowLimitBytes)
    : open_(open),
      stream_(kj::mv(stream)),
      network_(*stream_, capnp::rpc::twoparty::Side::SERVER, untrustedReaderOptions()),
      rpc_(capnp::makeRpcServer(network_, kj::mv(bootstrap))) {
  if (flowLimitBytes) rpc_.setFlowLimit(*flowLimitBytes);
  if (open_) open_->add(1);
}

RpcConnection::~RpcConnection() {
  if (open_) open_->add(-1);
}

}  // namespace locus::server
