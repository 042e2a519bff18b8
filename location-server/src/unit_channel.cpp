#include "locus/server/unit_channel.h"

#include <kj/debug.h>
#include <spdlog/spdlog.h>

#include <utility>

namespace locus::server {

UnitReplyFrame::UnitReplyFrame(zmq::message_t frame)
    : frame_(std::move(frame)), message_(frame_.data(), frame_.size()) {}

UnitChannel::UnitChannel(zmq::context_t& context, kj::UnixEventPort& eventPort, kj::Timer& timer,
                         std::string endpoint, int maxQueued)
    : socket_(context, zmq::socket_type::dealer),
      endpoint_(std::move(endpoint)),
      timer_(timer),
      observer_(eventPort, socket_.get(zmq::sockopt::fd),
                kj::UnixEventPort::FdObserver::OBSERVE_READ),
      reading_(nullptr) {
  socket_.set(zmq::sockopt::linger, 0);
  socket_.set(zmq::sockopt::maxmsgsize, kMaxMessageBytes);
  socket_.set(zmq::sockopt::sndhwm, maxQueued);
  socket_.connect(endpoint_);
  reading_ = readLoop().eagerlyEvaluate([this](kj::Exception&& e) {
    spdlog::error("unit {}: reply reader stopped: {}", endpoint_, e.getDescription().cStr());
  });
}

UnitChannel::~UnitChannel() {
  // Stop reading before the socket closes; pending callers see their
  // fulfillers destroyed (a rejection).
  reading_ = nullptr;
  pending_.clear();
}

kj::Promise<kj::Maybe<kj::Own<UnitReplyFrame>>> UnitChannel::call(capnp::MessageBuilder& message,
                                                                  kj::TimePoint deadline) {
  kj::Promise<kj::Maybe<kj::Own<UnitReplyFrame>>> expiry =
      timer_.atTime(deadline).then([]() -> kj::Maybe<kj::Own<UnitReplyFrame>> { return nullptr; });
  return callUnbounded(message).exclusiveJoin(kj::mv(expiry));
}

kj::Promise<kj::Maybe<kj::Own<UnitReplyFrame>>> UnitChannel::callUnbounded(
    capnp::MessageBuilder& message) {
  const uint64_t id = nextRequestId_++;
  message.getRoot<wire::UnitRequest>().setRequestId(id);
  zmq::message_t frame = toFrame(message);

  auto paf = kj::newPromiseAndFulfiller<kj::Own<UnitReplyFrame>>();
  pending_.emplace(id, kj::mv(paf.fulfiller));
  zmq::send_result_t sent;
  try {
    sent = socket_.send(frame, zmq::send_flags::dontwait);
  } catch (const zmq::error_t& e) {
    spdlog::warn("unit {}: send failed: {}", endpoint_, e.what());
  }
  // Sending may have consumed the fd's edge for replies already queued.
  drain();
  if (!sent) {
    pending_.erase(id);
    return kj::Maybe<kj::Own<UnitReplyFrame>>(nullptr);
  }

  // However it ends (reply, or the caller dropping the promise at its
  // deadline), the id stops being pending: a reply after that is dropped as
  // late.
  return paf.promise
      .then([](kj::Own<UnitReplyFrame>&& r) -> kj::Maybe<kj::Own<UnitReplyFrame>> {
        return kj::mv(r);
      })
      .attach(kj::defer([this, id]() { pending_.erase(id); }));
}

kj::Promise<void> UnitChannel::readLoop() {
  return observer_.whenBecomesReadable().then([this]() {
    drain();
    return readLoop();
  });
}

void UnitChannel::drain() {
  while (socket_.get(zmq::sockopt::events) & ZMQ_POLLIN) {
    zmq::message_t frame;
    if (!socket_.recv(frame, zmq::recv_flags::dontwait)) break;
    if (frame.more()) {
      // Units answer with one frame; skip the rest of anything else.
      ++dropped_;
      while (socket_.get(zmq::sockopt::rcvmore)) {
        zmq::message_t rest;
        if (!socket_.recv(rest, zmq::recv_flags::dontwait)) break;
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
      ++dropped_;  // late, unreadable, or not ours
      continue;
    }
    Fulfiller fulfiller = kj::mv(it->second);
    pending_.erase(it);
    fulfiller->fulfill(kj::mv(reply));
  }
}

}  // namespace locus::server
