#include "locus/server/server.h"

#include <capnp/rpc.h>
#include <fmt/format.h>
#include <kj/async-unix.h>
#include <kj/debug.h>
#include <spdlog/spdlog.h>

#include "locus/common/wire.h"
#include "locus/server/http_api.h"
#include "locus/server/location_service.h"
#include "locus/transport/net.h"
#include "locus/transport/reload.h"
#include "locus/transport/rpc_listener.h"

namespace locus::server {
namespace {

// The largest deadline we accept: a query that waits longer is a mistake.
constexpr int64_t kMaxTimeoutMs = 600'000;
// After a stop request, in-flight queries get their deadline plus this.
constexpr int64_t kDrainSlackMs = 1000;
// Bytes of queries a client may have in flight on one connection before the
// server stops reading from it (Cap'n Proto's flow limit).
constexpr size_t kRpcFlowLimitBytes = 8 << 20;

}  // namespace

std::optional<std::string> ServerOptions::validate() const {
  if (units.empty()) return "--units needs at least one ZeroMQ endpoint, e.g. tcp://127.0.0.1:7900";
  for (const auto& unit : units) {
    if (unit.empty()) return "--units has an empty endpoint (two commas in a row?)";
  }
  if (auto e = transport::checkListen("--listen", listen, "0.0.0.0:7800")) return e;
  if (!httpListen.empty()) {
    if (auto e = transport::checkListen("--http-listen", httpListen, "0.0.0.0:7880")) return e;
  }
  if (auto e = transport::checkMaxConnections(maxConnections)) return e;
  if (auto e = transport::checkUnitLinkFlags(curveKey, unitPublicKey)) return e;
  if (auto e = transport::checkTlsFlags(tlsCert, tlsKey)) return e;
  if (timeoutMs < 1 || timeoutMs > kMaxTimeoutMs) {
    return fmt::format("--timeout-ms {} must be in 1..{}", timeoutMs, kMaxTimeoutMs);
  }
  const auto n = static_cast<uint32_t>(units.size());
  if (auto e =
          Placement::check(n, replication.partitions,
                           replication.replicas != 0 ? replication.replicas : defaultReplicas(n)))
    return e;
  return std::nullopt;
}

Server::Server(const ServerOptions& options, zmq::context_t& context, kj::AsyncIoContext& io)
    : io_(io),
      unitLinks_(transport::unitLinksFromFiles(context, options.curveKey, options.unitPublicKey)),
      cluster_(context, io.unixEventPort, io.provider->getTimer(), options.units, options.timeoutMs,
               options.replication),
      auth_(options.apiKeys.empty() ? std::make_unique<ClientAuth>()
                                    : std::make_unique<ClientAuth>(options.apiKeys)),
      tls_(options.tlsCert.empty()
               ? nullptr
               : std::make_unique<transport::TlsServer>(options.tlsCert, options.tlsKey)),
      bootstrap_(kj::heap<LocationServiceImpl>(cluster_, counters_, *auth_)),
      limit_(options.maxConnections > 0 ? options.maxConnections
                                        : transport::defaultMaxConnections()),
      tasks_(*this) {
  listener_ = std::make_unique<transport::Listener>(io_, options.listen, "rpc", limit_);
  if (tls_) listener_->useTls(tls_->context());
  address_ = listener_->address();
  if (!auth_->required()) {
    for (const auto* address : {&options.listen, &options.httpListen}) {
      if (!address->empty()) {
        transport::warnIfOpen("queries for every device's position", *address,
                              "give --api-keys to require client keys");
      }
    }
  }
  if (!options.httpListen.empty()) {
    counters_.expose(registry_);
    auth_->expose(registry_);
    registry_.gauge("locus_server_partitions", "The cluster's partitions (--partitions)", {},
                    [this] { return double(cluster_.placement().partitions()); });
    registry_.gauge("locus_server_partitions_served",
                    "Partitions with a replica that is up and serving them (below "
                    "locus_server_partitions: answers are partial)",
                    {}, [this] { return double(cluster_.servedPartitions()); });
    registry_.counter("locus_server_scattered_queries_total",
                      "Nearest and area queries sent to the units (each to every unit it needs)",
                      {}, cluster_.scatteredQueries());
    registry_.counter("locus_server_scatter_messages_total",
                      "Messages per unit that carried them: queries_total / messages_total is "
                      "how many queries a unit message holds",
                      {}, cluster_.scatterMessages());
    limit_.expose(registry_);
    listener_->expose(registry_);
    http_ = std::make_unique<transport::FrontEndHttp>(
        context, io, options.units, cluster_.channels(),
        std::vector<const transport::Listener*>{listener_.get()}, options.httpListen, registry_,
        httpApi(cluster_, counters_, *auth_, io.provider->getTimer()),
        [this] { return cluster_.readiness(); }, tls_ ? &tls_->context() : nullptr);
  }
}

Server::~Server() = default;

void Server::taskFailed(kj::Exception&& exception) {
  spdlog::warn("connection failed: {}", exception.getDescription().cStr());
}

void Server::run(int stopFd, int reloadFd) {
  kj::UnixEventPort::FdObserver stop(io_.unixEventPort, stopFd,
                                     kj::UnixEventPort::FdObserver::OBSERVE_READ);
  {
    auto reloading = transport::reloadOnSignal(io_.unixEventPort, reloadFd, [this] {
                       auth_->reload();
                     }).eagerlyEvaluate(nullptr);
    auto accepting = listener_
                         ->acceptEach([this](kj::Own<kj::AsyncIoStream>&& stream,
                                             kj::Own<transport::ConnectionLimit::Slot>&& slot) {
                           auto connection = kj::heap<transport::RpcConnection>(
                               kj::mv(stream), bootstrap_, kRpcFlowLimitBytes);
                           auto disconnected = connection->onDisconnect();
                           tasks_.add(disconnected.attach(kj::mv(connection), kj::mv(slot)));
                         })
                         .eagerlyEvaluate([](kj::Exception&& e) {
                           spdlog::error("stopped accepting: {}", e.getDescription().cStr());
                         });
    stop.whenBecomesReadable().wait(io_.waitScope);
  }
  if (http_) http_->stopping();
  listener_->close();  // refuse new connections

  // Let the queries in flight finish: each ends by its deadline.
  auto& timer = io_.provider->getTimer();
  const kj::TimePoint giveUp =
      timer.now() + (cluster_.timeoutMs() + kDrainSlackMs) * kj::MILLISECONDS;
  size_t waited = 0;
  while (cluster_.pending() > 0 && timer.now() < giveUp) {
    timer.afterDelay(5 * kj::MILLISECONDS).wait(io_.waitScope);
    ++waited;
  }
  // One more moment for the RPC system to write the last answers.
  if (waited > 0) timer.afterDelay(20 * kj::MILLISECONDS).wait(io_.waitScope);
  if (const uint64_t queries = cluster_.scatteredQueries().value(); queries > 0) {
    const uint64_t messages = cluster_.scatterMessages().value();
    spdlog::info("nearest and area queries: {} in {} messages per unit ({:.2f} per message)",
                 queries, messages, static_cast<double>(queries) / static_cast<double>(messages));
  }
}

}  // namespace locus::server
