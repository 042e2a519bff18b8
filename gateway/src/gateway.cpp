#include "locus/gateway/gateway.h"

#include <capnp/rpc-twoparty.h>
#include <capnp/rpc.h>
#include <fmt/format.h>
#include <kj/async-unix.h>
#include <kj/debug.h>
#include <spdlog/spdlog.h>

#include <utility>

#include "device_auth.h"
#include "http_ingest.h"
#include "ingest_service.h"
#include "locus/common/wire.h"
#include "locus/transport/idle.h"
#include "locus/transport/net.h"
#include "locus/transport/reload.h"
#include "locus/transport/rpc_listener.h"
#include "locus/transport/unit_health.h"
#include "text_connection.h"

namespace locus::gateway {
namespace {

// After a stop request, buffered reports get the batch timeout plus this.
constexpr int64_t kDrainSlackMs = 1000;

}  // namespace

std::optional<std::string> ClientLimits::validate() const {
  if (idleTimeoutMs < 0) return "--idle-timeout must be >= 0 (0 = never)";
  if (maxBufferedBytes < (64 << 10)) {
    return fmt::format("--max-buffered-bytes {} must be at least 64 KiB", maxBufferedBytes);
  }
  return std::nullopt;
}

std::optional<std::string> GatewayOptions::validate() const {
  if (units.empty()) return "--units needs at least one ZeroMQ endpoint, e.g. tcp://127.0.0.1:7900";
  for (const auto& unit : units) {
    if (unit.empty()) return "--units has an empty endpoint (two commas in a row?)";
  }
  if (auto e = transport::checkListen("--listen", listen, "0.0.0.0:7700")) return e;
  if (auto e = transport::checkListen("--listen-text", listenText, "0.0.0.0:7701")) return e;
  if (!httpListen.empty()) {
    if (auto e = transport::checkListen("--http-listen", httpListen, "0.0.0.0:7780")) return e;
  }
  if (auto e = transport::checkMaxConnections(maxConnections)) return e;
  if (auto e = transport::checkUnitLinkFlags(curveKey, unitPublicKey)) return e;
  if (auto e = transport::checkTlsFlags(tlsCert, tlsKey)) return e;
  if (auto e = clients.validate()) return e;
  if (maxFutureSkewMs < 0) {
    return fmt::format("--max-future-skew {} ms must be >= 0", maxFutureSkewMs);
  }
  return routing.validate(units.size());
}

// The listeners and the open connections: everything that reads from
// clients, dropped as one when the gateway stops.
class Gateway::Connections final : private kj::TaskSet::ErrorHandler {
 public:
  explicit Connections(IngestContext context) : context(context), tasks(*this) {}

  IngestContext context;
  std::unique_ptr<transport::Listener> rpcListener;
  std::unique_ptr<transport::Listener> textListener;
  kj::TaskSet tasks;  // one per open connection

