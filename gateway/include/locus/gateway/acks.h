// What one client call waits for before it is answered: a slot per report
// it sent, each settled once — stored (enough of its replicas applied and
// logged it: the --acks policy) or failed with the reason the device is
// told. The router tells each slot how many copies it sent and how many
// must be stored (expect()), and reports each copy's fate; the slot settles
// stored at the last copy needed, failed as soon as too few can still
// succeed. done() resolves when the last slot is settled. This is what
// makes an `ok` mean "stored", not "buffered".
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
  explicit Acks(size_t slots) : slots_(slots), pending_(slots), tally_(slots) {}

  // One more slot (before done() is called): its number.
  uint32_t add() {
    ++pending_;
    tally_.emplace_back();
    return static_cast<uint32_t>(slots_++);
  }
  // The report of `slot` went out as `copies` copies, of which `needed`
  // must be stored (1 <= needed <= copies <= 255). Unless told, a slot is
  // one copy, needed. Call before any copy's fate.
  void expect(uint32_t slot, uint32_t copies, uint32_t needed);
  // One copy of `slot` was stored.
  void stored(uint32_t slot);
  // One copy of `slot` was not: the slot fails with `reason` once too few
  // copies are left to reach what it needs. `retry`: the report was valid
  // but not stored; sending it again may succeed (Rejection.retry).
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
  // Per slot: copies sent, needed, stored and failed so far.
  struct Tally {
    uint8_t copies = 1, needed = 1, stored = 0, failed = 0;
    bool settled() const { return stored >= needed || copies - failed < needed; }
  };
  Tally& tallyOf(uint32_t slot);
  void settleOne();

  size_t slots_;
  size_t pending_;
  uint32_t stored_ = 0;
  std::vector<Tally> tally_;                                // by slot
  std::vector<std::pair<uint32_t, std::string>> failures_;  // in settling order
  std::vector<uint32_t> retryable_;                         // in settling order
  kj::Maybe<kj::Own<kj::PromiseFulfiller<void>>> waiter_;
};

}  // namespace locus::gateway
