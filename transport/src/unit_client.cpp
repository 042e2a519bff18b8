#include "locus/transport/unit_client.h"

#include <fmt/format.h>

#include "locus/common/wire.h"
#include "locus/transport/curve.h"
#include "locus/transport/frame.h"
#include "locus/transport/poll.h"

namespace locus::transport {
namespace {

Error unexpected() {
  return Error{ErrorCode::kInternal, "the unit answered with the wrong kind"};
}

}  // namespace

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
  // The request as one query (a UnitRequest.queries of one).
  wire::Query::Builder query() { return request_.initQueries(1)[0]; }

  // Sends the query and waits; then `fn(answer)` turns its answer, unless
  // an error, into a result.
  template <typename T, typename Fn>
  Result<T> runQuery(Fn&& fn) {
    return run<T>([&fn](wire::UnitReply::Reader r) -> Result<T> {
      if (!r.isAnswers() || r.getAnswers().size() != 1) return unexpected();
      const auto answer = r.getAnswers()[0];
      if (answer.isError()) return readError(answer.getError());
      return fn(answer);
    });
  }

  // Sends and waits; then `fn(reply)` turns the reply into a result.
  template <typename T, typename Fn>
  Result<T> run(Fn&& fn) {
    client_.socket_.send(toFrame(message_), zmq::send_flags::none);
    const auto deadline = std::chrono::steady_clock::now() + client_.timeout_;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      zmq::pollitem_t item{client_.socket_.handle(), 0, ZMQ_POLLIN, 0};
      if (left.count() <= 0 || pollThroughSignals(&item, 1, left) == 0) {
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

UnitClient::UnitClient(zmq::context_t& context, const std::string& endpoint,
                       std::chrono::milliseconds timeout)
    : socket_(context, zmq::socket_type::dealer), timeout_(timeout) {
  socket_.set(zmq::sockopt::linger, 0);
  socket_.set(zmq::sockopt::maxmsgsize, kMaxMessageBytes);
  secureUnitSocket(context, socket_);
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

namespace {

Result<QueryResult> resultOf(wire::QueryAnswer::Reader a) {
  if (!a.isResult()) return unexpected();
  return readQueryResult(a.getResult());
}

}  // namespace

Result<QueryResult> UnitClient::nearest(const NearestQuery& query) {
  Call call(*this);
  writeNearestQuery(query, call.query().initNearest());
  return call.runQuery<QueryResult>(resultOf);
}

Result<QueryResult> UnitClient::within(const AreaQuery& query) {
  Call call(*this);
  writeAreaQuery(query, call.query().initWithin());
  return call.runQuery<QueryResult>(resultOf);
}

Result<Hit> UnitClient::get(std::string_view id) {
  Call call(*this);
  call.query().setGet(capnp::Text::Reader(id.data(), id.size()));
  return call.runQuery<Hit>([](wire::QueryAnswer::Reader a) -> Result<Hit> {
    auto result = resultOf(a);
    if (!result) return result.error();
    if (result->hits.size() != 1) return unexpected();
    return std::move(result->hits[0]);
  });
}

Result<UnitStats> UnitClient::stats() {
  Call call(*this);
  call.query().setStats();
  return call.runQuery<UnitStats>([](wire::QueryAnswer::Reader a) -> Result<UnitStats> {
    if (!a.isStats()) return unexpected();
    return readUnitStats(a.getStats());
  });
}

}  // namespace locus::transport
