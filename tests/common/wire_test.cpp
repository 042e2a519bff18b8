// Tests for locus/common/wire.h (Cap'n Proto frames and conversions) and
// flags.h (LOCUS_* environment variables).
#include "locus/common/wire.h"

#include <capnp/any.h>
#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/exception.h>
#include <stdlib.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "locus/common/flags.h"
#include "locus/transport/frame.h"

namespace {

using locus::AreaQuery;
using locus::Circle;
using locus::ErrorCode;
using locus::FlatMessage;
using locus::Hit;
using locus::NearestQuery;
using locus::QueryResult;
using locus::Report;
using locus::geo::Box;
using locus::geo::LatLon;
using locus::geo::Polygon;

// Bytes of a serialized message, as a ZeroMQ frame carries them.
std::vector<unsigned char> bytesOf(const zmq::message_t& frame) {
  const auto* p = static_cast<const unsigned char*>(frame.data());
  return {p, p + frame.size()};
}

// Copies `bytes` to an address that is NOT word-aligned and keeps them there.
class Misaligned {
 public:
  explicit Misaligned(const std::vector<unsigned char>& bytes) : storage_(bytes.size() + 16) {
    size_t offset = 0;
    while (reinterpret_cast<uintptr_t>(storage_.data() + offset) % 8 != 3) ++offset;
    data_ = storage_.data() + offset;
    if (!bytes.empty()) std::memcpy(data_, bytes.data(), bytes.size());
  }
  const unsigned char* data() const { return data_; }

 private:
  std::vector<unsigned char> storage_;
  unsigned char* data_ = nullptr;
};

Polygon::Ring ring(std::initializer_list<std::pair<double, double>> lonLat) {
  Polygon::Ring r;
  for (const auto& [lon, lat] : lonLat) r.push_back(LatLon{lat, lon});
  return r;
}

locus::Result<AreaQuery> roundTripArea(const AreaQuery& q) {
  capnp::MallocMessageBuilder message;
  locus::writeAreaQuery(q, message.initRoot<locus::wire::AreaQuery>());
  zmq::message_t frame = locus::transport::toFrame(message);
  FlatMessage flat(frame.data(), frame.size());
  REQUIRE_FALSE(flat.error().has_value());
  return locus::readAreaQuery(flat.root<locus::wire::AreaQuery>());
}

bool pointsInside(const void* p, const void* begin, size_t size) {
  const auto* c = static_cast<const unsigned char*>(p);
  const auto* b = static_cast<const unsigned char*>(begin);
  return c >= b && c < b + size;
}

}  // namespace

using locus::Result;

// ----------------------------------------------------------------- frames

TEST_CASE("locus::transport::toFrame serializes whole words that FlatMessage reads in place",
          "[wire]") {
  capnp::MallocMessageBuilder message;
  Report in;
  in.id = "truck-7";
  in.lat = 31.23;
  in.lon = 121.47;
  locus::writeReport(in, message.initRoot<locus::wire::Report>());
  zmq::message_t frame = locus::transport::toFrame(message);
  CHECK(frame.size() % 8 == 0);
  CHECK(frame.size() == capnp::computeSerializedSizeInWords(message) * 8);

  FlatMessage flat(frame.data(), frame.size());
  REQUIRE_FALSE(flat.error().has_value());
  const Report out = locus::readReport(flat.root<locus::wire::Report>());
  CHECK(out.id == "truck-7");
  // Zero-copy: the id is a view into the frame's own bytes.
  CHECK(pointsInside(out.id.data(), frame.data(), frame.size()));
}

