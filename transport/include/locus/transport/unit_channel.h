// Asynchronous request/reply with one location unit over ZeroMQ, inside a
// KJ event loop: many requests in flight at once, each answered by a
// promise that resolves to the unit's reply or to nothing at its deadline.
// Used by the server's scatter/gather, the gateway's router and the
// health probes of both.
#pragma once

#include <capnp/message.h>
#include <kj/async-io.h>
#include <kj/async-unix.h>
#include <kj/async.h>
#include <kj/debug.h>
#include <kj/time.h>
#include <kj/timer.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <zmq.hpp>

#include "locus.capnp.h"
#include "locus/common/metrics.h"
#include "locus/common/status.h"
#include "locus/common/wire.h"

namespace locus::transport {

// One UnitReply frame, read in place. Not movable (the reader views the
// frame's bytes), so it travels as kj::Own.
class UnitReplyFrame {
 public:
  explicit UnitReplyFrame(zmq::message_t frame);
  UnitReplyFrame(const UnitReplyFrame&) = delete;
  UnitReplyFrame& operator=(const UnitReplyFrame&) = delete;

  // Why the frame is not a Cap'n Proto message, or nothing.
  const std::optional<std::string>& error() const { return message_.error(); }

  // Precondition: !error(). May throw kj::Exception on a malformed reply.
  wire::UnitReply::Reader root() { return message_.root<wire::UnitReply>(); }

 private:
  zmq::message_t frame_;  // owns the bytes message_ views; declared first
  FlatMessage message_;
};

// What one call to a unit came to: the reply frame, or why there is none —
// overloaded (it could not be queued: the unit is down or not keeping up,
// and its queue is full), timeout (no reply by the deadline) or unavailable
// (the connection broke while the call waited; the unit may have acted).
// (A class of its own rather than Result<kj::Own<...>>: inside KJ's promise
// machinery GCC 12 takes the std::variant for uninitialized.)
class UnitCallResult {
 public:
  UnitCallResult(kj::Own<UnitReplyFrame> frame) : frame_(kj::mv(frame)) {}
  UnitCallResult(Error error) : error_(std::move(error)) {}

  // Whether there is a reply.
  explicit operator bool() const { return frame_.get() != nullptr; }
  // Preconditions: a reply (*), no reply (error()).
  UnitReplyFrame& operator*() {
    KJ_REQUIRE(frame_.get() != nullptr, "no reply", error_.message.c_str());
    return *frame_;
  }
  const Error& error() const {
    KJ_REQUIRE(frame_.get() == nullptr, "there is a reply");
    return error_;
  }

 private:
  kj::Own<UnitReplyFrame> frame_;  // null when there is no reply
  Error error_;
};

// The reply of `call` read and checked, the one decoder every caller uses:
// the call's own error; internal for an unreadable or malformed reply; the
// unit's `error` reply as the unit sent it (its code and message); else the
// reply, whose kind the caller checks. Throws nothing. The reader views the
// frame that `call` holds. `unit` names the unit in messages.
Result<wire::UnitReply::Reader> replyOf(UnitCallResult& call, const std::string& unit);

// A DEALER socket connected to one unit's ROUTER endpoint, serviced by the
// KJ event loop of the thread that constructs it.
//
// Thread-affinity: construct, call and destroy on one thread, the one that
// runs `eventPort`'s loop. Ownership: the channel must outlive every promise
// call() returned; destroying it rejects the promises still pending.
//
// Request ids are the channel's own (1, 2, ...): call() overwrites the
// request's requestId. A reply whose id matches no pending call (it came
// after its deadline, or is unreadable) is dropped and counted.
//
// A broken channel mends itself. ZeroMQ gives up on a connection for good
// when the peer breaks the protocol (a frame over ZMQ_MAXMSGSIZE, say):
// every later send fails at once. A send that fails while fewer requests
// are outstanding than the queue holds, with no reply for kDroppedAfter,
// means that, so the channel then opens a new socket, logs it and counts it
// (resets()); so it does when the queue stays full with no reply for
// kStuckResetAfter. Requests waiting
// on the old socket resolve to `unavailable`.
class UnitChannel {
 public:
  // Connects (ZeroMQ connects lazily and reconnects by itself, so a unit
  // that is down is not an error here). Throws zmq::error_t on a malformed
  // endpoint.
  // `maxQueued` bounds the requests ZeroMQ queues for a unit that is down
  // or slow (ZMQ_SNDHWM); past it call() resolves to `overloaded` at once.
  UnitChannel(zmq::context_t& context, kj::UnixEventPort& eventPort, kj::Timer& timer,
              std::string endpoint, int maxQueued = 1000);
  ~UnitChannel();
  UnitChannel(const UnitChannel&) = delete;
  UnitChannel& operator=(const UnitChannel&) = delete;

