// The record format of a unit's data files, its log and its snapshots
// (storage.h): a sequence of records, each
//
//   u32 payload length | u32 kind | u64 checksum | payload
//
// little-endian, the checksum an XXH3 of the payload seeded with the length
// and the kind (so a torn or bit-flipped header fails it too). A batch
// record's payload is a u32 report count, then per report: u8 id length,
// the id bytes, f64 lat, f64 lon, i64 tsMs, f32 speed, f32 heading, f32
// accuracy (NaN = absent). A snapshot is a file of batch records like a
// log, holding the newest position of every device.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "locus/common/report.h"

namespace locus::unit::logfmt {

inline constexpr size_t kHeaderBytes = 16;
// A record larger than this is corrupt: no batch comes near it.
inline constexpr uint32_t kMaxPayloadBytes = 64u << 20;

enum class Kind : uint32_t { kBatch = 1 };

// Builds one batch record at the end of `out`, a report at a time (for
// reports that live only during a call, like LocationIndex::forEach's).
// Precondition: every report passed validateReport.
class BatchEncoder {
 public:
  explicit BatchEncoder(std::string& out);
  void add(const Report& report);
  size_t count() const { return count_; }
  // Writes the header; the record is complete. Call once.
  void finish();

 private:
  std::string& out_;
  size_t start_;
  uint32_t count_ = 0;
};

// Appends one batch record holding `reports` to `out`.
void appendBatch(std::span<const Report> reports, std::string& out);

// What reading a data file found.
struct Scan {
  size_t validBytes = 0;  // the prefix made of whole, intact records
  uint64_t records = 0;
  uint64_t reports = 0;
  // Why reading stopped before the end: a torn tail (a record cut short)
  // or corruption (a bad checksum, a malformed payload). Nothing at the end.
  std::optional<std::string> problem;
  // With a problem: no intact record follows the bad one anywhere in the
  // file, as a write torn by a crash leaves it (cut short, garbage, zeros).
  // A bad stretch with an intact record after it is damage, not a torn
  // write (a flipped length, say).
  bool atTail = false;
};

// Reads the records of `data` in order and calls `onReport` with each
// report of each intact record (the id views `data`). Stops at the first
// record that is cut short, fails its checksum or does not decode; the
// reports of that record are not passed on.
Scan scan(std::string_view data, const std::function<void(const Report&)>& onReport);

}  // namespace locus::unit::logfmt
