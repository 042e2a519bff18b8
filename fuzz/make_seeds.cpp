// Writes one valid frame of each kind a unit takes (UnitRequest) and sends
// (UnitReply) into fuzz/corpus/unit_request and fuzz/corpus/unit_reply, so
// that the fuzzers start from real Cap'n Proto structure rather than
// having to discover segment tables. scripts/fuzz.sh runs it first.
#include <capnp/message.h>
#include <capnp/serialize.h>

#include <fstream>
#include <functional>
#include <string>

#include "locus/common/wire.h"

namespace {

void write(const std::string& dir, const std::string& name,
           const std::function<void(capnp::MessageBuilder&)>& build) {
  capnp::MallocMessageBuilder message;
  build(message);
  const auto words = capnp::messageToFlatArray(message);
  std::ofstream out(dir + "/seed-" + name, std::ios::binary);
  out.write(reinterpret_cast<const char*>(words.asBytes().begin()),
            static_cast<std::streamsize>(words.asBytes().size()));
}

void only(locus::wire::PartitionSet::Builder set) {
  set.setPartitions(8);
  auto serve = set.initServe(3);
  serve.set(0, 1), serve.set(1, 2), serve.set(2, 7);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace locus;
  const std::string requests = argc > 1 ? argv[1] : "fuzz/corpus/unit_request";
  const std::string replies = argc > 2 ? argv[2] : "fuzz/corpus/unit_reply";
  const Report reports[] = {
      {"truck-7", 31.2, 121.5, 1'763'000'000'000}, {"phone-x", -33.9, 151.2, 0}, {"bad", 91, 0, 5}};
  write(requests, "apply", [&](capnp::MessageBuilder& m) {
    auto list = m.initRoot<wire::UnitRequest>().initApply().initReports(3);
    for (unsigned i = 0; i < 3; ++i) writeReport(reports[i], list[i]);
  });
  write(requests, "queries", [&](capnp::MessageBuilder& m) {
    auto request = m.initRoot<wire::UnitRequest>();
    auto q = request.initQueries(5);
    writeNearestQuery(NearestQuery{{31.2, 121.5}, 10}, q[0].initNearest());
    writeAreaQuery(AreaQuery{.area = geo::Box{31, 121, 32, 122}, .limit = 5}, q[1].initWithin());
    writeAreaQuery(
        AreaQuery{.area = geo::Polygon({{{0, 0}, {0, 1}, {1, 1}, {0, 0}}}), .countOnly = true},
        q[2].initWithin());
    q[3].setGet("truck-7");
    q[4].setStats();
    only(request.initOnly());
  });
  write(requests, "dump", [&](capnp::MessageBuilder& m) {
    auto dump = m.initRoot<wire::UnitRequest>().initDump();
    dump.setCursor(2);
    dump.setLimit(100);
    only(dump.initOnly());
  });
  write(requests, "catch-up", [&](capnp::MessageBuilder& m) {
    auto order = m.initRoot<wire::UnitRequest>().initCatchUp();
    order.setPartitions(8);
    auto copy = order.initCopies(1)[0];
    copy.setSource("inproc://nowhere");
    copy.initServe(2).set(1, 3);
    order.initWait(1).set(0, 4);
    order.initHolds(2).set(1, 4);
  });
  write(replies, "applied", [&](capnp::MessageBuilder& m) {
    auto r = m.initRoot<wire::UnitReply>().initApplied();
    r.setAccepted(2);
    auto rejected = r.initRejected(1);
    rejected[0].setIndex(2);
    rejected[0].setReason("lat out of range");
  });
  write(replies, "answers", [&](capnp::MessageBuilder& m) {
    auto reply = m.initRoot<wire::UnitReply>();
    auto answers = reply.initAnswers(3);
    QueryResult result;
    result.hits.push_back(Hit{.id = "truck-7", .lat = 31.2, .lon = 121.5, .tsMs = 1});
    result.count = 1;
    writeQueryResult(result, answers[0].initResult());
    UnitStats stats;
    stats.name = "unit-0";
    stats.notServing = {1, 2};
    writeUnitStats(stats, answers[1].initStats());
    writeError(Error{ErrorCode::kNotFound, "no device"}, answers[2].initError());
    reply.initNotServing(1).set(0, 5);
  });
  write(replies, "page", [&](capnp::MessageBuilder& m) {
    auto page = m.initRoot<wire::UnitReply>().initPage();
    auto list = page.initReports(2);
    for (unsigned i = 0; i < 2; ++i) writeReport(reports[i], list[i]);
    page.setCursor(3);
    page.setEpoch(9);
  });
  return 0;
}
