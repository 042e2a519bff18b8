#include "locus/server/location_service.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <string>
#include <string_view>
#include <utility>

#include "locus/common/report.h"
#include "locus/common/wire.h"

namespace locus::server {
namespace {

using Clock = std::chrono::steady_clock;

uint64_t elapsedUs(Clock::time_point since) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - since).count());
}

void writeAnswer(const GatheredResult& gathered, Clock::time_point started,
                 wire::QueryResult::Builder b) {
  writeQueryResult(gathered.result, b);
  b.setPartial(gathered.shards.partial());
  writeCoverage(gathered.shards, b.initShards());
  b.setTookUs(elapsedUs(started));
}

// Counts one finished call, from what its results hold.
template <typename Context>
void tally(Context& context, Method method, Clock::time_point started, ServiceCounters& counters) {
  auto results = context.getResults();
  bool partial = false;
  if (!results.hasError()) {
    if constexpr (requires { results.getResult(); }) {
      partial = results.hasResult() && results.getResult().getPartial();
    } else if constexpr (requires { results.getResults(); }) {
      for (auto r : results.getResults()) partial = partial || r.getPartial();
    } else {
      auto shards = results.getStats().getShards();
      partial = shards.getAnswered() < shards.getTotal();
    }
  }
  counters.record(method, results.hasError(), partial,
                  std::chrono::duration<double>(Clock::now() - started).count());
}

// The one place where a call's failures become its typed `error`:
// `read(started, scope)`, given when the call arrived, runs now and turns the
// parameters into a promise of the answer (a kj::Exception from it means
// the parameters were malformed: badRequest); a failure of that promise is
// a bug of ours (internal). The call itself always succeeds. Every call is
// counted once it has its results.
// Writes `error` as the call's answer.
template <typename Context>
kj::Promise<void> refused(Context& context, const Error& error) {
  writeError(error, context.getResults().initError());
  return kj::READY_NOW;
}

// `scope` is the caller's API key checked (ClientAuth): refused as it says,
// or handed to `read(started, scope)`.
template <typename Context, typename Read>
kj::Promise<void> answer(Context context, Method method, ServiceCounters& counters,
                         const Result<auth::ClientScope>& scope, Read&& read) {
  const auto started = Clock::now();
  const char* name = kMethodNames[static_cast<size_t>(method)];
  kj::Promise<void> work = nullptr;
  try {
    work = scope ? read(started, *scope) : refused(context, scope.error());
  } catch (const kj::Exception& e) {
    writeError(badRequest(fmt::format("malformed {} request: {}", name, e.getDescription().cStr())),
               context.initResults().initError());
    tally(context, method, started, counters);
    return kj::READY_NOW;
  }
  return work
      .catch_([context, name](kj::Exception&& e) mutable {
        spdlog::error("{} failed: {}", name, e.getDescription().cStr());
        writeError(Error{ErrorCode::kInternal,
                         fmt::format("{} failed: {}", name, e.getDescription().cStr())},
                   context.initResults().initError());
      })
      .then([context, method, started, &counters]() mutable {
        tally(context, method, started, counters);
      });
}

}  // namespace

void ServiceCounters::expose(metrics::Registry& r) const {
  r.gauge("locus_server_streams_open", "HTTP position streams open (/v1/stream)", {}, streams);
  for (size_t m = 0; m < kMethodNames.size(); ++m) {
    const metrics::Labels kind{{"kind", kMethodNames[m]}};
    r.counter("locus_server_queries_total", "Queries the server answered, by kind", kind, calls[m]);
    r.counter("locus_server_query_errors_total",
              "Queries answered with an error (bad request, not found, timeout...), by kind", kind,
              errors[m]);
    r.counter("locus_server_partial_answers_total",
              "Queries answered without every unit (one missed the deadline), by kind", kind,
              partial[m]);
    r.histogram("locus_server_query_duration_seconds",
                "Time from a query's arrival to its answer, by kind", kind, seconds[m]);
  }
}

void ServiceCounters::record(Method method, bool error, bool partialAnswer, double s) {
  const auto m = static_cast<size_t>(method);
  ++calls[m];
  if (error) ++errors[m];
  if (partialAnswer) ++partial[m];
  seconds[m].observe(s);
}

kj::Promise<void> LocationServiceImpl::nearest(NearestContext context) {
  return answer(
      context, Method::kNearest, counters_, auth_.check(key_),
      [&](Clock::time_point started, const auth::ClientScope& scope) -> kj::Promise<void> {
        auto query = readNearestQuery(context.getParams().getQuery());
        if (!query) return refused(context, query.error());
        if (auto e = restrictToScope(scope, query->idPrefix)) return refused(context, *e);
        return cluster_.nearest(*query).then([context, started](GatheredResult&& g) mutable {
          writeAnswer(g, started, context.getResults().initResult());
        });
      });
}

