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
#include "locus/transport/net.h"
#include "locus/transport/reload.h"
#include "locus/transport/rpc_listener.h"
#include "locus/transport/unit_health.h"
#include "text_connection.h"

namespace locus::gateway {
namespace {

// After a stop request, buffered reports get the batch timeout plus this.
constexpr int64_t kDrainSlackMs = 1000;
// Bytes of calls a client may have in flight on one RPC connection before
// the gateway stops reading from it (Cap'n Proto's flow limit).
constexpr size_t kRpcFlowLimitBytes = 8 << 20;

}  // namespace

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
  if (maxFutureSkewMs < 0) {
    return fmt::format("--max-future-skew {} ms must be >= 0", maxFutureSkewMs);
  }
  return routing.validate(units.size());
}

// The listeners and the open connections: everything that reads from
// clients, dropped as one when the gateway stops.
class Gateway::Connections final : private kj::TaskSet::ErrorHandler {
 public:
  explicit Connections(IngestContext context)
      : context(context),
        shared(kj::heap<IngestImpl>(context, auth::DeviceScope{}, kj::Own<HangUp>())),
        tasks(*this) {}

  IngestContext context;
  capnp::Capability::Client shared;  // every connection's, when tokens are not required
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
      connections_(std::make_unique<Connections>(
          IngestContext{router_, ingest_.rpc, *auth_, options.maxFutureSkewMs})) {
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
        httpIngest(IngestContext{router_, ingest_.http, *auth_, maxFutureSkewMs_}),
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
              // With tokens required, each connection starts with its own
              // Ingest that can only log in, and that closes it when a login fails.
              capnp::Capability::Client bootstrap = connections_->shared;
              kj::Promise<void> hungUp = kj::NEVER_DONE;
              if (auth_->required()) {
                auto paf = kj::newPromiseAndFulfiller<void>();
                bootstrap = kj::heap<IngestImpl>(connections_->context, std::nullopt,
                                                 kj::refcounted<HangUp>(kj::mv(paf.fulfiller)));
                // The error reply gets a moment to leave before the close.
                hungUp = paf.promise.then(
                    [this] { return io_.provider->getTimer().afterDelay(100 * kj::MILLISECONDS); });
              }
              auto connection = kj::heap<transport::RpcConnection>(
                  kj::mv(stream), kj::mv(bootstrap), kRpcFlowLimitBytes, &ingest_.rpc.connections);
              auto ended = connection->onDisconnect().exclusiveJoin(kj::mv(hungUp));
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
                  auto connection = kj::heap<TextConnection>(
                      kj::mv(stream),
                      IngestContext{router_, ingest_.text, *auth_, maxFutureSkewMs_});
                  auto served = connection->run();
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