 private:
  // A connection that failed: logged, the others carry on.
  void taskFailed(kj::Exception&& exception) override {
    if (exception.getType() == kj::Exception::Type::DISCONNECTED) {
      spdlog::debug("connection closed: {}", exception.getDescription().cStr());
    } else {
      spdlog::warn("connection failed: {}", exception.getDescription().cStr());
    }
  }
};

Gateway::Gateway(const GatewayOptions& options, zmq::context_t& context, kj::AsyncIoContext& io)
    : io_(io),
      routing_(options.routing),
      unitLinks_(transport::unitLinksFromFiles(context, options.curveKey, options.unitPublicKey)),
      router_(options.routing, context, io.unixEventPort, io.provider->getTimer(), options.units),
      catchUp_(std::make_unique<CatchUpCoordinator>(
          context, io.unixEventPort, io.provider->getTimer(), options.units, router_)),
      maxFutureSkewMs_(options.maxFutureSkewMs),
      auth_(options.authKeys.empty() ? std::make_unique<DeviceAuth>()
                                     : std::make_unique<DeviceAuth>(options.authKeys)),
      tls_(options.tlsCert.empty()
               ? nullptr
               : std::make_unique<transport::TlsServer>(options.tlsCert, options.tlsKey)),
      limit_(options.maxConnections > 0 ? options.maxConnections
                                        : transport::defaultMaxConnections()),
      clients_(options.clients),
      connections_(std::make_unique<Connections>(IngestContext{
          router_, ingest_.rpc, *auth_, options.maxFutureSkewMs, clients_, ingest_.refused})) {
  connections_->rpcListener =
      std::make_unique<transport::Listener>(io_, options.listen, "rpc", limit_);
  connections_->textListener =
      std::make_unique<transport::Listener>(io_, options.listenText, "text", limit_);
  if (tls_) {
    connections_->rpcListener->useTls(tls_->context());
    connections_->textListener->useTls(tls_->context());
  }
  rpcAddress_ = connections_->rpcListener->address();
  textAddress_ = connections_->textListener->address();
  if (!auth_->required()) {
    for (const auto* address : {&options.listen, &options.listenText, &options.httpListen}) {
      if (!address->empty()) {
        transport::warnIfOpen("device reports", *address,
                              "give --auth-keys to require device tokens");
      }
    }
  }
  if (!options.httpListen.empty()) {
    ingest_.expose(registry_);
    auth_->expose(registry_);
    router_.counters().expose(registry_);
    catchUp_->expose(registry_);
    limit_.expose(registry_);
    connections_->rpcListener->expose(registry_);
    connections_->textListener->expose(registry_);
    http_ = std::make_unique<transport::FrontEndHttp>(
        context, io, options.units, router_.channels(),
        std::vector<const transport::Listener*>{connections_->rpcListener.get(),
                                                connections_->textListener.get()},
        options.httpListen, registry_,
        httpIngest(IngestContext{router_, ingest_.http, *auth_, maxFutureSkewMs_, clients_,
                                 ingest_.refused}),
        [this] { return partitionsWritable(); }, tls_ ? &tls_->context() : nullptr);
  }
}

transport::Readiness Gateway::partitionsWritable() const {
  // Ready while every partition has a replica that answers its probe: a
  // report for it can be stored (with --acks all, on those that are up).
  const Placement& placement = router_.placement();
  const transport::UnitHealth& health = http_->health();
  uint32_t writable = 0;
  for (uint32_t p = 0; p < placement.partitions(); ++p) {
    for (uint32_t u : placement.replicasOf(p)) {
      if (health.up(u)) {
        ++writable;
        break;
      }
    }
  }
  transport::Readiness r{writable == placement.partitions(), {}};
  r.detail["partitions"] = {{"total", placement.partitions()},
                            {"writable", writable},
                            {"replicas", placement.replicas()},
                            {"acks", toString(routing_.acks)}};
  return r;
}

std::string Gateway::httpAddress() const {
  return http_ ? http_->address() : std::string();
}

kj::Own<transport::WatchedStream> Gateway::watch(kj::Own<kj::AsyncIoStream> stream) {
  return kj::heap<transport::WatchedStream>(kj::mv(stream), io_.provider->getTimer());
}

kj::Promise<void> Gateway::closeWhenIdle(kj::Promise<void> served,
                                         const transport::WatchedStream& stream,
                                         const char* protocol) {
  if (clients_.idleTimeoutMs == 0) return served;
  auto idle = transport::whenIdle(io_.provider->getTimer(), stream,
                                  clients_.idleTimeoutMs * kj::MILLISECONDS)
                  .then([this, protocol] {
                    ingest_.refused.idle.add(1);
                    if (const auto n = ingest_.refused.idleLog.due()) {
                      spdlog::info(
                          "closed {} idle {} connection(s) since the last such line (no byte "
                          "for --idle-timeout {} ms)",
                          *n, protocol, clients_.idleTimeoutMs);
                    }
                  });
  return served.exclusiveJoin(kj::mv(idle));
}

void IngestCounters::expose(metrics::Registry& r) const {
  for (const auto& [name, c] :
       {std::pair{"rpc", &rpc}, std::pair{"text", &text}, std::pair{"http", &http}}) {
    const char* reports = "Reports the gateway received, by protocol and outcome";
    r.counter("locus_gateway_reports_total", reports, {{"protocol", name}, {"outcome", "accepted"}},
              c->accepted);
    r.counter("locus_gateway_reports_total", reports, {{"protocol", name}, {"outcome", "rejected"}},
              c->rejected);
    r.gauge("locus_gateway_connections", "Open client connections, by protocol",
            {{"protocol", name}}, c->connections);
  }
  const char* refusedHelp = "Clients cut off by the gateway's limits, by reason";
  r.counter("locus_gateway_refused_total", refusedHelp, {{"reason", "idle"}}, refused.idle);
  r.counter("locus_gateway_refused_total", refusedHelp, {{"reason", "rate"}}, refused.rate);
}

Gateway::~Gateway() {
  connections_.reset();  // before the router they feed
}

void Gateway::run(int stopFd, int reloadFd) {
  kj::UnixEventPort::FdObserver stop(io_.unixEventPort, stopFd,
                                     kj::UnixEventPort::FdObserver::OBSERVE_READ);
  {
    auto reloading = transport::reloadOnSignal(io_.unixEventPort, reloadFd, [this] {
                       auth_->reload();
                     }).eagerlyEvaluate(nullptr);
    const auto stopped = [](kj::Exception&& e) {
      spdlog::error("stopped accepting: {}", e.getDescription().cStr());
    };
    using Slot = kj::Own<transport::ConnectionLimit::Slot>;
    auto rpcAccepting =
        connections_->rpcListener
            ->acceptEach([this](kj::Own<kj::AsyncIoStream>&& stream, Slot&& slot) {
              auto watched = watch(kj::mv(stream));
              auto& w = *watched;
              // Each connection has its own Ingest: with tokens required it
              // can only log in, and a failed login closes the connection.
              auto paf = kj::newPromiseAndFulfiller<void>();
              capnp::Capability::Client bootstrap = kj::heap<IngestImpl>(
                  connections_->context,
                  auth_->required() ? std::nullopt : std::optional(auth::DeviceScope{}),
                  kj::refcounted<RpcSession>(kj::mv(paf.fulfiller), clients_.maxReportsPerS));
              // The error reply gets a moment to leave before the close.
              auto hungUp = paf.promise.then(
                  [this] { return io_.provider->getTimer().afterDelay(100 * kj::MILLISECONDS); });
              // The flow limit bounds the bytes of calls not yet answered.
              auto connection = kj::heap<transport::RpcConnection>(
                  kj::mv(watched), kj::mv(bootstrap), clients_.maxBufferedBytes,
                  &ingest_.rpc.connections);
              auto ended =
                  closeWhenIdle(connection->onDisconnect().exclusiveJoin(kj::mv(hungUp)), w, "rpc");
              connections_->tasks.add(ended.attach(kj::mv(connection), kj::mv(slot)));
            })
            .eagerlyEvaluate(stopped);
    // A device over the limit is told why, in the protocol it speaks.
    refusal_ = fmt::format(
        "{{\"ok\":false,\"error\":\"the gateway holds {} connections, its --max-connections; "
        "try again later\"}}\n",
        limit_.max());
    auto textAccepting =
        connections_->textListener
            ->acceptEach(
                [this](kj::Own<kj::AsyncIoStream>&& stream, Slot&& slot) {
                  auto watched = watch(kj::mv(stream));
                  auto& w = *watched;
                  auto connection = kj::heap<TextConnection>(
                      kj::mv(watched), IngestContext{router_, ingest_.text, *auth_,
                                                     maxFutureSkewMs_, clients_, ingest_.refused});
                  auto served = closeWhenIdle(connection->run(), w, "text");
                  connections_->tasks.add(served.attach(kj::mv(connection), kj::mv(slot)));
                },
                [this](kj::AsyncIoStream& stream) {
                  return stream.write(refusal_.data(), refusal_.size());
                })
            .eagerlyEvaluate(stopped);
    stop.whenBecomesReadable().wait(io_.waitScope);
  }
  if (http_) http_->stopping();
  connections_->rpcListener->close();  // refuse new connections
  connections_->textListener->close();

  // Stop reading from clients: nothing further is acknowledged; what is
  // buffered goes to the units now.
  router_.close();
  auto& timer = io_.provider->getTimer();
  const kj::TimePoint giveUp =
      timer.now() + (routing_.batchTimeoutMs + kDrainSlackMs) * kj::MILLISECONDS;
  while (!router_.idle() && timer.now() < giveUp) {
    timer.afterDelay(2 * kj::MILLISECONDS).wait(io_.waitScope);
  }
  // A moment for the last replies to reach their clients, then hang up.
  timer.afterDelay(20 * kj::MILLISECONDS).wait(io_.waitScope);
  // The HTTP endpoint reads the listeners (readiness, metrics): it goes first.
  http_.reset();
  connections_.reset();
  const auto& c = router_.counters();
  if (!router_.idle()) spdlog::warn("stopped with batches still unanswered by their units");
  spdlog::info(
      "routed {} reports in {} batches; {} reports lost (not queued or refused), {} unconfirmed "
      "(no answer in time; {} of them applied late), {} refused for a stalled unit",
      c.reportsRouted.value(), c.batchesSent.value(), c.reportsLost.value(),
      c.reportsUnconfirmed.value(), c.reportsAppliedLate.value(), c.reportsRefusedStalled.value());
}

}  // namespace locus::gateway
