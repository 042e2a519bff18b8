#include "text_connection.h"

#include <cstring>
#include <nlohmann/json.hpp>
#include <utility>

#include "locus/common/clock.h"
#include "locus/common/report_json.h"

namespace locus::gateway {
namespace {

constexpr std::string_view kOk = "{\"ok\":true}\n";
constexpr std::string_view kLineTooLong = "line is longer than 4096 bytes";
static_assert(kMaxLineBytes == 4096, "kLineTooLong names the limit");

void appendError(std::string& out, std::string_view message) {
  out += "{\"ok\":false,\"error\":";
  // Replace rather than throw on invalid UTF-8 (a message may quote input).
  out += nlohmann::json(std::string(message))
             .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  out += "}\n";
}

}  // namespace

TextConnection::TextConnection(kj::Own<kj::AsyncIoStream> stream, Router& router,
                               ProtocolCounters& counters, int64_t maxFutureSkewMs)
    : stream_(kj::mv(stream)),
      router_(router),
      counters_(counters),
      maxFutureSkewMs_(maxFutureSkewMs) {
  counters_.connections.add(1);
}

TextConnection::~TextConnection() {
  counters_.connections.add(-1);
}

void TextConnection::reject(std::string_view reason) {
  appendError(replies_, reason);
  ++counters_.rejected;
}

kj::Promise<void> TextConnection::run() {
  return stream_->tryRead(readBuffer_, 1, sizeof readBuffer_)
      .then([this](size_t n) -> kj::Promise<void> {
        if (n == 0) {
          // End of stream: an unterminated last line still gets its answer
          // (nc sends one); a line cut mid-way is invalid JSON and changes
          // nothing. The peer may be gone: a failed write ends quietly.
          if (!overlong_ && !partial_.empty()) {
            std::string last = std::move(partial_);
            handleLine(last);
          }
          if (replies_.empty()) return kj::READY_NOW;
          writing_ = std::move(replies_);
          replies_.clear();
          return stream_->write(writing_.data(), writing_.size()).catch_([](kj::Exception&&) {});
        }
        consume(readBuffer_, n);
        return flushReplies().then([this]() { return run(); });
      });
}

kj::Promise<void> TextConnection::flushReplies() {
  if (replies_.empty()) return router_.whenReady();
  writing_ = std::move(replies_);
  replies_.clear();
  return stream_->write(writing_.data(), writing_.size()).then([this]() {
    return router_.whenReady();
  });
}

void TextConnection::consume(const char* data, size_t n) {
  const char* end = data + n;
  while (data < end) {
    const char* newline = static_cast<const char*>(std::memchr(data, '\n', end - data));
    const char* stop = newline ? newline : end;
    if (overlong_) {
      // Skipping: nothing of this line is kept.
    } else if (partial_.empty() && newline) {
      handleLine(std::string_view(data, stop - data));  // the whole line is in this chunk
    } else {
      partial_.append(data, stop - data);
      // One byte of slack for a '\r' before the newline.
      if (partial_.size() > kMaxLineBytes + 1) {
        overlong_ = true;
        partial_.clear();
        partial_.shrink_to_fit();
      } else if (newline) {
        handleLine(partial_);
        partial_.clear();
      }
    }
    if (newline && overlong_) {
      overlong_ = false;
      reject(kLineTooLong);
    }
    data = newline ? newline + 1 : end;
  }
}

void TextConnection::handleLine(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.size() > kMaxLineBytes) {
    reject(kLineTooLong);
    return;
  }
  if (line.empty()) {
    reject("empty line");
    return;
  }
  auto parsed = parseReportLine(line);
  if (!parsed) {
    reject(parsed.error().message);
    return;
  }
  Report report = parsed->view();
  if (auto why = admitReport(report, Admission{wallClockMs(), maxFutureSkewMs_, "gateway"})) {
    reject(*why);
    return;
  }
  if (auto refused = router_.add(report)) {
    reject(*refused);
    return;
  }
  ++counters_.accepted;
  replies_ += kOk;
}

}  // namespace locus::gateway
