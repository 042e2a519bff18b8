#include "locus/client/ingest_client.h"

#include <kj/debug.h>
#include <kj/time.h>

#include <algorithm>

#include "locus/common/clock.h"
#include "locus/common/wire.h"

namespace locus::client {
namespace {

constexpr auto kFirstBackoff = 100 * kj::MILLISECONDS;
constexpr auto kMaxBackoff = 1 * kj::SECONDS;

}  // namespace

IngestClient::IngestClient(const std::string& address, Options options)
    : options_(options), address_(address) {
  KJ_REQUIRE(options_.callsInFlight >= 1, options_.callsInFlight);
  connect();
}

IngestClient::~IngestClient() {
  inFlight_.clear();  // their promises belong to the connection
}

void IngestClient::connect() {
  // The new client first: it shares the thread's event loop with the old
  // one, which thus survives the swap (and so do the timer and wait scope
  // callers hold).
  auto fresh = std::make_unique<RpcClient>(address_, options_.tls);
  auto main = fresh->getMain<wire::Ingest>();
  if (options_.token.empty()) {
    ingest_.emplace(kj::mv(main));
  } else {
    auto login = main.loginRequest();
    login.setToken(options_.token);
    ingest_.emplace(login.send().getIngest());
  }
  for (Call& call : inFlight_) call.reply.reset();
  rpc_ = std::move(fresh);
}

void IngestClient::start(Call& call) {
  auto request = ingest_->reportRequest();
  request.setBatch(call.batch->getRoot<wire::ReportBatch>().asReader());
  call.reply.emplace(request.send());
}

void IngestClient::send(size_t count, const WriteReport& write, Settled settled) {
  Call call;
  call.batch = std::make_unique<capnp::MallocMessageBuilder>();
  auto out = call.batch->initRoot<wire::ReportBatch>().initReports(static_cast<unsigned>(count));
  call.original.resize(count);
  const int64_t nowMs = wallClockMs();
  for (size_t i = 0; i < count; ++i) {
    auto report = out[static_cast<unsigned>(i)];
    write(i, report);
    // Stamped here, once: were the gateway to stamp a resend with its
    // later receive time, it could bury a newer position of the device.
    if (report.getTsMs() == 0) report.setTsMs(nowMs);
    call.original[i] = static_cast<uint32_t>(i);
  }
  call.settled = std::move(settled);
  start(call);
  inFlight_.push_back(std::move(call));
  while (inFlight_.size() >= options_.callsInFlight) settleOldest();
}

void IngestClient::flush() {
  while (!inFlight_.empty()) settleOldest();
}

void IngestClient::settleOldest() {
  for (;;) {
    Call& call = inFlight_.front();
    KJ_REQUIRE(call.reply.has_value(), "a call in flight without a request");
    kj::Promise<Reply> pending = kj::mv(*call.reply);
    call.reply.reset();  // whatever happens next, it is not waited on twice
    std::optional<Reply> reply;
    try {
      reply.emplace(rpc_->timeoutAfter(options_.callTimeout, kj::mv(pending),
                                       "no answer from the gateway within the call timeout")
                        .wait(waitScope()));
    } catch (const kj::Exception& e) {
      recover(e);  // only the call itself: a malformed answer or the callback is no reason
      continue;
    }
    failingSince_.reset();
    backoff_ = kFirstBackoff;
    answeredOnce_ = true;
    if (!handle(call, *reply)) continue;  // some of it goes again
    Call done = std::move(inFlight_.front());
    inFlight_.pop_front();
    std::sort(done.outcome.rejected.begin(), done.outcome.rejected.end());
    std::sort(done.outcome.retryable.begin(), done.outcome.retryable.end());
    if (done.settled) done.settled(done.outcome);
    return;
  }
}

bool IngestClient::handle(Call& call, const Reply& reply) {
  const BatchOutcome got = readBatchOutcome(reply.getResult());
  for (const auto& rejection : got.rejected)
    KJ_REQUIRE(rejection.first < call.original.size(), "a rejection out of the batch",
               rejection.first, call.original.size());
  call.outcome.accepted += got.accepted;
  call.outcome.stale += got.stale;
  std::vector<uint32_t> again;  // positions in call.batch
  for (const auto& [index, reason] : got.rejected) {
    const bool retry = std::binary_search(got.retryable.begin(), got.retryable.end(), index);
    if (retry && call.attempt < options_.retries) {
      again.push_back(index);
      continue;
    }
    call.outcome.rejected.emplace_back(call.original[index], reason);
    if (retry) call.outcome.retryable.push_back(call.original[index]);
  }
  if (again.empty()) return true;

  // The reports worth another try, in a batch of their own, after a pause.
  auto batch = std::make_unique<capnp::MallocMessageBuilder>();
  auto from = call.batch->getRoot<wire::ReportBatch>().getReports();
  auto to = batch->initRoot<wire::ReportBatch>().initReports(static_cast<unsigned>(again.size()));
  std::vector<uint32_t> original(again.size());
  for (size_t j = 0; j < again.size(); ++j) {
    to.setWithCaveats(static_cast<unsigned>(j), from[again[j]]);
    original[j] = call.original[again[j]];
  }
  call.batch = std::move(batch);
  call.original = std::move(original);
  ++call.attempt;
  resent_ += again.size();
  rpc_->afterDelay(options_.retryDelay * call.attempt).wait(waitScope());
  start(call);
  return false;
}

void IngestClient::recover(const kj::Exception& failure) {
  // A refused token stays refused: no reconnecting.
  // (Remote exceptions arrive as "remote exception: <description>".)
  if (std::string_view(failure.getDescription().cStr()).find("unauthenticated:") !=
      std::string_view::npos) {
    kj::throwFatalException(kj::cp(failure));
  }
  const auto now = [] { return kj::systemPreciseMonotonicClock().now(); };
  if (!failingSince_) failingSince_ = now();
  for (;;) {
    const kj::Duration patience = answeredOnce_ ? options_.reconnectFor : options_.connectFor;
    if (now() - *failingSince_ >= patience) kj::throwFatalException(kj::cp(failure));
    // The backoff grows across failures, until a call is answered: the
    // new connection is lazy, so its failure shows only on the next wait.
    rpc_->afterDelay(backoff_).wait(waitScope());
    backoff_ = std::min(backoff_ * 2, kMaxBackoff);
    try {
      connect();
      ++reconnects_;
      for (Call& call : inFlight_) {
        start(call);
        resent_ += call.original.size();
      }
      return;  // settleOldest() waits for the oldest again
    } catch (const kj::Exception&) {
      // Could not even start: try again after the backoff.
    }
  }
}

}  // namespace locus::client
