#include "copier.h"

#include <capnp/message.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "locus/common/wire.h"
#include "locus/transport/curve.h"
#include "locus/transport/frame.h"

namespace locus::unit {

void UnitServer::Copier::start(const CatchUpOrder& order) {
  if (!copies_.empty())
    spdlog::warn("{}: a new catch-up order replaces {} running copies", service_.name(),
                 copies_.size());
  copies_.clear();
  for (const auto& what : order.copies) {
    auto copy = std::make_unique<Copy>();
    copy->what = what;
    copy->socket = std::make_unique<zmq::socket_t>(context_, zmq::socket_type::dealer);
    copy->socket->set(zmq::sockopt::linger, 0);
    copy->socket->set(zmq::sockopt::maxmsgsize, kMaxMessageBytes);
    transport::secureUnitSocket(context_, *copy->socket);
    copy->socket->connect(what.source);
    copy->started = std::chrono::steady_clock::now();
    spdlog::info("{}: catching up {} partitions from {}", service_.name(), what.partitions.size(),
                 what.source);
    ask(*copy);
    copies_.push_back(std::move(copy));
  }
}

void UnitServer::Copier::pollItems(std::vector<zmq::pollitem_t>& items) const {
  for (const auto& copy : copies_) items.push_back({copy->socket->handle(), 0, ZMQ_POLLIN, 0});
}

void UnitServer::Copier::ask(Copy& copy) {
  capnp::MallocMessageBuilder message(64 + copy.what.partitions.size() / 2);
  auto request = message.initRoot<wire::UnitRequest>();
  copy.requestId = nextRequestId_++;
  request.setRequestId(copy.requestId);
  auto dump = request.initDump();
  dump.setCursor(copy.cursor);
  dump.setLimit(kPageSize);
  auto only = dump.initOnly();
  only.setPartitions(service_.partitionStates().partitions());
  auto serve = only.initServe(static_cast<unsigned>(copy.what.partitions.size()));
  for (size_t i = 0; i < copy.what.partitions.size(); ++i)
    serve.set(static_cast<unsigned>(i), copy.what.partitions[i]);
  zmq::message_t frame = transport::toFrame(message);
  // A full queue (the source is down) is one more unanswered page.
  (void)copy.socket->send(frame, zmq::send_flags::dontwait);
  copy.askedAt = std::chrono::steady_clock::now();
}

void UnitServer::Copier::finish(Copy& copy, bool ok, const std::string& why) {
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - copy.started).count();
  if (ok) {
    spdlog::info("{}: copied {} devices of {} partitions from {} in {:.2f} s", service_.name(),
                 copy.devices, copy.what.partitions.size(), copy.what.source, seconds);
  } else {
    spdlog::error(
        "{}: giving up the copy of {} partitions from {} after {:.2f} s: {}; they stay "
        "unserved until a gateway orders them again",
        service_.name(), copy.what.partitions.size(), copy.what.source, seconds, why);
  }
  service_.copyDone(copy.what.partitions, ok, copy.devices);
}

bool UnitServer::Copier::received(Copy& copy, const zmq::message_t& frame) {
  FlatMessage message(frame.data(), frame.size());
  if (message.error()) return true;  // unreadable: the page is asked again at its timeout
  try {
    auto reply = message.root<wire::UnitReply>();
    if (reply.getRequestId() != copy.requestId) return true;  // an old page's late answer
    if (reply.isError()) {
      finish(copy, false,
             fmt::format("the source refused a page: {}", reply.getError().getMessage().cStr()));
      return false;
    }
    if (!reply.isPage()) {
      finish(copy, false, "the source answered a dump with the wrong kind");
      return false;
    }
    auto page = reply.getPage();
    if (copy.epoch != 0 && page.getEpoch() != copy.epoch) {
      // The cursor was a position in another order of the source's devices.
      if (++copy.restarts > kMaxRetries) {
        finish(copy, false, "the source kept restarting or removing devices");
        return false;
      }
      spdlog::info("{}: {} changed under its dump (restart or expiry): starting over",
                   service_.name(), copy.what.source);
      copy.epoch = 0;
      copy.cursor = 0;
      ask(copy);
      return true;
    }
    copy.epoch = page.getEpoch();
    std::vector<Report> reports;
    auto in = page.getReports();
    reports.reserve(in.size());
    for (auto r : in) reports.push_back(readReport(r));
    if (auto error = service_.applyCopied(reports)) {
      finish(copy, false, "cannot store the copy: " + *error);
      return false;
    }
    copy.devices += reports.size();
    copy.retries = 0;
    copy.cursor = page.getCursor();
    if (copy.cursor == 0) {
      finish(copy, true, "");
      return false;
    }
    ask(copy);
    return true;
  } catch (const kj::Exception& e) {
    finish(copy, false, fmt::format("malformed page: {}", e.getDescription().cStr()));
    return false;
  }
}

void UnitServer::Copier::serve() {
  const auto now = std::chrono::steady_clock::now();
  for (size_t i = 0; i < copies_.size();) {
    Copy& copy = *copies_[i];
    bool running = true;
    zmq::message_t frame;
    while (running && copy.socket->recv(frame, zmq::recv_flags::dontwait)) {
      running = received(copy, frame);
    }
    if (running && now - copy.askedAt >= kPageTimeout) {
      if (++copy.retries > kMaxRetries) {
        finish(copy, false,
               fmt::format("no answer to {} requests of {} s each", kMaxRetries,
                           std::chrono::duration_cast<std::chrono::seconds>(kPageTimeout).count()));
        running = false;
      } else {
        ask(copy);  // the same cursor: a page is read, never consumed
      }
    }
    if (running) {
      ++i;
    } else {
      copies_.erase(copies_.begin() + static_cast<std::ptrdiff_t>(i));
    }
  }
}

}  // namespace locus::unit
