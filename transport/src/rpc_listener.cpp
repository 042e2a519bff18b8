#include "locus/transport/rpc_listener.h"

#include <fmt/format.h>
#include <kj/debug.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <algorithm>
#include <utility>

#include "locus/common/wire.h"
#include "locus/transport/net.h"

namespace locus::transport {
namespace {

constexpr kj::Duration kFirstBackoff = 10 * kj::MILLISECONDS;
constexpr kj::Duration kMaxBackoff = 1 * kj::SECONDS;
// While accept() keeps failing, a line at most this often.
constexpr kj::Duration kFailureLogInterval = 10 * kj::SECONDS;
// A connection over the limit is told why within this, or just closed.
constexpr kj::Duration kRefusalTimeout = 1 * kj::SECONDS;

}  // namespace

size_t defaultMaxConnections() {
  struct rlimit limit {};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return 100'000;
  const auto fds = static_cast<size_t>(limit.rlim_cur);
  return fds > 2 * kReservedFds ? fds - kReservedFds : std::max<size_t>(fds / 2, 1);
}

std::optional<std::string> checkMaxConnections(size_t maxConnections) {
  constexpr size_t kMost = 10'000'000;
  if (maxConnections <= kMost) return std::nullopt;
  // A negative value arrives wrapped around: name the range, not the number.
  return fmt::format("--max-connections must be in 0..{} (0 = the descriptor limit less {})", kMost,
                     kReservedFds);
}

ConnectionLimit::ConnectionLimit(size_t max) : max_(max) {
  KJ_REQUIRE(max >= 1, "a connection limit needs room for one", max);
  maxGauge_.set(static_cast<double>(max));
}

kj::Maybe<kj::Own<ConnectionLimit::Slot>> ConnectionLimit::acquire() {
  if (open() >= max_) return nullptr;
  return kj::heap<Slot>(*this);
}

void ConnectionLimit::expose(metrics::Registry& r) const {
  r.gauge("locus_connections_open", "Client connections open, over every listener", {}, open_);
  r.gauge("locus_connections_max", "Client connections allowed at once (--max-connections)", {},
          maxGauge_);
}

// Connections over the limit, each given a moment to read why before it
// is closed; and TLS handshakes under way.
class Listener::Refusals final : private kj::TaskSet::ErrorHandler {
 public:
  Refusals() : tasks_(*this) {}
  void add(kj::Promise<void> promise) { tasks_.add(kj::mv(promise)); }

 private:
  void taskFailed(kj::Exception&&) override {}  // the peer went away first: fine
  kj::TaskSet tasks_;
};

Listener::Listener(kj::AsyncIoContext& io, const std::string& address, std::string name,
                   ConnectionLimit& limit)
    : timer_(io.provider->getTimer()),
      name_(std::move(name)),
      limit_(limit),
      refusals_(kj::heap<Refusals>()) {
  auto parsed = io.provider->getNetwork().parseAddress(address).wait(io.waitScope);
  receiver_ = parsed->listen();
  address_ = fmt::format("{}:{}", splitHostPort(address)->first, receiver_->getPort());
}

Listener::~Listener() = default;

kj::Promise<void> Listener::acceptEach(Serve serve, Refuse refuse) {
  serve_ = std::move(serve);
  refuse_ = std::move(refuse);
  return acceptLoop(kFirstBackoff);
}

kj::Promise<void> Listener::acceptLoop(kj::Duration backoff) {
  // evalNow: KJ's accept() throws (rather than rejects) on EMFILE.
  return kj::evalNow([this]() { return receiver_->accept(); })
      .then(
          [this](kj::Own<kj::AsyncIoStream>&& stream) -> kj::Promise<void> {
            if (!health_.accepting.exchange(true)) {
              spdlog::info("{} listener on {} accepts again ({} failed accepts in all)", name_,
                           address_, health_.acceptErrors.value());
              lastFailureLog_ = nullptr;
            }
            KJ_IF_MAYBE (slot, limit_.acquire()) {
              KJ_IF_MAYBE (tls, tls_) {
                // The handshake on its own: a client that never finishes
                // one holds its slot until the timeout, not the loop.
                auto handshake =
                    timer_.timeoutAfter(kTlsHandshakeTimeout, tls->wrapServer(kj::mv(stream)));
                refusals_->add(handshake.then(
                    [this, slot = kj::mv(*slot)](kj::Own<kj::AsyncIoStream>&& secure) mutable {
                      serve_(kj::mv(secure), kj::mv(slot));
                    },
                    [this](kj::Exception&& e) {
                      ++health_.tlsFailures;
                      spdlog::debug("{} listener: TLS handshake failed: {}", name_,
                                    e.getDescription().cStr());
                    }));
              } else {
                serve_(kj::mv(stream), kj::mv(*slot));
              }
            } else {
              ++health_.refused;
              if (refuse_) {
                auto told = refuse_(*stream);
                refusals_->add(
                    timer_.timeoutAfter(kRefusalTimeout, kj::mv(told)).attach(kj::mv(stream)));
              }
            }
            return acceptLoop(kFirstBackoff);
          },
          [this, backoff](kj::Exception&& e) -> kj::Promise<void> {
            failed(kj::mv(e));
            return timer_.afterDelay(backoff).then(
                [this, backoff]() { return acceptLoop(std::min(backoff * 2, kMaxBackoff)); });
          });
}

void Listener::failed(kj::Exception&& e) {
  ++health_.acceptErrors;
  health_.accepting = false;
  ++failuresSinceLog_;
  const kj::TimePoint now = timer_.now();
  bool due = true;
  KJ_IF_MAYBE (last, lastFailureLog_) {
    due = now - *last >= kFailureLogInterval;
  }
  if (due) {
    spdlog::error(
        "{} listener on {} cannot accept ({} time(s) since the last line): {}; "
        "retrying, {} of {} connections open",
        name_, address_, failuresSinceLog_, e.getDescription().cStr(), limit_.open(), limit_.max());
    lastFailureLog_ = now;
    failuresSinceLog_ = 0;
  }
}

void Listener::expose(metrics::Registry& r) const {
  const metrics::Labels labels{{"listener", name_}};
  r.gauge("locus_listener_accepting", "1 while the listener accepts connections, 0 while it fails",
          labels, [this] { return health_.accepting.load() ? 1.0 : 0.0; });
  r.counter("locus_listener_accept_errors_total", "accept() calls that failed, e.g. out of fds",
            labels, health_.acceptErrors);
  r.counter("locus_listener_tls_handshake_failures_total",
            "TLS handshakes that failed or did not finish in time", labels, health_.tlsFailures);
  r.counter("locus_listener_refused_total",
            "Connections closed at once because --max-connections were open", labels,
            health_.refused);
}

RpcConnection::RpcConnection(kj::Own<kj::AsyncIoStream> stream, capnp::Capability::Client bootstrap,
                             size_t flowLimitBytes, metrics::Gauge* open)
    : open_(open),
      stream_(kj::mv(stream)),
      network_(*stream_, capnp::rpc::twoparty::Side::SERVER, untrustedRpcReaderOptions()),
      rpc_(capnp::makeRpcServer(network_, kj::mv(bootstrap))) {
  rpc_.setFlowLimit(flowLimitBytes);
  if (open_) open_->add(1);
}

RpcConnection::~RpcConnection() {
  if (open_) open_->add(-1);
}

}  // namespace locus::transport
