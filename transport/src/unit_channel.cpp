#include "locus/transport/unit_channel.h"

#include <fmt/format.h>
#include <kj/debug.h>
#include <spdlog/spdlog.h>

#include <utility>

#include "locus/transport/curve.h"
#include "locus/transport/frame.h"

namespace locus::transport {
namespace {

// Resets are logged at most this often per channel, with a running count.
constexpr kj::Duration kResetLogInterval = 30 * kj::SECONDS;

}  // namespace

UnitReplyFrame::UnitReplyFrame(zmq::message_t frame)
    : frame_(std::move(frame)), message_(frame_.data(), frame_.size()) {}

Result<wire::UnitReply::Reader> replyOf(UnitCallResult& call, const std::string& unit) {
  if (!call) return call.error();
  UnitReplyFrame& frame = *call;
  if (frame.error()) {
    return Error{ErrorCode::kInternal,
                 fmt::format("unit {} sent an unreadable reply: {}", unit, *frame.error())};
  }
  try {
    auto root = frame.root();
    if (root.isError()) return readError(root.getError());
    return root;
  } catch (const kj::Exception& e) {
    return Error{ErrorCode::kInternal, fmt::format("unit {} sent a malformed reply: {}", unit,
                                                   e.getDescription().cStr())};
  }
}

UnitChannel::UnitChannel(zmq::context_t& context, kj::UnixEventPort& eventPort, kj::Timer& timer,
                         std::string endpoint, int maxQueued)
    : context_(context),
      eventPort_(eventPort),
      endpoint_(std::move(endpoint)),
      timer_(timer),
      maxQueued_(maxQueued),
      lastReply_(timer.now()),
      reading_(nullptr) {
  open();
}

UnitChannel::~UnitChannel() {
  // Stop reading before the socket closes; pending callers see their
  // fulfillers destroyed (a rejection).
  reading_ = nullptr;
  pending_.clear();
}

void UnitChannel::open() {
  reading_ = nullptr;
  observer_ = nullptr;
  socket_ = std::make_unique<zmq::socket_t>(context_, zmq::socket_type::dealer);
  socket_->set(zmq::sockopt::linger, 0);
  socket_->set(zmq::sockopt::maxmsgsize, kMaxMessageBytes);
  socket_->set(zmq::sockopt::sndhwm, maxQueued_);
  secureUnitSocket(context_, *socket_);
  socket_->connect(endpoint_);
  observer_ = kj::heap<kj::UnixEventPort::FdObserver>(eventPort_, socket_->get(zmq::sockopt::fd),
                                                      kj::UnixEventPort::FdObserver::OBSERVE_READ);
  outstanding_ = 0;
  lastReply_ = timer_.now();
  reading_ = readLoop().eagerlyEvaluate([this](kj::Exception&& e) {
    spdlog::error("unit {}: reply reader stopped: {}", endpoint_, e.getDescription().cStr());
  });
}

void UnitChannel::reset(const std::string& why) {
  ++health_.resets;
  health_.answering = false;
  const kj::TimePoint now = timer_.now();
  if (resetsLogged_ == 0 || now - lastResetLog_ >= kResetLogInterval) {
    spdlog::warn("unit {}: {}; opened a new connection (resets so far: {})", endpoint_, why,
                 health_.resets.value());
    lastResetLog_ = now;
  }
  ++resetsLogged_;
  auto waiting = std::move(pending_);
  pending_.clear();
  open();
  for (auto& [id, fulfiller] : waiting) {
    fulfiller->fulfill(Error{ErrorCode::kUnavailable,
                             fmt::format("the connection to unit {} broke: {}", endpoint_, why)});
  }
}

bool UnitChannel::trySend(zmq::message_t& frame) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    zmq::send_result_t sent;
    try {
      sent = socket_->send(frame, zmq::send_flags::dontwait);
    } catch (const zmq::error_t& e) {
      spdlog::warn("unit {}: send failed: {}", endpoint_, e.what());
      return false;
    }
    if (sent) {
      ++outstanding_;
      return true;
    }
    // Fewer outstanding than the queue holds, yet no room: ZeroMQ dropped
    // the connection for good. Or the queue is full and nothing came back
    // for long: the connection is as good as broken.
    if (attempt > 0) return false;
    // ZeroMQ's writer sees the queue drain only in steps, so "fewer
    // outstanding" counts only once no reply came for a while.
    const kj::Duration silent = timer_.now() - lastReply_;
    if (outstanding_ < static_cast<uint64_t>(maxQueued_) && silent >= kDroppedAfter) {
      reset(
          fmt::format("could not queue a request with {} outstanding (the connection was "
                      "dropped, e.g. for a message over {} bytes)",
                      outstanding_, kMaxMessageBytes));
    } else if (timer_.now() - lastReply_ >= kStuckResetAfter) {
      reset(fmt::format("no reply for {} s with {} requests queued",
                        (timer_.now() - lastReply_) / kj::SECONDS, outstanding_));
    } else {
      return false;
    }
  }
  return false;
}

