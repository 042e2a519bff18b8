// Acks: a slot settles stored once the copies its policy needs are stored,
// failed as soon as too few can still be, and each only once.
#include "locus/gateway/acks.h"

#include <catch2/catch.hpp>

namespace locus::gateway {
namespace {

TEST_CASE("Acks: a slot needs the copies its policy asks for", "[gateway][acks]") {
  auto acks = kj::refcounted<Acks>(4);
  acks->expect(0, 2, 2);  // --acks all, both replicas up
  acks->expect(1, 2, 1);  // --acks 1
  acks->expect(2, 2, 2);
  // slot 3: one copy (one replica), needed

  acks->stored(0);
  CHECK(acks->pending() == 4);  // one of two
  acks->stored(0);
  CHECK(acks->pending() == 3);

  acks->failed(1, "replica a refused", true);
  CHECK(acks->pending() == 3);  // the other may still store it
  acks->stored(1);
  CHECK(acks->pending() == 2);

  acks->stored(2);
  acks->failed(2, "replica b did not answer", true);  // all: one short is a failure
  CHECK(acks->pending() == 1);

  acks->failed(3, "invalid", false);
  CHECK(acks->pending() == 0);
  auto done = acks->done();
  const BatchOutcome outcome = acks->outcome();
  CHECK(outcome.accepted == 2);
  REQUIRE(outcome.rejected.size() == 2);
  CHECK(outcome.rejected[0].first == 2);
  CHECK(outcome.rejected[0].second == "replica b did not answer");
  CHECK(outcome.rejected[1].first == 3);
  CHECK(outcome.retryable == std::vector<uint32_t>{2});
}

TEST_CASE("Acks: a copy's fate after its slot settled changes nothing", "[gateway][acks]") {
  auto acks = kj::refcounted<Acks>(1);
  acks->expect(0, 2, 1);
  acks->stored(0);
  CHECK(acks->pending() == 0);
  acks->failed(0, "late failure of the other copy");  // counted, not told
  const BatchOutcome outcome = acks->outcome();
  CHECK(outcome.accepted == 1);
  CHECK(outcome.rejected.empty());
  // More fates than copies is a bug, refused loudly.
  CHECK_THROWS(acks->stored(0));
}

}  // namespace
}  // namespace locus::gateway
