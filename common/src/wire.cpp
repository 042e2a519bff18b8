#include "locus/common/wire.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

namespace locus {
namespace {

constexpr size_t kWordBytes = sizeof(capnp::word);

std::string_view view(capnp::Text::Reader text) {
  return {text.begin(), text.size()};
}

ErrorCode fromWire(wire::ErrorCode code) {
  switch (code) {
    case wire::ErrorCode::BAD_REQUEST:
      return ErrorCode::kBadRequest;
    case wire::ErrorCode::NOT_FOUND:
      return ErrorCode::kNotFound;
    case wire::ErrorCode::TIMEOUT:
      return ErrorCode::kTimeout;
    case wire::ErrorCode::UNAVAILABLE:
      return ErrorCode::kUnavailable;
    case wire::ErrorCode::OVERLOADED:
      return ErrorCode::kOverloaded;
    case wire::ErrorCode::INTERNAL:
      return ErrorCode::kInternal;
    case wire::ErrorCode::UNAUTHENTICATED:
      return ErrorCode::kUnauthenticated;
    case wire::ErrorCode::FORBIDDEN:
      return ErrorCode::kForbidden;
  }
  return ErrorCode::kInternal;  // an enumerant from a newer peer
}

wire::ErrorCode toWire(ErrorCode code) {
  switch (code) {
    case ErrorCode::kBadRequest:
      return wire::ErrorCode::BAD_REQUEST;
    case ErrorCode::kNotFound:
      return wire::ErrorCode::NOT_FOUND;
    case ErrorCode::kTimeout:
      return wire::ErrorCode::TIMEOUT;
    case ErrorCode::kUnavailable:
      return wire::ErrorCode::UNAVAILABLE;
    case ErrorCode::kOverloaded:
      return wire::ErrorCode::OVERLOADED;
    case ErrorCode::kInternal:
      return wire::ErrorCode::INTERNAL;
    case ErrorCode::kUnauthenticated:
      return wire::ErrorCode::UNAUTHENTICATED;
    case ErrorCode::kForbidden:
      return wire::ErrorCode::FORBIDDEN;
  }
  return wire::ErrorCode::INTERNAL;
}

void writeBox(const geo::Box& box, wire::Box::Builder b) {
  b.setSouth(box.south);
  b.setWest(box.west);
  b.setNorth(box.north);
  b.setEast(box.east);
}

}  // namespace

capnp::ReaderOptions untrustedReaderOptions(size_t words) {
  capnp::ReaderOptions options;
  options.traversalLimitInWords = std::clamp<uint64_t>(
      uint64_t{words} * kTraversalPerWord, kMinTraversalWords, 2 * kMaxMessageBytes / kWordBytes);
  options.nestingLimit = 16;
  return options;
}

capnp::ReaderOptions untrustedRpcReaderOptions() {
  capnp::ReaderOptions options;
  // The RPC layer checks a message's announced size against this before it
  // allocates, and walks each message once.
  options.traversalLimitInWords = kMaxRpcMessageBytes / kWordBytes;
  options.nestingLimit = 16;
  return options;
}

FlatMessage::FlatMessage(const void* data, size_t size) {
  if (size == 0 || size % kWordBytes != 0) {
    error_ =
        fmt::format("a message of {} bytes is not a Cap'n Proto message (not whole words)", size);
    return;
  }
  const size_t words = size / kWordBytes;
  kj::ArrayPtr<const capnp::word> in;
  if (reinterpret_cast<uintptr_t>(data) % alignof(capnp::word) == 0) {
    in = kj::arrayPtr(static_cast<const capnp::word*>(data), words);
  } else {
    copy_ = kj::heapArray<capnp::word>(words);
    std::memcpy(copy_.begin(), data, size);
    in = copy_.asPtr();
  }
  try {
    reader_ = std::make_unique<capnp::FlatArrayMessageReader>(in, untrustedReaderOptions(words));
  } catch (const kj::Exception& e) {
    error_ = fmt::format("malformed Cap'n Proto message: {}", e.getDescription().cStr());
  }
}

Report readReport(wire::Report::Reader r) {
  Report report;
  report.id = view(r.getId());
  report.lat = r.getLat();
  report.lon = r.getLon();
  report.tsMs = r.getTsMs();
  report.speedMps = r.getSpeedMps();
  report.headingDeg = r.getHeadingDeg();
  report.accuracyM = r.getAccuracyM();
  return report;
}

void writeReport(const Report& report, wire::Report::Builder b) {
  b.setId(capnp::Text::Reader(report.id.data(), report.id.size()));
  b.setLat(report.lat);
  b.setLon(report.lon);
  b.setTsMs(report.tsMs);
  b.setSpeedMps(report.speedMps);
  b.setHeadingDeg(report.headingDeg);
  b.setAccuracyM(report.accuracyM);
}

geo::LatLon readLatLon(wire::LatLon::Reader r) {
  return {r.getLat(), r.getLon()};
}

void writeLatLon(const geo::LatLon& p, wire::LatLon::Builder b) {
  b.setLat(p.lat);
  b.setLon(p.lon);
}

namespace {

Result<geo::Polygon> readPolygon(wire::Polygon::Reader r) {
  std::vector<geo::Polygon::Ring> rings;
  for (auto ring : r.getRings()) {
    auto& out = rings.emplace_back();
    out.reserve(ring.size());
    for (auto p : ring) out.push_back(readLatLon(p));
  }
  if (auto e = geo::Polygon::validate(rings)) return badRequest(*e);
  return geo::Polygon(std::move(rings));
}

void writePolygon(const geo::Polygon& polygon, wire::Polygon::Builder b) {
  const auto& rings = polygon.rings();
  auto out = b.initRings(static_cast<unsigned>(rings.size()));
  for (size_t i = 0; i < rings.size(); ++i) {
    auto ring = out.init(static_cast<unsigned>(i), static_cast<unsigned>(rings[i].size()));
    for (size_t j = 0; j < rings[i].size(); ++j) {
      writeLatLon(rings[i][j], ring[static_cast<unsigned>(j)]);
    }
  }
}

}  // namespace

Result<NearestQuery> readNearestQuery(wire::NearestQuery::Reader r) {
  NearestQuery q;
  q.center = readLatLon(r.getCenter());
  q.k = r.getK();
  q.maxDistanceM = r.getMaxDistanceM();
  q.maxAgeS = r.getMaxAgeS();
  q.idPrefix = r.getIdPrefix();
  if (auto e = validate(q)) return badRequest(*e);
  return q;
}

Result<AreaQuery> readAreaQuery(wire::AreaQuery::Reader r) {
  AreaQuery q;
  auto area = r.getArea();
  switch (area.which()) {
    case wire::Area::CIRCLE: {
      auto c = area.getCircle();
      q.area = Circle{readLatLon(c.getCenter()), c.getRadiusM()};
      break;
    }
    case wire::Area::BOX: {
      auto b = area.getBox();
      q.area = geo::Box{b.getSouth(), b.getWest(), b.getNorth(), b.getEast()};
      break;
    }
    case wire::Area::POLYGON: {
      auto polygon = readPolygon(area.getPolygon());
      if (!polygon) return polygon.error();
      q.area = geo::MultiPolygon(std::move(*polygon));
      break;
    }
    case wire::Area::MULTI_POLYGON: {
      auto parts = area.getMultiPolygon();
      if (parts.size() == 0) return badRequest("a multipolygon needs at least one polygon");
      std::vector<geo::Polygon> polygons;
      polygons.reserve(parts.size());
      for (auto part : parts) {
        auto polygon = readPolygon(part);
        if (!polygon) return polygon.error();
        polygons.push_back(std::move(*polygon));
      }
      q.area = geo::MultiPolygon(std::move(polygons));
      break;
    }
    default:
      return badRequest("unknown area kind (a newer client?)");
  }
  q.limit = r.getLimit();
  q.countOnly = r.getCountOnly();
  q.grid = Grid{r.getGrid().getColumns(), r.getGrid().getRows()};
  q.maxAgeS = r.getMaxAgeS();
  q.idPrefix = r.getIdPrefix();
  if (auto e = validate(q)) return badRequest(*e);
  return q;
}

namespace {

// The points of a batch, or why there are too many to read.
template <typename Reader>
Result<std::vector<geo::LatLon>> readPoints(Reader r) {
  const auto points = r.getPoints();
  if (points.size() > kMaxBatchPoints)
    return badRequest(fmt::format("{} points are more than the {} allowed in one call",
                                  points.size(), kMaxBatchPoints));
  std::vector<geo::LatLon> out;
  out.reserve(points.size());
  for (auto p : points) out.push_back(readLatLon(p));
  return out;
}

template <typename Builder>
void writePoints(const std::vector<geo::LatLon>& points, Builder b) {
  auto out = b.initPoints(static_cast<unsigned>(points.size()));
  for (size_t i = 0; i < points.size(); ++i) writeLatLon(points[i], out[static_cast<unsigned>(i)]);
}

}  // namespace

Result<NearestMany> readNearestMany(wire::NearestManyQuery::Reader r) {
  auto points = readPoints(r);
  if (!points) return points.error();
  NearestMany q{.points = std::move(*points)};
  q.each.k = r.getK();
  q.each.maxDistanceM = r.getMaxDistanceM();
  q.each.maxAgeS = r.getMaxAgeS();
  q.each.idPrefix = r.getIdPrefix();
  if (auto e = validate(q)) return badRequest(*e);
  return q;
}

Result<WithinMany> readWithinMany(wire::WithinManyQuery::Reader r) {
  auto points = readPoints(r);
  if (!points) return points.error();
  WithinMany q{.points = std::move(*points), .radiusM = r.getRadiusM()};
  q.each.limit = r.getLimit();
  q.each.countOnly = r.getCountOnly();
  q.each.maxAgeS = r.getMaxAgeS();
  q.each.idPrefix = r.getIdPrefix();
  if (auto e = validate(q)) return badRequest(*e);
  return q;
}

void writeNearestMany(const NearestMany& q, wire::NearestManyQuery::Builder b) {
  writePoints(q.points, b);
  b.setK(q.each.k);
  b.setMaxDistanceM(q.each.maxDistanceM);
  b.setMaxAgeS(q.each.maxAgeS);
  if (!q.each.idPrefix.empty()) b.setIdPrefix(q.each.idPrefix);
}

void writeWithinMany(const WithinMany& q, wire::WithinManyQuery::Builder b) {
  writePoints(q.points, b);
  b.setRadiusM(q.radiusM);
  b.setLimit(q.each.limit);
  b.setCountOnly(q.each.countOnly);
  b.setMaxAgeS(q.each.maxAgeS);
  if (!q.each.idPrefix.empty()) b.setIdPrefix(q.each.idPrefix);
}

void writeNearestQuery(const NearestQuery& q, wire::NearestQuery::Builder b) {
  writeLatLon(q.center, b.initCenter());
  b.setK(q.k);
  b.setMaxDistanceM(q.maxDistanceM);
  b.setMaxAgeS(q.maxAgeS);
  if (!q.idPrefix.empty()) b.setIdPrefix(q.idPrefix);
}

void writeAreaQuery(const AreaQuery& q, wire::AreaQuery::Builder b) {
  if (!q.idPrefix.empty()) b.setIdPrefix(q.idPrefix);
  auto area = b.initArea();
  if (const auto* c = std::get_if<Circle>(&q.area)) {
    auto circle = area.initCircle();
    writeLatLon(c->center, circle.initCenter());
    circle.setRadiusM(c->radiusM);
  } else if (const auto* box = std::get_if<geo::Box>(&q.area)) {
    writeBox(*box, area.initBox());
  } else {
    // One part goes as a plain polygon, which every peer reads.
    const auto& parts = std::get<geo::MultiPolygon>(q.area).parts();
    if (parts.size() == 1) {
      writePolygon(parts.front(), area.initPolygon());
    } else {
      auto out = area.initMultiPolygon(static_cast<unsigned>(parts.size()));
      for (size_t i = 0; i < parts.size(); ++i) {
        writePolygon(parts[i], out[static_cast<unsigned>(i)]);
      }
    }
  }
  b.setLimit(q.limit);
  b.setCountOnly(q.countOnly);
  if (q.grid.on()) {
    auto grid = b.initGrid();
    grid.setColumns(q.grid.columns);
    grid.setRows(q.grid.rows);
  }
  b.setMaxAgeS(q.maxAgeS);
}

QueryResult readQueryResult(wire::QueryResult::Reader r) {
  QueryResult result;
  result.count = r.getCount();
  auto hits = r.getHits();
  result.hits.reserve(hits.size());
  for (auto h : hits) {
    Hit& hit = result.hits.emplace_back();
    hit.id = std::string(view(h.getId()));
    hit.lat = h.getLat();
    hit.lon = h.getLon();
    hit.tsMs = h.getTsMs();
    hit.distanceM = h.getDistanceM();
    hit.speedMps = h.getSpeedMps();
    hit.headingDeg = h.getHeadingDeg();
    hit.accuracyM = h.getAccuracyM();
  }
  auto cells = r.getCells();
  result.cells.reserve(cells.size());
  for (uint64_t n : cells) result.cells.push_back(n);
  return result;
}

void writeQueryResult(const QueryResult& result, wire::QueryResult::Builder b) {
  b.setCount(result.count);
  auto hits = b.initHits(static_cast<unsigned>(result.hits.size()));
  for (size_t i = 0; i < result.hits.size(); ++i) {
    const Hit& hit = result.hits[i];
    auto h = hits[static_cast<unsigned>(i)];
    h.setId(capnp::Text::Reader(hit.id.data(), hit.id.size()));
    h.setLat(hit.lat);
    h.setLon(hit.lon);
    h.setTsMs(hit.tsMs);
    h.setDistanceM(hit.distanceM);
    h.setSpeedMps(hit.speedMps);
    h.setHeadingDeg(hit.headingDeg);
    h.setAccuracyM(hit.accuracyM);
  }
  if (!result.cells.empty()) {
    auto cells = b.initCells(static_cast<unsigned>(result.cells.size()));
    for (size_t i = 0; i < result.cells.size(); ++i)
      cells.set(static_cast<unsigned>(i), result.cells[i]);
  }
}

BatchOutcome readBatchOutcome(wire::BatchResult::Reader r) {
  BatchOutcome outcome;
  outcome.accepted = r.getAccepted();
  outcome.stale = r.getStale();
  for (auto rej : r.getRejected()) {
    outcome.rejected.emplace_back(rej.getIndex(), std::string(view(rej.getReason())));
    if (rej.getRetry()) outcome.retryable.push_back(rej.getIndex());
  }
  return outcome;
}

void writeBatchOutcome(const BatchOutcome& outcome, wire::BatchResult::Builder b) {
  b.setAccepted(outcome.accepted);
  b.setStale(outcome.stale);
  auto out = b.initRejected(static_cast<unsigned>(outcome.rejected.size()));
  auto retry = outcome.retryable.begin();
  for (unsigned i = 0; i < outcome.rejected.size(); ++i) {
    const uint32_t index = outcome.rejected[i].first;
    out[i].setIndex(index);
    out[i].setReason(outcome.rejected[i].second);
    while (retry != outcome.retryable.end() && *retry < index) ++retry;
    out[i].setRetry(retry != outcome.retryable.end() && *retry == index);
  }
}

UnitStats readUnitStats(wire::UnitStats::Reader r) {
  UnitStats s;
  s.name = std::string(view(r.getName()));
  s.devices = r.getDevices();
  s.reportsApplied = r.getReportsApplied();
  s.reportsStale = r.getReportsStale();
  s.reportsRejected = r.getReportsRejected();
  s.queriesServed = r.getQueriesServed();
  s.memoryBytes = r.getMemoryBytes();
  s.incarnation = r.getIncarnation();
  s.durable = r.getDurable();
  s.writable = r.getWritable();
  s.logBytes = r.getLogBytes();
  s.partitions = r.getPartitions();
  for (uint32_t p : r.getNotServing()) s.notServing.push_back(p);
  s.copying = r.getCopying();
  s.copiedDevices = r.getCopiedDevices();
  s.catchUpPending = r.getCatchUpPending();
  s.catchUpSeconds = r.getCatchUpSeconds();
  return s;
}

void writeUnitStats(const UnitStats& s, wire::UnitStats::Builder b) {
  b.setName(s.name);
  b.setDevices(s.devices);
  b.setReportsApplied(s.reportsApplied);
  b.setReportsStale(s.reportsStale);
  b.setReportsRejected(s.reportsRejected);
  b.setQueriesServed(s.queriesServed);
  b.setMemoryBytes(s.memoryBytes);
  b.setIncarnation(s.incarnation);
  b.setDurable(s.durable);
  b.setWritable(s.writable);
  b.setLogBytes(s.logBytes);
  b.setPartitions(s.partitions);
  auto notServing = b.initNotServing(static_cast<unsigned>(s.notServing.size()));
  for (size_t i = 0; i < s.notServing.size(); ++i)
    notServing.set(static_cast<unsigned>(i), s.notServing[i]);
  b.setCopying(s.copying);
  b.setCopiedDevices(s.copiedDevices);
  b.setCatchUpPending(s.catchUpPending);
  b.setCatchUpSeconds(s.catchUpSeconds);
}

Coverage readCoverage(wire::ShardCoverage::Reader r) {
  return Coverage{r.getTotal(), r.getAnswered(), r.getPartitions(), r.getPartitionsAnswered()};
}

void writeCoverage(const Coverage& c, wire::ShardCoverage::Builder b) {
  b.setTotal(c.total);
  b.setAnswered(c.answered);
  b.setPartitions(c.partitions);
  b.setPartitionsAnswered(c.partitionsAnswered);
}

Error readError(wire::Error::Reader r) {
  return Error{fromWire(r.getCode()), std::string(view(r.getMessage()))};
}

void writeError(const Error& error, wire::Error::Builder b) {
  b.setCode(toWire(error.code));
  b.setMessage(capnp::Text::Reader(error.message.data(), error.message.size()));
}

}  // namespace locus
