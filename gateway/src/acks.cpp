#include "locus/gateway/acks.h"

#include <kj/debug.h>

#include <algorithm>

namespace locus::gateway {

void Acks::stored(uint32_t slot) {
  settleOne(slot);
  ++stored_;
}

void Acks::failed(uint32_t slot, std::string reason, bool retry) {
  settleOne(slot);
  failures_.emplace_back(slot, std::move(reason));
  if (retry) retryable_.push_back(slot);
}

void Acks::settleOne(uint32_t slot) {
  KJ_REQUIRE(slot < slots_ && !settled_[slot], "a slot settled twice or out of range", slot,
             slots_);
  settled_[slot] = true;
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
