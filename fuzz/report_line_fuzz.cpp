// The gateway's NDJSON report line parser: any bytes give a report or a
// reason, never a crash; a parsed report is valid and survives a round
// trip through reportToJsonLine.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "locus/common/report_json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  auto parsed = locus::parseReportLine(line);
  if (!parsed) return 0;
  const locus::Report r = parsed->view();
  auto again = locus::parseReportLine(locus::reportToJsonLine(r));
  if (!again || again->view().id != r.id) std::abort();  // what we print, we read back
  return 0;
}
