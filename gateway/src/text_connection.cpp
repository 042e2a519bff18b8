#include "text_connection.h"

#include <algorithm>
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

TextConnection::TextConnection(kj::Own<kj::AsyncIoStream> stream, IngestContext context)
    : stream_(kj::mv(stream)),
      c_(context),
      rate_(context.limits.maxReportsPerS),
      maxChunks_(std::clamp<size_t>(context.limits.maxBufferedBytes / sizeof readBuffer_, 1,
                                    kMaxChunksInFlight)) {
  if (!c_.auth.required()) scope_.emplace();
  c_.counters.connections.add(1);
}

TextConnection::~TextConnection() {
  c_.counters.connections.add(-1);
}

void TextConnection::reject(std::string_view reason) {
  chunk_.acks->failed(chunk_.acks->add(), std::string(reason));
}

void TextConnection::refuse(std::string_view reason) {
  reject(reason);
  refused_ = true;
}

void TextConnection::wake(kj::Maybe<kj::Own<kj::PromiseFulfiller<void>>>& waiter) {
  KJ_IF_MAYBE (w, waiter) {
    (*w)->fulfill();
    waiter = nullptr;
  }
}

kj::Promise<void> TextConnection::run() {
  // Done when the writer has answered everything the reader read to the
  // end of the stream; the first failure of either side (a reset peer, one
  // that takes no replies) ends both at once.
  return writeLoop().exclusiveJoin(
      readLoop().then([]() -> kj::Promise<void> { return kj::NEVER_DONE; }));
}

kj::Promise<void> TextConnection::readLoop() {
  if (c_.router.closing()) return kj::NEVER_DONE;  // stopping: read nothing more
  return stream_->tryRead(readBuffer_, 1, sizeof readBuffer_)
      .then([this](size_t n) -> kj::Promise<void> {
        if (n == 0) {
          // End of stream: an unterminated last line still gets its answer
          // (nc sends one); a line cut mid-way is invalid JSON and changes
          // nothing.
          if (!overlong_ && !partial_.empty()) {
            std::string last = std::move(partial_);
            handleLine(last);
          }
          endChunk();
          readDone_ = true;
          wake(writerWaits_);
          return kj::READY_NOW;
        }
        if (c_.router.closing()) return kj::NEVER_DONE;  // read while stopping: not taken
        consume(readBuffer_, n);
        endChunk();
        if (refused_) {
          readDone_ = true;  // the writer answers what was read, then the connection closes
          wake(writerWaits_);
          return kj::READY_NOW;
        }
        return roomToRead().then([this]() { return readLoop(); });
      });
}

kj::Promise<void> TextConnection::roomToRead() {
  // Stopping: nothing more is read; what was read is still answered.
  if (c_.router.closing()) return kj::NEVER_DONE;
  if (chunks_.size() < maxChunks_) return c_.router.whenReady();
  auto paf = kj::newPromiseAndFulfiller<void>();
  readerWaits_ = kj::mv(paf.fulfiller);
  return paf.promise.then([this]() { return roomToRead(); });
}

void TextConnection::endChunk() {
  if (chunk_.acks->slots() == 0) return;
  chunks_.push_back(kj::mv(chunk_));
  chunk_ = Chunk{};
  wake(writerWaits_);
}

kj::Promise<void> TextConnection::writeLoop() {
  if (chunks_.empty()) {
    if (readDone_) return kj::READY_NOW;
    auto paf = kj::newPromiseAndFulfiller<void>();
    writerWaits_ = kj::mv(paf.fulfiller);
    return paf.promise.then([this]() { return writeLoop(); });
  }
  return chunks_.front().acks->done().then([this]() {
    const BatchOutcome outcome = chunks_.front().acks->outcome();
    const size_t lines = chunks_.front().acks->slots();
    writing_.clear();
    auto failure = outcome.rejected.begin();
    for (uint32_t line = 0; line < lines; ++line) {
      if (failure != outcome.rejected.end() && failure->first == line) {
        appendError(writing_, failure->second);
        ++failure;
      } else {
        writing_ += kOk;
      }
    }
    c_.counters.accepted += outcome.accepted - chunks_.front().authLines;
    c_.counters.rejected += outcome.rejected.size();
    return stream_->write(writing_.data(), writing_.size()).then([this]() {
      chunks_.pop_front();
      wake(readerWaits_);
      return writeLoop();
    });
  });
}

void TextConnection::consume(const char* data, size_t n) {
  const char* end = data + n;
  while (data < end && !refused_) {
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
  if (handleAuth(line)) return;
  const int64_t nowMs = wallClockMs();
  if (!scope_) {
    refuse(DeviceAuth::kLoginFirst);
    return;
  }
  if (auto why = c_.auth.revoked(*scope_, nowMs)) {
    refuse(*why);
    return;
  }
  auto parsed = parseReportLine(line);
  if (!parsed) {
    reject(parsed.error().message);
    return;
  }
  Report report = parsed->view();
  if (auto why = admitReport(report, Admission{nowMs, c_.maxFutureSkewMs, "gateway", &*scope_})) {
    reject(*why);
    return;
  }
  const uint32_t slot = chunk_.acks->add();
  if (!rate_.take(nowMs)) {
    refuseOverRate(c_, *chunk_.acks, slot);
    return;
  }
  c_.router.add(report, *chunk_.acks, slot);
}

bool TextConnection::handleAuth(std::string_view line) {
  // Cheap first: a report line has no "auth" member.
  if (line.find("\"auth\"") == std::string_view::npos) return false;
  const auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("auth")) return false;
  if (!j["auth"].is_string() || j.size() != 1) {
    refuse("unauthenticated: an auth line is {\"auth\":\"TOKEN\"}");
    return true;
  }
  auto scope = c_.auth.login(j["auth"].get<std::string>(), wallClockMs());
  if (!scope) {
    refuse(scope.error().message);
    return true;
  }
  scope_ = std::move(*scope);
  const uint32_t slot = chunk_.acks->add();
  chunk_.acks->stored(slot);
  ++chunk_.authLines;
  return true;
}

}  // namespace locus::gateway
