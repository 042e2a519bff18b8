#include "locus/common/report.h"

#include <fmt/format.h>

namespace locus {
namespace {

// Length of the UTF-8 sequence starting at s[i], or 0 if it is malformed
// (overlong forms, surrogates and code points above U+10FFFF included).
size_t utf8SequenceLength(std::string_view s, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = byte(i);
  if (c < 0x80) return 1;
  size_t len;
  uint32_t cp;
  if ((c & 0xE0) == 0xC0) {
    len = 2, cp = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3, cp = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4, cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (byte(i + k) & 0x3F);
  }
  static constexpr uint32_t kMinForLength[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMinForLength[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

}  // namespace

std::optional<std::string> validateId(std::string_view id) {
  if (id.empty()) return "id is empty; it needs 1 to 128 bytes of UTF-8";
  if (id.size() > kMaxIdBytes) {
    return fmt::format("id is {} bytes; at most {} are allowed", id.size(), kMaxIdBytes);
  }
  for (size_t i = 0; i < id.size();) {
    const size_t len = utf8SequenceLength(id, i);
    if (len == 0) return fmt::format("id is not valid UTF-8 (byte {})", i);
    const auto c = static_cast<unsigned char>(id[i]);
    // C0 controls and DEL, and the C1 controls U+0080..U+009F (0xC2 0x80..0x9F).
    if ((len == 1 && (c < 0x20 || c == 0x7F)) ||
        (len == 2 && c == 0xC2 && static_cast<unsigned char>(id[i + 1]) < 0xA0)) {
      return fmt::format("id contains a control character (byte {})", i);
    }
    i += len;
  }
  return std::nullopt;
}

std::optional<std::string> validateReport(const Report& r) {
  if (auto error = validateId(r.id)) return error;
  if (!std::isfinite(r.lat) || r.lat < -90 || r.lat > 90) {
    return fmt::format("lat {} is out of range [-90, 90]", r.lat);
  }
  if (!std::isfinite(r.lon) || r.lon < -180 || r.lon > 180) {
    return fmt::format("lon {} is out of range [-180, 180]", r.lon);
  }
  if (r.tsMs < 0) return fmt::format("ts {} is negative; it is ms since the Unix epoch", r.tsMs);
  if (!std::isnan(r.speedMps) && !(std::isfinite(r.speedMps) && r.speedMps >= 0)) {
    return fmt::format("speed_mps {} must be a finite number >= 0", r.speedMps);
  }
  if (!std::isnan(r.headingDeg) &&
      !(std::isfinite(r.headingDeg) && r.headingDeg >= 0 && r.headingDeg < 360)) {
    return fmt::format("heading_deg {} must be in [0, 360)", r.headingDeg);
  }
  if (!std::isnan(r.accuracyM) && !(std::isfinite(r.accuracyM) && r.accuracyM >= 0)) {
    return fmt::format("accuracy_m {} must be a finite number >= 0", r.accuracyM);
  }
  return std::nullopt;
}

std::optional<std::string> admitReport(Report& r, const Admission& a) {
  if (r.tsMs == 0) r.tsMs = a.nowMs;
  if (auto error = validateReport(r)) return error;
  if (a.scope) {
    if (auto why = a.scope->refuse(r.id)) return why;
  }
  // Subtraction first: ts may be near INT64_MAX.
  if (r.tsMs > a.nowMs && r.tsMs - a.nowMs > a.maxFutureSkewMs) {
    return fmt::format(
        "ts {} is {} s ahead of the {}'s clock; at most {} s ahead is accepted "
        "(--max-future-skew): check the device's clock and that ts is in milliseconds",
        r.tsMs, (r.tsMs - a.nowMs) / 1000, a.receiver, a.maxFutureSkewMs / 1000);
  }
  return std::nullopt;
}

}  // namespace locus
