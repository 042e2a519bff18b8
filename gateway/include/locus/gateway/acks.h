// What one client call waits for before it is answered: a slot per report
// it sent, each settled once — stored (its unit applied and logged it) or
// failed with the reason the device is told. The router settles slots as
// the units answer; done() resolves when the last slot is settled. This is
// what makes an `ok` mean "stored", not "buffered".
//
// Thread-affinity: the router's thread. Shared (kj::Refcounted) between the
// call and the batches that carry its reports.
#pragma once

#include <kj/async.h>
#include <kj/refcount.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "locus/common/report.h"

namespace locus::gateway {

class Acks final : public kj::Refcounted {
 public:
  explicit Acks(size_t slots) : slots_(slots), pending_(slots), settled_(slots, false) {}

  // One more slot (before done() is called): its number.
  uint32_t add() {
    ++pending_;
    settled_.push_back(false);
    return static_cast<uint32_t>(slots_++);
  }
  void stored(uint32_t slot);
  // `retry`: the report was valid but not stored; sending it again may
  // succeed (Rejection.retry).
  void failed(uint32_t slot, std::string reason, bool retry = false);

  // Resolves once every slot is settled (at once when they already are).
  // Call at most once.
  kj::Promise<void> done();

  size_t slots() const { return slots_; }
  size_t pending() const { return pending_; }
  // Every slot's fate as a batch outcome: accepted = stored, rejected =
  // the failures by slot, in slot order. Precondition: nothing pending.
  BatchOutcome outcome();

 private:
  void settleOne(uint32_t slot);

  size_t slots_;
  size_t pending_;
  uint32_t stored_ = 0;
  std::vector<bool> settled_;                               // by slot
  std::vector<std::pair<uint32_t, std::string>> failures_;  // in settling order
  std::vector<uint32_t> retryable_;                         // in settling order
  kj::Maybe<kj::Own<kj::PromiseFulfiller<void>>> waiter_;
};

}  // namespace locus::gateway
