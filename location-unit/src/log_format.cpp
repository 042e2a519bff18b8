#include "locus/unit/log_format.h"

#include <fmt/format.h>
#include <kj/debug.h>
#include <xxhash.h>

#include <bit>
#include <cstring>
#include <vector>

namespace locus::unit::logfmt {
namespace {

static_assert(std::endian::native == std::endian::little, "data files are little-endian");

template <typename T>
void put(std::string& out, T value) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));
  out.append(bytes, sizeof(T));
}

uint64_t checksum(std::string_view payload, uint32_t kind) {
  const uint64_t seed = (uint64_t{kind} << 32) | payload.size();
  return XXH3_64bits_withSeed(payload.data(), payload.size(), seed);
}

// Reads fixed-size values off the front of a payload.
class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}
  template <typename T>
  bool get(T& value) {
    if (data_.size() < sizeof(T)) return false;
    std::memcpy(&value, data_.data(), sizeof(T));
    data_.remove_prefix(sizeof(T));
    return true;
  }
  bool bytes(size_t n, std::string_view& out) {
    if (data_.size() < n) return false;
    out = data_.substr(0, n);
    data_.remove_prefix(n);
    return true;
  }
  bool empty() const { return data_.empty(); }

 private:
  std::string_view data_;
};

// The reports of one batch payload, or why it does not decode.
std::optional<std::string> decodeBatch(std::string_view payload, std::vector<Report>& out) {
  Reader in(payload);
  uint32_t count = 0;
  if (!in.get(count)) return "a batch without a count";
  for (uint32_t i = 0; i < count; ++i) {
    uint8_t idBytes = 0;
    Report r;
    if (!in.get(idBytes) || !in.bytes(idBytes, r.id) || !in.get(r.lat) || !in.get(r.lon) ||
        !in.get(r.tsMs) || !in.get(r.speedMps) || !in.get(r.headingDeg) || !in.get(r.accuracyM))
      return fmt::format("report {} of {} is cut short", i, count);
    if (auto e = validateReport(r)) return fmt::format("report {} of {}: {}", i, count, *e);
    out.push_back(r);
  }
  if (!in.empty()) return "bytes after the last report of a batch";
  return std::nullopt;
}

// Whether a whole record with a matching checksum starts anywhere at or
// after `from`: a bad stretch with one after it is damage, not a torn tail.
// Cheap on garbage and zeros: only a header of the batch kind is checked.
bool intactRecordAfter(std::string_view data, size_t from) {
  for (size_t at = from; at + kHeaderBytes <= data.size(); ++at) {
    uint32_t length = 0, kind = 0;
    uint64_t sum = 0;
    std::memcpy(&kind, data.data() + at + 4, 4);
    if (kind != static_cast<uint32_t>(Kind::kBatch)) continue;
    std::memcpy(&length, data.data() + at, 4);
    if (length > kMaxPayloadBytes || data.size() - at - kHeaderBytes < length) continue;
    std::memcpy(&sum, data.data() + at + 8, 8);
    if (checksum(data.substr(at + kHeaderBytes, length), kind) == sum) return true;
  }
  return false;
}

}  // namespace

BatchEncoder::BatchEncoder(std::string& out) : out_(out), start_(out.size()) {
  out_.append(kHeaderBytes, '\0');
  put(out_, uint32_t{0});  // the count, set by finish()
}

void BatchEncoder::add(const Report& r) {
  KJ_REQUIRE(r.id.size() <= UINT8_MAX, r.id.size());
  put(out_, static_cast<uint8_t>(r.id.size()));
  out_.append(r.id);
  put(out_, r.lat);
  put(out_, r.lon);
  put(out_, r.tsMs);
  put(out_, r.speedMps);
  put(out_, r.headingDeg);
  put(out_, r.accuracyM);
  ++count_;
}

void BatchEncoder::finish() {
  std::memcpy(out_.data() + start_ + kHeaderBytes, &count_, 4);
  const size_t payloadBytes = out_.size() - start_ - kHeaderBytes;
  KJ_REQUIRE(payloadBytes <= kMaxPayloadBytes, payloadBytes);
  const auto length = static_cast<uint32_t>(payloadBytes);
  const auto kind = static_cast<uint32_t>(Kind::kBatch);
  const uint64_t sum = checksum(std::string_view(out_).substr(start_ + kHeaderBytes), kind);
  std::memcpy(out_.data() + start_, &length, 4);
  std::memcpy(out_.data() + start_ + 4, &kind, 4);
  std::memcpy(out_.data() + start_ + 8, &sum, 8);
}

void appendBatch(std::span<const Report> reports, std::string& out) {
  BatchEncoder batch(out);
  for (const Report& r : reports) batch.add(r);
  batch.finish();
}

Scan scan(std::string_view data, const std::function<void(const Report&)>& onReport) {
  Scan s;
  std::vector<Report> reports;
  while (s.validBytes < data.size()) {
    const std::string_view rest = data.substr(s.validBytes);
    if (rest.size() < kHeaderBytes) {
      s.problem =
          fmt::format("a record header cut short ({} of {} bytes)", rest.size(), kHeaderBytes);
      break;
    }
    uint32_t length = 0, kind = 0;
    uint64_t sum = 0;
    std::memcpy(&length, rest.data(), 4);
    std::memcpy(&kind, rest.data() + 4, 4);
    std::memcpy(&sum, rest.data() + 8, 8);
    if (length > kMaxPayloadBytes) {
      s.problem = fmt::format("a record claims {} bytes, more than any record holds", length);
      break;
    }
    if (rest.size() - kHeaderBytes < length) {
      s.problem =
          fmt::format("a record cut short ({} of {} bytes)", rest.size() - kHeaderBytes, length);
      break;
    }
    const std::string_view payload = rest.substr(kHeaderBytes, length);
    if (checksum(payload, kind) != sum) {
      s.problem = "a record whose checksum does not match";
      break;
    }
    if (kind != static_cast<uint32_t>(Kind::kBatch)) {
      s.problem = fmt::format("a record of unknown kind {}", kind);
      break;
    }
    reports.clear();
    if (auto e = decodeBatch(payload, reports)) {
      s.problem = "a malformed record: " + *e;
      break;
    }
    for (const Report& r : reports) onReport(r);
    s.reports += reports.size();
    ++s.records;
    s.validBytes += kHeaderBytes + length;
  }
  if (s.problem) s.atTail = !intactRecordAfter(data, s.validBytes + 1);
  return s;
}

}  // namespace locus::unit::logfmt
