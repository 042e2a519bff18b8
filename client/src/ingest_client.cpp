#include "locus/client/ingest_client.h"

#include "locus/common/wire.h"

namespace locus::client {

IngestClient::IngestClient(const std::string& address, Options options)
    : options_(options), rpc_(address), ingest_(rpc_.getMain<wire::Ingest>()) {
  KJ_REQUIRE(options_.callsInFlight >= 1, options_.callsInFlight);
}

IngestClient::~IngestClient() = default;

void IngestClient::send(size_t count, const WriteReport& write, Settled settled) {
  auto request = ingest_.reportRequest();
  auto out = request.initBatch().initReports(static_cast<unsigned>(count));
  for (size_t i = 0; i < count; ++i) write(i, out[static_cast<unsigned>(i)]);
  inFlight_.push_back(Call{request.send(), std::move(settled)});
  while (inFlight_.size() >= options_.callsInFlight) settleOldest();
}

void IngestClient::flush() {
  while (!inFlight_.empty()) settleOldest();
}

void IngestClient::settleOldest() {
  Call call = kj::mv(inFlight_.front());
  inFlight_.pop_front();
  auto response = timer().timeoutAfter(options_.callTimeout, kj::mv(call.reply)).wait(waitScope());
  const BatchOutcome outcome = readBatchOutcome(response.getResult());
  if (call.settled) call.settled(outcome);
}

}  // namespace locus::client
