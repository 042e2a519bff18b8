#include "locus/transport/unit_client.h"

#include <fmt/format.h>

#include "locus/common/wire.h"
#include "locus/transport/frame.h"

namespace locus::transport {

// One request/reply exchange: builds the request, sends it, and waits for
// the reply with the same request id (dropping late replies to requests
// that timed out earlier).
class UnitClient::Call {
 public:
  explicit Call(UnitClient& client)
      : client_(client), request_(message_.initRoot<wire::UnitRequest>()) {
    request_.setRequestId(client_.nextRequestId_++);
  }
  wire::UnitRequest::Builder request() { return request_; }

  // Sends and waits; then `fn(reply)` turns the reply into a result.
  template <typename T, typename Fn>
  Result<T> run(Fn&& fn) {
    client_.socket_.send(toFrame(message_), zmq::send_flags::none);
    const auto deadline = std::chrono::steady_clock::now() + client_.timeout_;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      zmq::pollitem_t item{client_.socket_.handle(), 0, ZMQ_POLLIN, 0};
      if (left.count() <= 0 || zmq::poll(&item, 1, left) == 0) {
        return Error{ErrorCode::kTimeout,
                     fmt::format("no answer from the unit within {} ms", client_.timeout_.count())};
      }
      zmq::message_t frame;
      if (!client_.socket_.recv(frame, zmq::recv_flags::dontwait)) continue;
      FlatMessage in(frame.data(), frame.size());
      if (in.error()) return Error{ErrorCode::kInternal, *in.error()};
      try {
        auto reply = in.root<wire::UnitReply>();
        if (reply.getRequestId() != request_.getRequestId()) continue;  // a late answer
        if (reply.isError()) return readError(reply.getError());
        return fn(reply);
      } catch (const kj::Exception& e) {
        return Error{ErrorCode::kInternal,
                     fmt::format("unreadable reply: {}", e.getDescription().cStr())};
      }
    }
  }

 private:
  UnitClient& client_;
  capnp::MallocMessageBuilder message_;
  wire::UnitRequest::Builder request_;
};

namespace {

Error unexpected() {
  return Error{ErrorCode::kInternal, "the unit answered with the wrong kind"};
}

}  // namespace

UnitClient::UnitClient(zmq::context_t& context, const std::string& endpoint,
                       std::chrono::milliseconds timeout)
    : socket_(context, zmq::socket_type::dealer), timeout_(timeout) {
  socket_.set(zmq::sockopt::linger, 0);
  socket_.set(zmq::sockopt::maxmsgsize, kMaxMessageBytes);
  socket_.connect(endpoint);
}

Result<BatchOutcome> UnitClient::apply(std::span<const Report> reports) {
  Call call(*this);
  auto out = call.request().initApply().initReports(static_cast<unsigned>(reports.size()));
  for (size_t i = 0; i < reports.size(); ++i)
    writeReport(reports[i], out[static_cast<unsigned>(i)]);
  return call.run<BatchOutcome>([](wire::UnitReply::Reader r) -> Result<BatchOutcome> {
    if (!r.isApplied()) return unexpected();
    return readBatchOutcome(r.getApplied());
  });
}

Result<QueryResult> UnitClient::nearest(const NearestQuery& query) {
  Call call(*this);
  writeNearestQuery(query, call.request().initQuery().initNearest());
  return call.run<QueryResult>([](wire::UnitReply::Reader r) -> Result<QueryResult> {
    if (!r.isResult()) return unexpected();
    return readQueryResult(r.getResult());
  });
}

Result<QueryResult> UnitClient::within(const AreaQuery& query) {
  Call call(*this);
  writeAreaQuery(query, call.request().initQuery().initWithin());
  return call.run<QueryResult>([](wire::UnitReply::Reader r) -> Result<QueryResult> {
    if (!r.isResult()) return unexpected();
    return readQueryResult(r.getResult());
  });
}

Result<Hit> UnitClient::get(std::string_view id) {
  Call call(*this);
  call.request().initQuery().setGet(capnp::Text::Reader(id.data(), id.size()));
  return call.run<Hit>([](wire::UnitReply::Reader r) -> Result<Hit> {
    if (!r.isResult()) return unexpected();
    QueryResult result = readQueryResult(r.getResult());
    if (result.hits.size() != 1) return unexpected();
    return std::move(result.hits[0]);
  });
}

Result<UnitStats> UnitClient::stats() {
  Call call(*this);
  call.request().initQuery().setStats();
  return call.run<UnitStats>([](wire::UnitReply::Reader r) -> Result<UnitStats> {
    if (!r.isStats()) return unexpected();
    return readUnitStats(r.getStats());
  });
}

}  // namespace locus::transport