kj::Promise<UnitCallResult> UnitChannel::call(capnp::MessageBuilder& message,
                                              kj::TimePoint deadline) {
  kj::Promise<UnitCallResult> expiry = timer_.atTime(deadline).then([this]() -> UnitCallResult {
    return Error{ErrorCode::kTimeout, fmt::format("unit {} did not answer in time", endpoint_)};
  });
  return callUnbounded(message).exclusiveJoin(kj::mv(expiry));
}

kj::Promise<UnitCallResult> UnitChannel::callUnbounded(capnp::MessageBuilder& message) {
  const uint64_t id = nextRequestId_++;
  message.getRoot<wire::UnitRequest>().setRequestId(id);
  zmq::message_t frame = toFrame(message);

  const bool sent = trySend(frame);
  if (!sent) health_.answering = false;
  // Pending before the drain, which may already find the reply. (Not before
  // the send: a reset there resolves every pending call.)
  auto paf = kj::newPromiseAndFulfiller<UnitCallResult>();
  if (sent) pending_.emplace(id, kj::mv(paf.fulfiller));
  // Sending may have consumed the fd's edge for replies already queued.
  drain();
  if (!sent) {
    return UnitCallResult(
        Error{ErrorCode::kOverloaded,
              fmt::format("unit {} cannot take the request: {} wait for it already (it is down or "
                          "not keeping up)",
                          endpoint_, outstanding_)});
  }
  // However it ends (reply, reset, or the caller dropping the promise at its
  // deadline), the id stops being pending: a reply after that is dropped as
  // late. Still pending when dropped means unanswered.
  return paf.promise.attach(kj::defer([this, id]() {
    if (pending_.erase(id) > 0) health_.answering = false;
  }));
}

kj::Promise<void> UnitChannel::readLoop() {
  return observer_->whenBecomesReadable().then([this]() {
    drain();
    return readLoop();
  });
}

void UnitChannel::drain() {
  while (socket_->get(zmq::sockopt::events) & ZMQ_POLLIN) {
    zmq::message_t frame;
    if (!socket_->recv(frame, zmq::recv_flags::dontwait)) break;
    if (outstanding_ > 0) --outstanding_;
    lastReply_ = timer_.now();
    if (frame.more()) {
      // Units answer with one frame; skip the rest of anything else.
      ++health_.repliesDropped;
      while (socket_->get(zmq::sockopt::rcvmore)) {
        zmq::message_t rest;
        if (!socket_->recv(rest, zmq::recv_flags::dontwait)) break;
      }
      continue;
    }
    auto reply = kj::heap<UnitReplyFrame>(std::move(frame));
    uint64_t id = 0;
    if (!reply->error()) {
      try {
        id = reply->root().getRequestId();
      } catch (const kj::Exception&) {
        id = 0;
      }
    }
    auto it = pending_.find(id);
    if (id == 0 || it == pending_.end()) {
      ++health_.repliesDropped;  // late, unreadable, or not ours
      if (id != 0 && id < nextRequestId_ && onLateReply_) {
        try {
          onLateReply_(id, reply->root());
        } catch (const kj::Exception& e) {
          spdlog::warn("unit {}: malformed late reply: {}", endpoint_, e.getDescription().cStr());
        }
      }
      continue;
    }
    Fulfiller fulfiller = kj::mv(it->second);
    pending_.erase(it);
    health_.answering = true;
    fulfiller->fulfill(UnitCallResult(kj::mv(reply)));
  }
}

}  // namespace locus::transport