TEST_CASE("FlatMessage reads a message at a misaligned address (copying it)", "[wire]") {
  capnp::MallocMessageBuilder message;
  Report in;
  in.id = "misaligned-device";
  in.lat = -33.8688;
  in.lon = 151.2093;
  in.tsMs = 1763000000001;
  in.speedMps = 3.5f;
  locus::writeReport(in, message.initRoot<locus::wire::Report>());
  const std::vector<unsigned char> bytes = bytesOf(locus::transport::toFrame(message));

  Misaligned buffer(bytes);
  REQUIRE(reinterpret_cast<uintptr_t>(buffer.data()) % 8 != 0);
  FlatMessage flat(buffer.data(), bytes.size());
  REQUIRE_FALSE(flat.error().has_value());
  const Report out = locus::readReport(flat.root<locus::wire::Report>());
  CHECK(out.id == "misaligned-device");
  CHECK(out.lat == -33.8688);
  CHECK(out.lon == 151.2093);
  CHECK(out.tsMs == 1763000000001);
  CHECK(out.speedMps == 3.5f);
  // The view is into FlatMessage's aligned copy, not the caller's bytes.
  CHECK_FALSE(pointsInside(out.id.data(), buffer.data(), bytes.size()));
}

TEST_CASE("FlatMessage bounds what a small message can make a reader walk", "[wire]") {
  // A QueryResult whose hits are a million zero-sized structs: a few words
  // on the wire that would read as a million default hits (and allocate
  // them) under a traversal budget of the largest message.
  capnp::MallocMessageBuilder message;
  auto result = message.initRoot<locus::wire::QueryResult>();
  capnp::toAny(result).getPointerSection()[0].initAsListOfAnyStruct(0, 0, 1'000'000);
  zmq::message_t frame = locus::transport::toFrame(message);
  REQUIRE(frame.size() < 1024);
  FlatMessage flat(frame.data(), frame.size());
  REQUIRE_FALSE(flat.error().has_value());
  CHECK_THROWS_AS(locus::readQueryResult(flat.root<locus::wire::QueryResult>()), kj::Exception);
  // The budget follows the message's size, within fixed bounds.
  CHECK(locus::untrustedReaderOptions(10).traversalLimitInWords == locus::kMinTraversalWords);
  CHECK(locus::untrustedReaderOptions(100'000).traversalLimitInWords ==
        100'000 * locus::kTraversalPerWord);
}

TEST_CASE("FlatMessage refuses buffers that are not whole words", "[wire]") {
  const unsigned char bytes[16] = {};
  {
    FlatMessage empty(bytes, 0);
    REQUIRE(empty.error().has_value());
    CHECK_THAT(*empty.error(), Catch::Contains("0 bytes"));
  }
  {
    FlatMessage empty(nullptr, 0);
    CHECK(empty.error().has_value());
  }
  {
    FlatMessage seven(bytes, 7);
    REQUIRE(seven.error().has_value());
    CHECK_THAT(*seven.error(), Catch::Contains("7 bytes"));
  }
  {
    FlatMessage nine(bytes, 9);
    CHECK(nine.error().has_value());
  }
}

TEST_CASE("FlatMessage refuses a segment table that does not fit", "[wire]") {
  // Segment count 1, segment of 100 words, but no words follow.
  const uint32_t header[2] = {0, 100};
  FlatMessage flat(header, sizeof header);
  REQUIRE(flat.error().has_value());
  CHECK_THAT(*flat.error(), Catch::Contains("malformed"));
  // A huge segment count.
  const uint32_t many[2] = {0xFFFFFFF0u, 1};
  FlatMessage flat2(many, sizeof many);
  CHECK(flat2.error().has_value());
}

namespace {

// Reads everything a unit would read from an untrusted request; throws
// kj::Exception when the message is malformed.
void walkRequest(FlatMessage& flat) {
  auto req = flat.root<locus::wire::UnitRequest>();
  (void)req.getRequestId();
  switch (req.which()) {
    case locus::wire::UnitRequest::APPLY:
      for (auto r : req.getApply().getReports()) {
        (void)locus::validateReport(locus::readReport(r));
      }
      break;
    case locus::wire::UnitRequest::DUMP: {
      auto dump = req.getDump();
      (void)dump.getCursor();
      (void)dump.getLimit();
      if (dump.hasOnly()) {
        for (uint32_t p : dump.getOnly().getServe()) (void)p;
      }
      break;
    }
    case locus::wire::UnitRequest::QUERIES:
      if (req.hasOnly()) {
        for (uint32_t p : req.getOnly().getServe()) (void)p;
      }
      for (auto q : req.getQueries()) {
        switch (q.which()) {
          case locus::wire::Query::NEAREST:
            (void)locus::readNearestQuery(q.getNearest());
            break;
          case locus::wire::Query::WITHIN:
            (void)locus::readAreaQuery(q.getWithin());
            break;
          case locus::wire::Query::GET:
            (void)q.getGet().size();
            break;
          default:
            break;
        }
      }
      break;
    default:
      break;
  }
}

void walkReply(FlatMessage& flat) {
  auto reply = flat.root<locus::wire::UnitReply>();
  if (reply.isAnswers()) {
    for (auto a : reply.getAnswers()) {
      if (a.isResult()) (void)locus::readQueryResult(a.getResult());
      if (a.isError()) (void)locus::readError(a.getError());
    }
  }
  if (reply.isError()) (void)locus::readError(reply.getError());
}

// Either the constructor reports an error, or reading throws kj::Exception,
// or the read completes: never a crash. Returns which happened.
enum class Outcome { kRefused, kThrew, kRead };
Outcome readUntrusted(const void* data, size_t size, bool asReply = false) {
  FlatMessage flat(data, size);
  if (flat.error()) return Outcome::kRefused;
  try {
    if (asReply) {
      walkReply(flat);
    } else {
      walkRequest(flat);
    }
    return Outcome::kRead;
  } catch (const kj::Exception&) {
    return Outcome::kThrew;
  }
}

}  // namespace

TEST_CASE("FlatMessage on random bytes never crashes", "[wire][fuzz]") {
  std::mt19937_64 rng(0xC0FFEE);
  int outcomes[3] = {0, 0, 0};
  for (int i = 0; i < 4000; ++i) {
    const size_t words = 1 + rng() % 64;
    std::vector<uint64_t> buf(words);
    for (auto& w : buf) w = rng();
    if (i % 2 == 0) {
      // A plausible segment table (one segment holding the rest), so the
      // reader gets as far as following random pointers.
      const uint32_t header[2] = {0, static_cast<uint32_t>(words - 1)};
      std::memcpy(buf.data(), header, sizeof header);
    }
    if (i % 4 == 1 && words > 1) {
      // A root struct pointer with a small offset and sizes.
      const uint32_t header[2] = {0, static_cast<uint32_t>(words - 1)};
      std::memcpy(buf.data(), header, sizeof header);
      buf[1] = (rng() % 4) << 2 | (uint64_t(rng() % 4) << 32) | (uint64_t(rng() % 4) << 48);
    }
    const Outcome o = readUntrusted(buf.data(), words * 8, i % 3 == 0);
    ++outcomes[static_cast<int>(o)];
    if (i % 8 == 0) {
      const std::vector<unsigned char> bytes(
          reinterpret_cast<unsigned char*>(buf.data()),
          reinterpret_cast<unsigned char*>(buf.data()) + words * 8);
      Misaligned m(bytes);
      readUntrusted(m.data(), bytes.size(), i % 16 == 0);
    }
  }
  INFO("refused " << outcomes[0] << ", threw " << outcomes[1] << ", read " << outcomes[2]);
  // The generator exercised every path.
  CHECK(outcomes[0] > 0);
  CHECK(outcomes[1] > 0);
  CHECK(outcomes[2] > 0);
}

TEST_CASE("FlatMessage on corrupted valid messages never crashes", "[wire][fuzz]") {
  capnp::MallocMessageBuilder message;
  auto req = message.initRoot<locus::wire::UnitRequest>();
  req.setRequestId(42);
  AreaQuery q;
  q.area = Polygon({ring({{0, 0}, {10, 0}, {10, 10}, {0, 10}, {0, 0}}),
                    ring({{4, 4}, {6, 4}, {6, 6}, {4, 6}, {4, 4}})});
  q.limit = 3;
  locus::writeAreaQuery(q, req.initQueries(1)[0].initWithin());
  const std::vector<unsigned char> valid = bytesOf(locus::transport::toFrame(message));
  REQUIRE(readUntrusted(valid.data(), valid.size()) == Outcome::kRead);

  capnp::MallocMessageBuilder batchMessage;
  auto reports = batchMessage.initRoot<locus::wire::UnitRequest>().initApply().initReports(5);
  for (unsigned i = 0; i < 5; ++i) {
    const std::string id = "dev-" + std::to_string(i);
    Report r;
    r.id = id;
    r.lat = i;
    r.lon = -double(i);
    locus::writeReport(r, reports[i]);
  }
  const std::vector<unsigned char> batch = bytesOf(locus::transport::toFrame(batchMessage));
  REQUIRE(readUntrusted(batch.data(), batch.size()) == Outcome::kRead);

  capnp::MallocMessageBuilder replyMessage;
  QueryResult result;
  result.count = 3;
  for (int i = 0; i < 3; ++i) {
    Hit h;
    h.id = "hit-" + std::to_string(i);
    h.distanceM = i;
    result.hits.push_back(h);
  }
  locus::writeQueryResult(
      result, replyMessage.initRoot<locus::wire::UnitReply>().initAnswers(1)[0].initResult());
  const std::vector<unsigned char> reply = bytesOf(locus::transport::toFrame(replyMessage));
  REQUIRE(readUntrusted(reply.data(), reply.size(), true) == Outcome::kRead);

  std::mt19937_64 rng(99);
  int threw = 0;
  for (int i = 0; i < 6000; ++i) {
    const bool asReply = i % 3 == 2;
    std::vector<unsigned char> bytes = asReply ? reply : i % 3 ? valid : batch;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) {
      // Leave the segment table alone half the time to get past it.
      const size_t from = i % 4 < 2 ? 8 : 0;
      bytes[from + rng() % (bytes.size() - from)] = static_cast<unsigned char>(rng());
    }
    std::vector<uint64_t> aligned((bytes.size() + 7) / 8);
    std::memcpy(aligned.data(), bytes.data(), bytes.size());
    if (readUntrusted(aligned.data(), bytes.size(), asReply) == Outcome::kThrew) ++threw;
  }
  CHECK(threw > 0);
}

// ------------------------------------------------------------ round trips

TEST_CASE("Report round trip", "[wire]") {
  SECTION("all fields") {
    capnp::MallocMessageBuilder message;
    Report in;
    in.id = "司机-🚚-7";
    in.lat = 31.2304;
    in.lon = -179.9999999;
    in.tsMs = 1763000000123;
    in.speedMps = 13.25f;
    in.headingDeg = 359.5f;
    in.accuracyM = 4.75f;
    locus::writeReport(in, message.initRoot<locus::wire::Report>());
    zmq::message_t frame = locus::transport::toFrame(message);
    FlatMessage flat(frame.data(), frame.size());
    REQUIRE_FALSE(flat.error().has_value());
    const Report out = locus::readReport(flat.root<locus::wire::Report>());
    CHECK(out.id == in.id);
    CHECK(out.lat == in.lat);
    CHECK(out.lon == in.lon);
    CHECK(out.tsMs == in.tsMs);
    CHECK(out.speedMps == in.speedMps);
    CHECK(out.headingDeg == in.headingDeg);
    CHECK(out.accuracyM == in.accuracyM);
  }
  SECTION("absent optional fields stay absent") {
    capnp::MallocMessageBuilder message;
    Report in;
    in.id = "x";
    locus::writeReport(in, message.initRoot<locus::wire::Report>());
    zmq::message_t frame = locus::transport::toFrame(message);
    FlatMessage flat(frame.data(), frame.size());
    REQUIRE_FALSE(flat.error().has_value());
    const Report out = locus::readReport(flat.root<locus::wire::Report>());
    CHECK(out.id == "x");
    CHECK(out.tsMs == 0);
    CHECK(std::isnan(out.speedMps));
    CHECK(std::isnan(out.headingDeg));
    CHECK(std::isnan(out.accuracyM));
  }
  SECTION("a report never written reads as absent optionals") {
    // The schema's defaults: NaN for the optional floats.
    capnp::MallocMessageBuilder message;
    message.initRoot<locus::wire::Report>().setId("bare");
    zmq::message_t frame = locus::transport::toFrame(message);
    FlatMessage flat(frame.data(), frame.size());
    const Report out = locus::readReport(flat.root<locus::wire::Report>());
    CHECK(out.id == "bare");
    CHECK(std::isnan(out.speedMps));
    CHECK(std::isnan(out.headingDeg));
    CHECK(std::isnan(out.accuracyM));
    CHECK_FALSE(locus::validateReport(out).has_value());
  }
}

TEST_CASE("a 10,000-report batch with 128-byte ids is readable within the limits", "[wire]") {
  capnp::MallocMessageBuilder message;
  auto reports = message.initRoot<locus::wire::ReportBatch>().initReports(10000);
  std::string id(128, 'x');
  for (unsigned i = 0; i < 10000; ++i) {
    const std::string n = std::to_string(i);
    std::memcpy(id.data(), n.data(), n.size());
    Report r;
    r.id = id;
    r.lat = 31 + i * 1e-5;
    r.lon = 121;
    r.tsMs = i;
    locus::writeReport(r, reports[i]);
  }
  zmq::message_t frame = locus::transport::toFrame(message);
  CHECK(static_cast<int64_t>(frame.size()) < locus::kMaxMessageBytes);
  CHECK(locus::untrustedReaderOptions().traversalLimitInWords * 8 >=
        static_cast<uint64_t>(locus::kMaxMessageBytes));
  FlatMessage flat(frame.data(), frame.size());
  REQUIRE_FALSE(flat.error().has_value());
  size_t n = 0, bad = 0;
  for (auto r : flat.root<locus::wire::ReportBatch>().getReports()) {
    const Report out = locus::readReport(r);
    if (out.id.size() != 128 || out.tsMs != static_cast<int64_t>(n)) ++bad;
    ++n;
  }
  CHECK(n == 10000);
  CHECK(bad == 0);
}

TEST_CASE("NearestQuery round trip", "[wire]") {
  capnp::MallocMessageBuilder message;
  NearestQuery in;
  in.center = {-89.5, 179.25};
  in.k = 37;
  in.maxDistanceM = 1234.5;
  in.maxAgeS = 60.5;
  locus::writeNearestQuery(in, message.initRoot<locus::wire::NearestQuery>());
  zmq::message_t frame = locus::transport::toFrame(message);
  FlatMessage flat(frame.data(), frame.size());
  REQUIRE_FALSE(flat.error().has_value());
  const Result<NearestQuery> out = locus::readNearestQuery(flat.root<locus::wire::NearestQuery>());
  REQUIRE(out.ok());
  CHECK(out->center == in.center);
  CHECK(out->k == 37);
  CHECK(out->maxDistanceM == 1234.5);
  CHECK(out->maxAgeS == 60.5);
}

TEST_CASE("readNearestQuery refuses what validate refuses", "[wire]") {
  capnp::MallocMessageBuilder message;
  auto b = message.initRoot<locus::wire::NearestQuery>();
  // A fresh message has the schema defaults: k = 10 at (0, 0).
  {
    const auto q = locus::readNearestQuery(b.asReader());
    REQUIRE(q.ok());
    CHECK(q->k == 10);
  }
  b.setK(0);
  {
    const auto q = locus::readNearestQuery(b.asReader());
    REQUIRE_FALSE(q.ok());
    CHECK(q.error().code == ErrorCode::kBadRequest);
    CHECK(q.error().message == "k must be at least 1");
  }
  b.setK(5);
  b.initCenter().setLat(95);
  {
    const auto q = locus::readNearestQuery(b.asReader());
    REQUIRE_FALSE(q.ok());
    CHECK_THAT(q.error().message, Catch::Contains("lat 95"));
  }
}

TEST_CASE("AreaQuery round trips: circle, box, polygon with a hole", "[wire]") {
  SECTION("circle") {
    AreaQuery in;
    in.area = Circle{{31.25, 121.5}, 500.25};
    in.limit = 7;
    in.countOnly = true;
    in.maxAgeS = 12;
    const auto out = roundTripArea(in);
    REQUIRE(out.ok());
    const auto* c = std::get_if<Circle>(&out->area);
    REQUIRE(c != nullptr);
    CHECK(c->center == LatLon{31.25, 121.5});
    CHECK(c->radiusM == 500.25);
    CHECK(out->limit == 7);
    CHECK(out->countOnly);
    CHECK(out->maxAgeS == 12);
  }
  SECTION("box crossing the antimeridian") {
    AreaQuery in;
    in.area = Box{-10, 170, 10, -170};
    const auto out = roundTripArea(in);
    REQUIRE(out.ok());
    const auto* b = std::get_if<Box>(&out->area);
    REQUIRE(b != nullptr);
    CHECK(*b == Box{-10, 170, 10, -170});
    CHECK(out->limit == 0);
    CHECK_FALSE(out->countOnly);
  }
  SECTION("polygon with a hole") {
    const std::vector<Polygon::Ring> rings = {
        ring({{0, 0}, {10, 0}, {10, 10}, {0, 10}, {0, 0}}),
        ring({{4, 4}, {4, 6}, {6, 6}, {6, 4}, {4, 4}}),
    };
    AreaQuery in;
    in.area = Polygon(rings);
    in.limit = 100;
    const auto out = roundTripArea(in);
    REQUIRE(out.ok());
    const auto* m = std::get_if<locus::geo::MultiPolygon>(&out->area);
    REQUIRE(m != nullptr);
    REQUIRE(m->parts().size() == 1);
    const Polygon* p = &m->parts()[0];
    CHECK(p->rings() == rings);
    CHECK(p->bounds() == Box{0, 0, 10, 10});
    CHECK(p->contains({2, 2}));
    CHECK_FALSE(p->contains({5, 5}));
    CHECK(out->limit == 100);
  }
  SECTION("multipolygon: two parts across the antimeridian") {
    const std::vector<Polygon::Ring> east = {
        ring({{177, -19}, {180, -19}, {180, -16}, {177, -16}, {177, -19}})};
    const std::vector<Polygon::Ring> west = {
        ring({{-180, -19}, {-178, -19}, {-178, -16}, {-180, -16}, {-180, -19}})};
    AreaQuery in;
    in.area = locus::geo::MultiPolygon({Polygon(east), Polygon(west)});
    const auto out = roundTripArea(in);
    REQUIRE(out.ok());
    const auto* m = std::get_if<locus::geo::MultiPolygon>(&out->area);
    REQUIRE(m != nullptr);
    REQUIRE(m->parts().size() == 2);
    CHECK(m->parts()[0].rings() == east);
    CHECK(m->parts()[1].rings() == west);
    CHECK(m->contains({-17, 179.5}));
    CHECK(m->contains({-17, -179.5}));
  }
}

TEST_CASE("readAreaQuery refuses invalid areas with a bad-request error", "[wire]") {
  SECTION("a polygon ring of 3 positions") {
    capnp::MallocMessageBuilder message;
    auto q = message.initRoot<locus::wire::AreaQuery>();
    auto rings = q.initArea().initPolygon().initRings(1);
    auto r = rings.init(0, 3);
    r[0].setLat(0), r[0].setLon(0);
    r[1].setLat(1), r[1].setLon(1);
    r[2].setLat(0), r[2].setLon(0);
    const auto out = locus::readAreaQuery(q.asReader());
    REQUIRE_FALSE(out.ok());
    CHECK(out.error().code == ErrorCode::kBadRequest);
    CHECK_THAT(out.error().message, Catch::Contains("at least 4"));
  }
  SECTION("an unclosed ring") {
    AreaQuery in;
    in.area = Polygon({ring({{0, 0}, {10, 0}, {10, 10}, {0, 10}})});
    const auto out = roundTripArea(in);
    REQUIRE_FALSE(out.ok());
    CHECK_THAT(out.error().message, Catch::Contains("not closed"));
  }
  SECTION("a polygon with no rings") {
    capnp::MallocMessageBuilder message;
    auto q = message.initRoot<locus::wire::AreaQuery>();
    q.initArea().initPolygon();
    const auto out = locus::readAreaQuery(q.asReader());
    REQUIRE_FALSE(out.ok());
    CHECK_THAT(out.error().message, Catch::Contains("at least one ring"));
  }
  SECTION("a box with south > north") {
    AreaQuery in;
    in.area = Box{40, 0, 30, 10};
    const auto out = roundTripArea(in);
    REQUIRE_FALSE(out.ok());
    CHECK(out.error().code == ErrorCode::kBadRequest);
    CHECK_THAT(out.error().message, Catch::Contains("south"));
  }
  SECTION("a negative radius") {
    AreaQuery in;
    in.area = Circle{{0, 0}, -1};
    const auto out = roundTripArea(in);
    REQUIRE_FALSE(out.ok());
    CHECK_THAT(out.error().message, Catch::Contains("radius"));
  }
  SECTION("a negative max age") {
    AreaQuery in;
    in.area = Circle{{0, 0}, 1};
    in.maxAgeS = -1;
    const auto out = roundTripArea(in);
    REQUIRE_FALSE(out.ok());
    CHECK_THAT(out.error().message, Catch::Contains("max age"));
  }
}

TEST_CASE("QueryResult round trip, NaN distances included", "[wire]") {
  QueryResult in;
  in.count = 123456789012ULL;
  Hit a;
  a.id = "c17";
  a.lat = 31.2501;
  a.lon = 121.4999;
  a.tsMs = 1763000000017;
  a.distanceM = 12.4;
  a.speedMps = 1.5f;
  a.headingDeg = 90;
  a.accuracyM = 3;
  Hit b;
  b.id = "no-centre";
  b.lat = -90;
  b.lon = 180;
  b.tsMs = 1;
  in.hits = {a, b};
  REQUIRE(std::isnan(b.distanceM));

  capnp::MallocMessageBuilder message;
  locus::writeQueryResult(in, message.initRoot<locus::wire::QueryResult>());
  zmq::message_t frame = locus::transport::toFrame(message);
  FlatMessage flat(frame.data(), frame.size());
  REQUIRE_FALSE(flat.error().has_value());
  const QueryResult out = locus::readQueryResult(flat.root<locus::wire::QueryResult>());
  CHECK(out.count == 123456789012ULL);
  REQUIRE(out.hits.size() == 2);
  CHECK(out.hits[0].id == "c17");
  CHECK(out.hits[0].lat == 31.2501);
  CHECK(out.hits[0].lon == 121.4999);
  CHECK(out.hits[0].tsMs == 1763000000017);
  CHECK(out.hits[0].distanceM == 12.4);
  CHECK(out.hits[0].speedMps == 1.5f);
  CHECK(out.hits[0].headingDeg == 90);
  CHECK(out.hits[0].accuracyM == 3);
  CHECK(out.hits[1].id == "no-centre");
  CHECK(out.hits[1].lat == -90);
  CHECK(out.hits[1].lon == 180);
  CHECK(out.hits[1].tsMs == 1);
  CHECK(std::isnan(out.hits[1].distanceM));
  CHECK(std::isnan(out.hits[1].speedMps));
  CHECK(std::isnan(out.hits[1].headingDeg));
  CHECK(std::isnan(out.hits[1].accuracyM));

  // An empty count-only answer.
  QueryResult countOnly;
  countOnly.count = 5;
  capnp::MallocMessageBuilder m2;
  locus::writeQueryResult(countOnly, m2.initRoot<locus::wire::QueryResult>());
  const QueryResult back = locus::readQueryResult(m2.getRoot<locus::wire::QueryResult>());
  CHECK(back.count == 5);
  CHECK(back.hits.empty());
}

TEST_CASE("BatchOutcome and UnitStats round trips", "[wire]") {
  {
    locus::BatchOutcome in;
    in.accepted = 9998;
    in.stale = 17;
    in.rejected = {{3, "lat 95 is out of range [-90, 90]"}, {4000000000u, "id is empty"}};
    capnp::MallocMessageBuilder message;
    locus::writeBatchOutcome(in, message.initRoot<locus::wire::BatchResult>());
    zmq::message_t frame = locus::transport::toFrame(message);
    FlatMessage flat(frame.data(), frame.size());
    REQUIRE_FALSE(flat.error().has_value());
    const locus::BatchOutcome out = locus::readBatchOutcome(flat.root<locus::wire::BatchResult>());
    CHECK(out.accepted == 9998);
    CHECK(out.stale == 17);
    CHECK(out.rejected == in.rejected);
  }
  {
    locus::UnitStats in;
    in.name = "tcp://127.0.0.1:7900";
    in.devices = 1000000;
    in.reportsApplied = 2000000;
    in.reportsStale = 3;
    in.reportsRejected = 4;
    in.queriesServed = 100000;
    in.memoryBytes = 123456789012ULL;
    capnp::MallocMessageBuilder message;
    locus::writeUnitStats(in, message.initRoot<locus::wire::UnitStats>());
    zmq::message_t frame = locus::transport::toFrame(message);
    FlatMessage flat(frame.data(), frame.size());
    REQUIRE_FALSE(flat.error().has_value());
    const locus::UnitStats out = locus::readUnitStats(flat.root<locus::wire::UnitStats>());
    CHECK(out.name == in.name);
    CHECK(out.devices == in.devices);
    CHECK(out.reportsApplied == in.reportsApplied);
    CHECK(out.reportsStale == in.reportsStale);
    CHECK(out.reportsRejected == in.reportsRejected);
    CHECK(out.queriesServed == in.queriesServed);
    CHECK(out.memoryBytes == in.memoryBytes);
  }
}

TEST_CASE("Error round trip for every code", "[wire]") {
  for (ErrorCode code : {ErrorCode::kBadRequest, ErrorCode::kNotFound, ErrorCode::kTimeout,
                         ErrorCode::kUnavailable, ErrorCode::kOverloaded, ErrorCode::kInternal,
                         ErrorCode::kUnauthenticated, ErrorCode::kForbidden}) {
    capnp::MallocMessageBuilder message;
    const locus::Error in{code, "unknown id \"truck-7\""};
    locus::writeError(in, message.initRoot<locus::wire::Error>());
    zmq::message_t frame = locus::transport::toFrame(message);
    FlatMessage flat(frame.data(), frame.size());
    REQUIRE_FALSE(flat.error().has_value());
    const locus::Error out = locus::readError(flat.root<locus::wire::Error>());
    CHECK(out.code == code);
    CHECK(out.message == in.message);
  }
  // The C++ and wire enumerants line up by meaning.
  capnp::MallocMessageBuilder message;
  locus::writeError(locus::Error{ErrorCode::kNotFound, "x"},
                    message.initRoot<locus::wire::Error>());
  CHECK(message.getRoot<locus::wire::Error>().getCode() == locus::wire::ErrorCode::NOT_FOUND);
  // An enumerant from a newer peer reads as internal.
  message.getRoot<locus::wire::Error>().setCode(static_cast<locus::wire::ErrorCode>(99));
  CHECK(locus::readError(message.getRoot<locus::wire::Error>()).code == ErrorCode::kInternal);
  CHECK(locus::badRequest("m").code == ErrorCode::kBadRequest);
}

// ------------------------------------------------------------------- flags

TEST_CASE("envNameForFlag", "[flags]") {
  CHECK(locus::envNameForFlag("--ttl-s") == "LOCUS_TTL_S");
  CHECK(locus::envNameForFlag("--listen") == "LOCUS_LISTEN");
  CHECK(locus::envNameForFlag("--listen-text") == "LOCUS_LISTEN_TEXT");
  CHECK(locus::envNameForFlag("--timeout-ms") == "LOCUS_TIMEOUT_MS");
  CHECK(locus::envNameForFlag("-k") == "LOCUS_K");
  CHECK(locus::envNameForFlag("units") == "LOCUS_UNITS");
}

TEST_CASE("addFlag reads LOCUS_* from the environment and the flag wins", "[flags]") {
  ::unsetenv("LOCUS_TTL_S");
  {
    CLI::App app;
    int ttl = 5;
    locus::addFlag(app, "--ttl-s", ttl, "seconds");
    app.parse(std::string(""));
    CHECK(ttl == 5);
    CHECK_THAT(app.help(), Catch::Contains("5"));
  }
  ::setenv("LOCUS_TTL_S", "42", 1);
  {
    CLI::App app;
    int ttl = 5;
    locus::addFlag(app, "--ttl-s", ttl, "seconds");
    app.parse(std::string(""));
    CHECK(ttl == 42);
  }
  {
    CLI::App app;
    int ttl = 5;
    locus::addFlag(app, "--ttl-s", ttl, "seconds");
    app.parse(std::string("--ttl-s 7"));
    CHECK(ttl == 7);
  }
  ::unsetenv("LOCUS_TTL_S");
}
