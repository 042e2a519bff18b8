// One NDJSON connection of the text protocol (private to locus::gateway).
#pragma once

#include <kj/async-io.h>

#include <deque>
#include <optional>
#include <string>
#include <string_view>

#include "ingest_service.h"
#include "locus/gateway/acks.h"
#include "locus/gateway/gateway.h"
#include "locus/gateway/router.h"

namespace locus::gateway {

// Reads lines from the stream and answers each with exactly one reply line,
// in order: `{"ok":true}` once its unit stored the report, else the error.
//
// Two loops share the connection. The reader reads a chunk, handles every
// complete line in it (one Acks slot per line), queues the chunk, and reads
// on while fewer than kMaxChunksInFlight chunks wait for their units and
// the router admits more. The writer takes the oldest chunk once all its
// lines are settled and writes their replies. So a slow unit, or a client
// that does not read its replies, stops the reading. A line over
// kMaxLineBytes is skipped up to its newline and answered with an error;
// the connection stays usable.
//
// With device tokens required, the first line must be {"auth":"TOKEN"}
// (answered {"ok":true}); a connection whose first line is not, or whose
// token does not verify, gets the reason and is closed after it. A later
// auth line swaps the scope (a long-lived connection renews its token).
//
// Thread-affinity: the router's thread. Ownership: the connection must
// outlive the promise run() returned.
class TextConnection {
 public:
  // Chunks read whose replies are not written yet, at most (fewer when
  // --max-buffered-bytes asks).
  static constexpr size_t kMaxChunksInFlight = 64;

  // Counts what it accepts and rejects, and itself as open, in
  // context.counters. Reports are admitted with admitReport() at the
  // gateway's clock, within the token's scope.
  TextConnection(kj::Own<kj::AsyncIoStream> stream, IngestContext context);
  ~TextConnection();

  // Serves until the peer closes and every reply is written (resolves), or
  // the stream fails (rejects).
  kj::Promise<void> run();

 private:
  kj::Promise<void> readLoop();
  kj::Promise<void> writeLoop();
  // Resolves when the reader may read again: room in the queue and the
  // router admits more.
  kj::Promise<void> roomToRead();
  // Handles `n` bytes read from the peer.
  void consume(const char* data, size_t n);
  void handleLine(std::string_view line);
  // Handles {"auth":...}: true when `line` is one.
  bool handleAuth(std::string_view line);
  // Answers the current line with an error.
  void reject(std::string_view reason);
  // Answers the current line with `reason`, reads nothing more and closes
  // the connection once the replies so far are written.
  void refuse(std::string_view reason);
  // Queues the lines handled since the last call for the writer.
  void endChunk();
  void wake(kj::Maybe<kj::Own<kj::PromiseFulfiller<void>>>& waiter);

  kj::Own<kj::AsyncIoStream> stream_;
  IngestContext c_;
  std::optional<auth::DeviceScope> scope_;  // logged in (always, with tokens off)
  RateLimit rate_;                          // --max-reports-per-s
  size_t maxChunks_;                        // in flight: --max-buffered-bytes, up to 64
  bool refused_ = false;                    // a login failed: read no more
  std::string partial_;                     // the line so far, when a read ended mid-line
  bool overlong_ = false;                   // skipping the rest of a line over the limit
  // The lines of one chunk read: line i is slot i.
  struct Chunk {
    kj::Own<Acks> acks = kj::refcounted<Acks>(0);
    uint32_t authLines = 0;  // settled ok but not reports: not counted as accepted
  };
  Chunk chunk_;               // being read
  std::deque<Chunk> chunks_;  // read, replies not yet written, oldest first
  bool readDone_ = false;
  kj::Maybe<kj::Own<kj::PromiseFulfiller<void>>> writerWaits_, readerWaits_;
  std::string writing_;  // the replies write() is sending
  char readBuffer_[8192];
};

}  // namespace locus::gateway
