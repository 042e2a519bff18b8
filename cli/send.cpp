#include "send.h"

#include <chrono>
#include <istream>
#include <ostream>
#include <vector>

#include "locus/client/ingest_client.h"
#include "locus/common/report_json.h"
#include "locus/common/wire.h"

namespace locus::cli {
namespace {

constexpr size_t kMaxErrorsShown = 100;
constexpr uint64_t kProgressEveryLines = 100'000;

// What `locus send` prints: counts, and the first errors by input line.
class Summary {
 public:
  void sent() { ++sent_; }
  uint64_t sentSoFar() const { return sent_; }
  void accepted(uint64_t n) { accepted_ += n; }
  void rejected(uint64_t line, const std::string& message) {
    ++rejected_;
    if (errors_.size() < kMaxErrorsShown) errors_.push_back({{"line", line}, {"error", message}});
  }
  nlohmann::ordered_json json() const {
    return {{"sent", sent_}, {"accepted", accepted_}, {"rejected", rejected_}, {"errors", errors_}};
  }

 private:
  uint64_t sent_ = 0, accepted_ = 0, rejected_ = 0;
  nlohmann::ordered_json errors_ = nlohmann::ordered_json::array();
};

}  // namespace

nlohmann::ordered_json sendReports(std::istream& in, const std::string& gateway,
                                   const client::IngestClient::Options& options,
                                   std::ostream& progress) {
  client::IngestClient ingest(gateway, options);
  Summary summary;
  std::vector<OwnedReport> batch;
  std::vector<uint64_t> batchLines;  // the input line of each report in the batch
  bool anySent = false;
  const auto flush = [&] {
    if (batch.empty() && anySent) return;
    // The gateway's rejections carry indexes into the batch: map them back
    // to input lines.
    ingest.send(
        batch.size(),
        [&](size_t i, wire::Report::Builder out) { writeReport(batch[i].view(), out); },
        [&summary, lines = std::move(batchLines)](const BatchOutcome& outcome) {
          summary.accepted(outcome.accepted);
          for (const auto& [index, reason] : outcome.rejected)
            summary.rejected(index < lines.size() ? lines[index] : 0, reason);
        });
    anySent = true;
    batch.clear();
    batchLines = {};
  };

  const auto started = std::chrono::steady_clock::now();
  std::string line;
  uint64_t lineNo = 0;
  while (std::getline(in, line)) {
    ++lineNo;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;  // blank lines carry nothing
    summary.sent();
    if (auto report = parseReportLine(line); !report) {
      summary.rejected(lineNo, report.error().message);
    } else {
      batch.push_back(std::move(*report));
      batchLines.push_back(lineNo);
      if (batch.size() >= client::kBatchReports) flush();
    }
    if (summary.sentSoFar() % kProgressEveryLines == 0) {
      const double s =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      progress << "locus send: " << summary.sentSoFar() << " lines, "
               << static_cast<uint64_t>(summary.sentSoFar() / s) << " lines/s\n";
    }
  }
  // The last batch; with nothing valid to send, an empty one still proves
  // the gateway is there, so an unreachable one is reported the same way
  // every time.
  flush();
  ingest.flush();
  if (ingest.reconnects() > 0 || ingest.reportsResent() > 0)
    progress << "locus send: reconnected " << ingest.reconnects() << " times and sent "
             << ingest.reportsResent() << " reports again (harmless: the newest ts wins)\n";
  return summary.json();
}

}  // namespace locus::cli
