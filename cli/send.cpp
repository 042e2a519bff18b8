#include "send.h"

#include <capnp/ez-rpc.h>
#include <kj/async-io.h>
#include <kj/timer.h>

#include <chrono>
#include <deque>
#include <istream>
#include <ostream>

#include "locus.capnp.h"
#include "locus/common/report_json.h"
#include "locus/common/wire.h"

namespace locus::cli {
namespace {

constexpr size_t kBatchReports = 1000;
constexpr size_t kCallsInFlight = 8;
constexpr size_t kMaxErrorsShown = 100;
constexpr uint64_t kProgressEveryLines = 100'000;
constexpr auto kCallTimeout = 60 * kj::SECONDS;

// One batch on its way: the gateway's per-item rejections carry indexes into
// the batch, which map back to input line numbers.
struct InFlight {
  kj::Promise<capnp::Response<wire::Ingest::ReportResults>> reply;
  std::vector<uint64_t> lines;
};

}  // namespace

nlohmann::ordered_json sendReports(std::istream& in, const std::string& gateway,
                                   std::ostream& progress) {
  capnp::EzRpcClient client(gateway);
  auto ingest = client.getMain<wire::Ingest>();
  auto& waitScope = client.getWaitScope();
  auto& timer = client.getIoProvider().getTimer();

  uint64_t sent = 0, accepted = 0, rejected = 0;
  nlohmann::ordered_json errors = nlohmann::ordered_json::array();
  const auto noteError = [&](uint64_t line, const std::string& message) {
    ++rejected;
    if (errors.size() < kMaxErrorsShown) errors.push_back({{"line", line}, {"error", message}});
  };

  std::deque<InFlight> inFlight;
  const auto settleOldest = [&] {
    InFlight call = kj::mv(inFlight.front());
    inFlight.pop_front();
    auto response = timer.timeoutAfter(kCallTimeout, kj::mv(call.reply)).wait(waitScope);
    const BatchOutcome outcome = readBatchOutcome(response.getResult());
    accepted += outcome.accepted;
    for (const auto& [index, reason] : outcome.rejected) {
      noteError(index < call.lines.size() ? call.lines[index] : 0, reason);
    }
  };

  std::vector<OwnedReport> batch;
  std::vector<uint64_t> batchLines;
  bool anySent = false;
  const auto flush = [&] {
    if (batch.empty()) return;
    auto request = ingest.reportRequest();
    auto out = request.initBatch().initReports(static_cast<unsigned>(batch.size()));
    for (size_t i = 0; i < batch.size(); ++i)
      writeReport(batch[i].view(), out[static_cast<unsigned>(i)]);
    inFlight.push_back(InFlight{request.send(), kj::mv(batchLines)});
    anySent = true;
    batch.clear();
    batchLines = {};
    if (inFlight.size() >= kCallsInFlight) settleOldest();
  };

  const auto started = std::chrono::steady_clock::now();
  std::string line;
  uint64_t lineNo = 0;
  while (std::getline(in, line)) {
    ++lineNo;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;  // blank lines carry nothing
    ++sent;
    auto report = parseReportLine(line);
    if (!report) {
      noteError(lineNo, report.error().message);
    } else {
      batch.push_back(std::move(*report));
      batchLines.push_back(lineNo);
      if (batch.size() >= kBatchReports) flush();
    }
    if (sent % kProgressEveryLines == 0) {
      const double s =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      progress << "locus send: " << sent << " lines, " << static_cast<uint64_t>(sent / s)
               << " lines/s\n";
    }
  }
  flush();
  if (!anySent) {
    // Nothing valid to send: an empty batch still proves the gateway is
    // there, so an unreachable one is reported the same way every time.
    batch.clear();
    inFlight.push_back(InFlight{ingest.reportRequest().send(), {}});
  }
  while (!inFlight.empty()) settleOldest();
  return {{"sent", sent}, {"accepted", accepted}, {"rejected", rejected}, {"errors", errors}};
}

}  // namespace locus::cli
