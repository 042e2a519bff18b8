#include "locus/client/ingest_client.h"

#include <kj/debug.h>

#include <algorithm>

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
  auto fresh = std::make_unique<capnp::EzRpcClient>(address_);
  ingest_.emplace(fresh->getMain<wire::Ingest>());
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
  for (size_t i = 0; i < count; ++i) {
    write(i, out[static_cast<unsigned>(i)]);
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
    try {
      KJ_REQUIRE(call.reply.has_value(), "a call in flight without a request");
      auto reply =
          timer().timeoutAfter(options_.callTimeout, kj::mv(*call.reply)).wait(waitScope());
      call.reply.reset();
      failingSince_.reset();
      answeredOnce_ = true;
      if (handle(call, reply)) {
        Call done = std::move(inFlight_.front());
        inFlight_.pop_front();
        std::sort(done.outcome.rejected.begin(), done.outcome.rejected.end());
        std::sort(done.outcome.retryable.begin(), done.outcome.retryable.end());
        if (done.settled) done.settled(done.outcome);
        return;
      }
    } catch (const kj::Exception& e) {
      recover(e);
    }
  }
}

bool IngestClient::handle(Call& call, const Reply& reply) {
  const BatchOutcome got = readBatchOutcome(reply.getResult());
  call.outcome.accepted += got.accepted;
  call.outcome.stale += got.stale;
  std::vector<uint32_t> again;  // positions in call.batch
  for (const auto& [index, reason] : got.rejected) {
    KJ_REQUIRE(index < call.original.size(), "a rejection out of the batch", index);
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
  timer().afterDelay(options_.retryDelay * call.attempt).wait(waitScope());
  start(call);
  return false;
}

void IngestClient::recover(const kj::Exception& failure) {
  const kj::TimePoint now = timer().now();
  if (!failingSince_) failingSince_ = now;
  auto backoff = kFirstBackoff;
  for (;;) {
    const kj::Duration patience = answeredOnce_ ? options_.reconnectFor : options_.connectFor;
    if (timer().now() - *failingSince_ >= patience) kj::throwFatalException(kj::cp(failure));
    timer().afterDelay(backoff).wait(waitScope());
    backoff = std::min(backoff * 2, kMaxBackoff);
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
