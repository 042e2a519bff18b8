#include "locus/server/scatter_gather.h"

#include <capnp/message.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <utility>

#include "locus/common/reduce.h"
#include "locus/common/shard.h"
#include "locus/common/wire.h"

namespace locus::server {

ScatterGather::ScatterGather(zmq::context_t& context, kj::UnixEventPort& eventPort,
                             kj::Timer& timer, const std::vector<std::string>& units,
                             int64_t timeoutMs)
    : timer_(timer), timeoutMs_(timeoutMs) {
  channels_.reserve(units.size());
  for (const auto& endpoint : units) {
    channels_.push_back(std::make_unique<UnitChannel>(context, eventPort, timer, endpoint));
  }
}

size_t ScatterGather::pending() const {
  size_t n = 0;
  for (const auto& c : channels_) n += c->pending();
  return n;
}

kj::Promise<ScatterGather::Replies> ScatterGather::scatter(capnp::MessageBuilder& message) {
  const kj::TimePoint deadline = timer_.now() + timeoutMs_ * kj::MILLISECONDS;
  auto calls =
      kj::heapArrayBuilder<kj::Promise<kj::Maybe<kj::Own<UnitReplyFrame>>>>(channels_.size());
  for (auto& channel : channels_) calls.add(channel->call(message, deadline));
  return kj::joinPromises(calls.finish());
}

std::vector<QueryResult> ScatterGather::resultsOf(Replies& replies, const std::string& what) {
  std::vector<QueryResult> parts;
  parts.reserve(replies.size());
  for (size_t shard = 0; shard < replies.size(); ++shard) {
    KJ_IF_MAYBE (reply, replies[shard]) {
      if ((*reply)->error()) {
        spdlog::warn("{}: shard {} sent an unreadable reply: {}", what, shard, *(*reply)->error());
        continue;
      }
      try {
        auto root = (*reply)->root();
        if (root.isResult()) {
          parts.push_back(readQueryResult(root.getResult()));
        } else if (root.isError()) {
          spdlog::warn("{}: shard {} refused: {}", what, shard,
                       root.getError().getMessage().cStr());
        } else {
          spdlog::warn("{}: shard {} answered with the wrong kind", what, shard);
        }
      } catch (const kj::Exception& e) {
        spdlog::warn("{}: shard {} sent a malformed reply: {}", what, shard,
                     e.getDescription().cStr());
      }
    }
  }
  return parts;
}

kj::Promise<GatheredResult> ScatterGather::nearest(const NearestQuery& query) {
  capnp::MallocMessageBuilder message;
  writeNearestQuery(query, message.initRoot<wire::UnitRequest>().initQuery().initNearest());
  const uint32_t total = shardCount();
  const uint32_t k = query.k;
  return scatter(message).then([total, k](Replies&& replies) {
    std::vector<QueryResult> parts = resultsOf(replies, "nearest");
    const auto answered = static_cast<uint32_t>(parts.size());
    return GatheredResult{mergeNearest(std::move(parts), k), Coverage{total, answered}};
  });
}

kj::Promise<GatheredResult> ScatterGather::within(const AreaQuery& query) {
  capnp::MallocMessageBuilder message;
  writeAreaQuery(query, message.initRoot<wire::UnitRequest>().initQuery().initWithin());
  const uint32_t total = shardCount();
  const uint32_t limit = query.limit;
  const bool countOnly = query.countOnly;
  const bool byDistance = hasCenter(query.area);
  return scatter(message).then([total, limit, countOnly, byDistance](Replies&& replies) {
    std::vector<QueryResult> parts = resultsOf(replies, "within");
    const auto answered = static_cast<uint32_t>(parts.size());
    QueryResult result;
    if (countOnly) {
      result.count = sumCounts(parts);
    } else {
      result = unionArea(std::move(parts), limit, byDistance);
    }
    return GatheredResult{std::move(result), Coverage{total, answered}};
  });
}

kj::Promise<Result<GatheredResult>> ScatterGather::get(const std::string& id) {
  const uint32_t shard = shardOf(id, shardCount());
  capnp::MallocMessageBuilder message;
  message.initRoot<wire::UnitRequest>().initQuery().setGet(
      capnp::Text::Reader(id.data(), id.size()));
  const kj::TimePoint deadline = timer_.now() + timeoutMs_ * kj::MILLISECONDS;
  UnitChannel& channel = *channels_[shard];
  const int64_t timeoutMs = timeoutMs_;
  return channel.call(message, deadline)
      .then([shard, timeoutMs, endpoint = channel.endpoint()](
                kj::Maybe<kj::Own<UnitReplyFrame>>&& maybeReply) -> Result<GatheredResult> {
        KJ_IF_MAYBE (reply, maybeReply) {
          if ((*reply)->error()) {
            return Error{ErrorCode::kInternal,
                         fmt::format("shard {} sent an unreadable reply", shard)};
          }
          try {
            auto root = (*reply)->root();
            if (root.isError()) return readError(root.getError());
            if (root.isResult()) {
              return GatheredResult{readQueryResult(root.getResult()), Coverage{1, 1}};
            }
            return Error{ErrorCode::kInternal,
                         fmt::format("shard {} answered with the wrong kind", shard)};
          } catch (const kj::Exception& e) {
            return Error{ErrorCode::kInternal, fmt::format("shard {} sent a malformed reply: {}",
                                                           shard, e.getDescription().cStr())};
          }
        }
        return Error{ErrorCode::kTimeout,
                     fmt::format("shard {} ({}), which owns this id, did not answer within {} ms",
                                 shard, endpoint, timeoutMs)};
      });
}

kj::Promise<GatheredStats> ScatterGather::stats() {
  capnp::MallocMessageBuilder message;
  message.initRoot<wire::UnitRequest>().initQuery().setStats();
  const uint32_t total = shardCount();
  return scatter(message).then([total](Replies&& replies) {
    GatheredStats out;
    out.shards.total = total;
    for (size_t shard = 0; shard < replies.size(); ++shard) {
      KJ_IF_MAYBE (reply, replies[shard]) {
        if ((*reply)->error()) continue;
        try {
          auto root = (*reply)->root();
          if (root.isStats()) out.units.push_back(readUnitStats(root.getStats()));
        } catch (const kj::Exception& e) {
          spdlog::warn("stats: shard {} sent a malformed reply: {}", shard,
                       e.getDescription().cStr());
        }
      }
    }
    out.shards.answered = static_cast<uint32_t>(out.units.size());
    return out;
  });
}

}  // namespace locus::server
