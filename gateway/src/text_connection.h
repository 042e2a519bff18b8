// One NDJSON connection of the text protocol (private to locus::gateway).
#pragma once

#include <kj/async-io.h>

#include <string>
#include <string_view>

#include "locus/gateway/gateway.h"
#include "locus/gateway/router.h"

namespace locus::gateway {

// Reads lines from the stream and answers each with exactly one reply line,
// in order. Reads a chunk, handles every complete line in it, writes all
// their replies at once, then waits for the router to admit more before it
// reads again (a slow unit or a client that does not read its replies stops
// the reading). A line over kMaxLineBytes is skipped up to its newline and
// answered with an error; the connection stays usable.
//
// Thread-affinity: the router's thread. Ownership: the connection must
// outlive the promise run() returned.
class TextConnection {
 public:
  // Counts what it accepts and rejects, and itself as open, in `counters`.
  // Reports are admitted with admitReport() at the gateway's clock.
  TextConnection(kj::Own<kj::AsyncIoStream> stream, Router& router, ProtocolCounters& counters,
                 int64_t maxFutureSkewMs);
  ~TextConnection();

  // Serves until the peer closes (resolves) or the stream fails (rejects).
  kj::Promise<void> run();

 private:
  // Handles `n` bytes read from the peer, appending replies to replies_.
  void consume(const char* data, size_t n);
  // Sends replies_ (if any), then waits until the router admits more.
  kj::Promise<void> flushReplies();
  void handleLine(std::string_view line);
  // Answers the current line with an error.
  void reject(std::string_view reason);

  kj::Own<kj::AsyncIoStream> stream_;
  Router& router_;
  ProtocolCounters& counters_;
  int64_t maxFutureSkewMs_;
  std::string partial_;    // the line so far, when a read ended mid-line
  bool overlong_ = false;  // skipping the rest of a line over the limit
  std::string replies_;    // replies not yet handed to write()
  std::string writing_;    // the replies write() is sending
  char readBuffer_[8192];
};

}  // namespace locus::gateway
