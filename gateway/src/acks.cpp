#include "locus/gateway/acks.h"

#include <kj/debug.h>

#include <algorithm>

namespace locus::gateway {

Acks::Tally& Acks::tallyOf(uint32_t slot) {
  KJ_REQUIRE(slot < slots_, "no such slot", slot, slots_);
  Tally& t = tally_[slot];
  KJ_REQUIRE(t.stored + t.failed < t.copies, "more fates than copies", slot, t.copies);
  return t;
}

void Acks::expect(uint32_t slot, uint32_t copies, uint32_t needed) {
  KJ_REQUIRE(slot < slots_ && needed >= 1 && needed <= copies && copies <= 255, slot, copies,
             needed);
  Tally& t = tally_[slot];
  KJ_REQUIRE(t.stored == 0 && t.failed == 0, "expect() after a copy's fate", slot);
  t.copies = static_cast<uint8_t>(copies);
  t.needed = static_cast<uint8_t>(needed);
}

void Acks::stored(uint32_t slot) {
  Tally& t = tallyOf(slot);
  const bool was = t.settled();
  ++t.stored;
  if (was || !t.settled()) return;
  ++stored_;
  settleOne();
}

void Acks::failed(uint32_t slot, std::string reason, bool retry) {
  Tally& t = tallyOf(slot);
  const bool was = t.settled();
  ++t.failed;
  if (was || !t.settled()) return;
  failures_.emplace_back(slot, std::move(reason));
  if (retry) retryable_.push_back(slot);
  settleOne();
}

void Acks::settleOne() {
  if (--pending_ > 0) return;
  KJ_IF_MAYBE (waiter, waiter_) {
    (*waiter)->fulfill();
    waiter_ = nullptr;
  }
}

kj::Promise<void> Acks::done() {
  if (pending_ == 0) return kj::READY_NOW;
  KJ_REQUIRE(waiter_ == nullptr, "done() called twice");
  auto paf = kj::newPromiseAndFulfiller<void>();
  waiter_ = kj::mv(paf.fulfiller);
  return kj::mv(paf.promise);
}

BatchOutcome Acks::outcome() {
  KJ_REQUIRE(pending_ == 0, "outcome() before every slot settled", pending_);
  std::sort(failures_.begin(), failures_.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  BatchOutcome out;
  out.accepted = stored_;
  out.rejected = failures_;
  out.retryable = retryable_;
  std::sort(out.retryable.begin(), out.retryable.end());
  return out;
}

}  // namespace locus::gateway
