// A unit's request handler on any bytes, as its ROUTER socket would hand
// them over: the reply is always a readable UnitReply within the frame
// limit, whatever the request (batches, queries, dumps, catch-up orders).
#include <capnp/message.h>
#include <spdlog/spdlog.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>

#include "locus/common/wire.h"
#include "locus/unit/unit_server.h"

namespace {

constexpr int64_t kNowMs = 1'763'000'000'000;

std::unique_ptr<locus::unit::UnitService> fresh() {
  // Partitions of a replicated cluster, so that scopes and orders are
  // exercised; a TTL, so that expiry is.
  return std::make_unique<locus::unit::UnitService>(
      "fuzz", locus::unit::IndexOptions{.ttlMs = 3'600'000}, locus::kDefaultMaxFutureSkewMs,
      std::nullopt, 8, 2);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static std::unique_ptr<locus::unit::UnitService> service = fresh();
  static uint64_t runs = 0;
  if (++runs % 10'000 == 0) service = fresh();  // bounded state across runs
  zmq::message_t reply = service->handle(data, size, kNowMs);
  (void)service->takeCatchUpOrder();
  service->tick(kNowMs);
  if (reply.size() > static_cast<size_t>(locus::kMaxMessageBytes)) std::abort();
  locus::FlatMessage message(reply.data(), reply.size());
  if (message.error()) std::abort();
  auto root = message.root<locus::wire::UnitReply>();
  (void)root.which();
  return 0;
}