kj::Promise<void> LocationServiceImpl::within(WithinContext context) {
  return answer(
      context, Method::kWithin, counters_, auth_.check(key_),
      [&](Clock::time_point started, const auth::ClientScope& scope) -> kj::Promise<void> {
        auto query = readAreaQuery(context.getParams().getQuery());
        if (!query) return refused(context, query.error());
        if (auto e = restrictToScope(scope, query->idPrefix)) return refused(context, *e);
        return cluster_.within(*query).then([context, started](Result<GatheredResult>&& r) mutable {
          if (!r) return writeError(r.error(), context.getResults().initError());
          writeAnswer(*r, started, context.getResults().initResult());
        });
      });
}

kj::Promise<void> LocationServiceImpl::get(GetContext context) {
  return answer(
      context, Method::kGet, counters_, auth_.check(key_),
      [&](Clock::time_point started, const auth::ClientScope& scope) -> kj::Promise<void> {
        const auto text = context.getParams().getId();
        std::string id(text.begin(), text.size());
        if (auto problem = validateId(id)) return refused(context, badRequest(*problem));
        if (auto e = checkGet(scope, id)) return refused(context, *e);
        return cluster_.get(id).then([context, started](Result<GatheredResult>&& r) mutable {
          if (!r) return writeError(r.error(), context.getResults().initError());
          writeAnswer(*r, started, context.getResults().initResult());
        });
      });
}

kj::Promise<void> LocationServiceImpl::stats(StatsContext context) {
  return answer(context, Method::kStats, counters_, auth_.check(key_),
                [&](Clock::time_point, const auth::ClientScope& scope) -> kj::Promise<void> {
                  if (auto e = checkStats(scope)) return refused(context, *e);
                  return cluster_.stats().then([context](ClusterStats&& g) mutable {
                    auto out = context.getResults().initStats();
                    auto units = out.initUnits(static_cast<unsigned>(g.units.size()));
                    for (size_t i = 0; i < g.units.size(); ++i) {
                      writeUnitStats(g.units[i], units[static_cast<unsigned>(i)]);
                    }
                    writeCoverage(g.shards, out.initShards());
                    out.setPartitions(g.partitions);
                    out.setReplicas(g.replicas);
                  });
                });
}

kj::Promise<void> LocationServiceImpl::nearestMany(NearestManyContext context) {
  return answer(
      context, Method::kNearestMany, counters_, auth_.check(key_),
      [&](Clock::time_point started, const auth::ClientScope& scope) -> kj::Promise<void> {
        auto many = readNearestMany(context.getParams().getQuery());
        if (!many) return refused(context, many.error());
        if (auto e = restrictToScope(scope, many->each.idPrefix)) return refused(context, *e);
        auto calls = kj::heapArrayBuilder<kj::Promise<GatheredResult>>(many->points.size());
        for (size_t i = 0; i < many->points.size(); ++i) calls.add(cluster_.nearest(many->at(i)));
        return kj::joinPromises(calls.finish())
            .then([context, started](kj::Array<GatheredResult>&& all) mutable {
              auto out = context.getResults().initResults(static_cast<unsigned>(all.size()));
              for (size_t i = 0; i < all.size(); ++i)
                writeAnswer(all[i], started, out[static_cast<unsigned>(i)]);
            });
      });
}

kj::Promise<void> LocationServiceImpl::withinMany(WithinManyContext context) {
  return answer(
      context, Method::kWithinMany, counters_, auth_.check(key_),
      [&](Clock::time_point started, const auth::ClientScope& scope) -> kj::Promise<void> {
        auto many = readWithinMany(context.getParams().getQuery());
        if (!many) return refused(context, many.error());
        if (auto e = restrictToScope(scope, many->each.idPrefix)) return refused(context, *e);
        auto calls = kj::heapArrayBuilder<kj::Promise<Result<GatheredResult>>>(many->points.size());
        for (size_t i = 0; i < many->points.size(); ++i) calls.add(cluster_.within(many->at(i)));
        return kj::joinPromises(calls.finish())
            .then([context, started](kj::Array<Result<GatheredResult>>&& all) mutable {
              for (size_t i = 0; i < all.size(); ++i) {
                if (all[i]) continue;
                Error e = all[i].error();
                e.message = fmt::format("point {}: {}", i, e.message);
                return writeError(e, context.getResults().initError());
              }
              auto out = context.getResults().initResults(static_cast<unsigned>(all.size()));
              for (size_t i = 0; i < all.size(); ++i)
                writeAnswer(*all[i], started, out[static_cast<unsigned>(i)]);
            });
      });
}

kj::Promise<void> LocationServiceImpl::login(LoginContext context) {
  const auto key = context.getParams().getApiKey();
  const std::string presented(key.begin(), key.size());
  auto scope = auth_.check(presented);
  auto results = context.getResults();
  if (!scope) {
    writeError(scope.error(), results.initError());
    return kj::READY_NOW;
  }
  results.setScope(scope->describe());
  results.setService(kj::heap<LocationServiceImpl>(cluster_, counters_, auth_, presented));
  return kj::READY_NOW;
}

}  // namespace locus::server