  // Sends `message` (whose root is a UnitRequest) to the unit and resolves
  // to its reply, or to why there is none (UnitCallResult: timeout when no
  // reply arrived by `deadline`). Never rejects for the unit's failures. The
  // message is serialized before call() returns, so the caller may reuse it
  // (for the next unit) at once.
  kj::Promise<UnitCallResult> call(capnp::MessageBuilder& message, kj::TimePoint deadline);

  // As call(), without a deadline of its own: resolves to the reply, to
  // `overloaded` at once when the request could not be queued, and
  // otherwise waits until the caller drops the promise (which forgets the
  // request). For a caller that bounds many calls by one timer
  // (ScatterGather).
  kj::Promise<UnitCallResult> callUnbounded(capnp::MessageBuilder& message);

  const std::string& endpoint() const { return endpoint_; }
  // Called with each readable reply to a request of this channel that is no
  // longer pending (its caller gave up at the deadline), with that
  // request's id (as call() wrote it into the message).
  using LateReplyHandler = std::function<void(uint64_t requestId, wire::UnitReply::Reader)>;
  void onLateReply(LateReplyHandler handler) { onLateReply_ = std::move(handler); }
  // Calls waiting for a reply now.
  size_t pending() const { return pending_.size(); }

  // What became of the channel, for /readyz and /metrics: any thread may
  // read it.
  struct Health {
    // False from a request that went unanswered (unsendable, or dropped at
    // its deadline) until the next reply.
    std::atomic<bool> answering{true};
    metrics::Counter resets;  // new sockets opened for a broken connection
    // Replies no caller waited for any more: late (after their deadline),
    // unreadable, or of several frames.
    metrics::Counter repliesDropped;
  };
  const Health& health() const { return health_; }

  // A send that fails with fewer requests outstanding than the queue holds
  // means a dropped connection once no reply came for this long...
  static constexpr kj::Duration kDroppedAfter = 1 * kj::SECONDS;
  // ... and a full queue with no reply for this long is treated as broken too.
  static constexpr kj::Duration kStuckResetAfter = 5 * kj::SECONDS;

 private:
  using Fulfiller = kj::Own<kj::PromiseFulfiller<UnitCallResult>>;

  // A new socket connected to the endpoint, and its reader.
  void open();
  // Drops the socket and every pending call (resolved to nothing), then
  // opens a new one.
  void reset(const std::string& why);
  // Sends `frame`, mending a broken connection once; false when it could
  // not be queued.
  bool trySend(zmq::message_t& frame);
  // Waits for the ZeroMQ fd to signal, drains, and repeats; runs for the
  // socket's life.
  kj::Promise<void> readLoop();
  // Receives every queued reply. ZMQ_FD is edge-triggered and is reset by
  // any operation on the socket, so this runs after every wake and every
  // send, until ZMQ_EVENTS shows no more input.
  void drain();

  zmq::context_t& context_;
  kj::UnixEventPort& eventPort_;
  std::string endpoint_;
  kj::Timer& timer_;
  int maxQueued_;
  std::unique_ptr<zmq::socket_t> socket_;
  kj::Own<kj::UnixEventPort::FdObserver> observer_;  // of socket_'s fd
  uint64_t nextRequestId_ = 1;
  uint64_t outstanding_ = 0;  // sent on this socket and not answered (late replies count)
  kj::TimePoint lastReply_;   // or when the socket was opened
  uint64_t resetsLogged_ = 0;
  kj::TimePoint lastResetLog_ = kj::origin<kj::TimePoint>();
  Health health_;
  LateReplyHandler onLateReply_;
  std::unordered_map<uint64_t, Fulfiller> pending_;  // request id → its caller
  kj::Promise<void> reading_;                        // readLoop(); declared last
};

}  // namespace locus::transport
