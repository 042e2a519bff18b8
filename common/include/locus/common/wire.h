// Cap'n Proto on the wire: reading untrusted messages with limits, and the
// conversions between schema types (locus.capnp) and plain C++ values.
//
// Readers may throw kj::Exception when a message is malformed (a pointer out
// of bounds, a limit exceeded); each server loop catches it in one place and
// answers with a typed error.
#pragma once

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/array.h>

#include <cstddef>
#include <memory>
#include <optional>
#include <string>

#include "locus.capnp.h"
#include "locus/common/query.h"
#include "locus/common/report.h"
#include "locus/common/status.h"

namespace locus {

// The most devices one UnitRequest.dump page carries (~600 KB of reports).
inline constexpr uint32_t kMaxDumpPage = 10'000;

// Largest message a Locus endpoint accepts (ZMQ_MAXMSGSIZE on internal
// sockets). A report batch of 10,000 reports with 128-byte ids is ~2 MiB.
inline constexpr int64_t kMaxMessageBytes = 16 << 20;

// Most queries one UnitRequest.queries may carry: bounds the work (and the
// reply size) of one unit message; a sender splits larger batches.
inline constexpr size_t kMaxQueriesPerRequest = 64;

// Largest message a client may send on a Cap'n Proto RPC port (the gateway's
// Ingest, the server's LocationService). An Ingest batch of 20,000 reports
// with 128-byte ids, or a polygon of 250,000 vertices, fits; the clients
// here send batches of 1,000. A stream header announcing more is refused
// before anything is buffered, and the connection is dropped.
inline constexpr int64_t kMaxRpcMessageBytes = 4 << 20;

// Limits for reading an untrusted message of `words` words: a traversal
// budget of kTraversalPerWord times its size (at least kMinTraversalWords,
// at most twice the largest message), so that a small message cannot make
// a reader walk, or allocate for, far more than it sent (a list of
// zero-sized structs is charged a word an element: a 400-byte reply could
// otherwise claim millions of hits); and a nesting depth well above the
// schema's.
inline constexpr uint64_t kTraversalPerWord = 8;
inline constexpr uint64_t kMinTraversalWords = 8 * 1024;
capnp::ReaderOptions untrustedReaderOptions(size_t words = kMaxMessageBytes / 8);
// The same for RPC ports: at most kMaxRpcMessageBytes a message.
capnp::ReaderOptions untrustedRpcReaderOptions();

// A Cap'n Proto message viewed in place in a byte buffer: zero-copy when the
// buffer is word-aligned, copied once otherwise. The buffer must outlive it.
class FlatMessage {
 public:
  FlatMessage(const void* data, size_t size);
  FlatMessage(const FlatMessage&) = delete;
  FlatMessage& operator=(const FlatMessage&) = delete;

  // Why the bytes are not a Cap'n Proto message, or nothing.
  const std::optional<std::string>& error() const { return error_; }

  // Precondition: !error(). May throw kj::Exception on a malformed message.
  template <typename T>
  typename T::Reader root() {
    return reader_->getRoot<T>();
  }

 private:
  kj::Array<capnp::word> copy_;
  std::unique_ptr<capnp::FlatArrayMessageReader> reader_;
  std::optional<std::string> error_;
};

// ---- conversions. read* functions may throw kj::Exception (see above).

// The id is a view into the message: valid while the message lives.
Report readReport(wire::Report::Reader r);
void writeReport(const Report& report, wire::Report::Builder b);

geo::LatLon readLatLon(wire::LatLon::Reader r);
void writeLatLon(const geo::LatLon& p, wire::LatLon::Builder b);

// Validated queries: an error for anything validate() refuses.
Result<NearestQuery> readNearestQuery(wire::NearestQuery::Reader r);
Result<AreaQuery> readAreaQuery(wire::AreaQuery::Reader r);
void writeNearestQuery(const NearestQuery& q, wire::NearestQuery::Builder b);
void writeAreaQuery(const AreaQuery& q, wire::AreaQuery::Builder b);
// Read and validated (a bad point is named), or why not.
Result<NearestMany> readNearestMany(wire::NearestManyQuery::Reader r);
Result<WithinMany> readWithinMany(wire::WithinManyQuery::Reader r);
void writeNearestMany(const NearestMany& q, wire::NearestManyQuery::Builder b);
void writeWithinMany(const WithinMany& q, wire::WithinManyQuery::Builder b);

QueryResult readQueryResult(wire::QueryResult::Reader r);
void writeQueryResult(const QueryResult& result, wire::QueryResult::Builder b);

BatchOutcome readBatchOutcome(wire::BatchResult::Reader r);
void writeBatchOutcome(const BatchOutcome& outcome, wire::BatchResult::Builder b);

UnitStats readUnitStats(wire::UnitStats::Reader r);
Coverage readCoverage(wire::ShardCoverage::Reader r);
void writeCoverage(const Coverage& coverage, wire::ShardCoverage::Builder b);
void writeUnitStats(const UnitStats& stats, wire::UnitStats::Builder b);

Error readError(wire::Error::Reader r);
void writeError(const Error& error, wire::Error::Builder b);

}  // namespace locus
