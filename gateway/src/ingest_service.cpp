#include "ingest_service.h"

#include <fmt/format.h>
#include <kj/debug.h>
#include <spdlog/spdlog.h>

#include <string>
#include <utility>

#include "locus/common/clock.h"
#include "locus/common/report.h"
#include "locus/common/wire.h"
#include "locus/gateway/acks.h"

namespace locus::gateway {

void refuseOverRate(const IngestContext& c, Acks& acks, uint32_t slot) {
  c.refused.rate.add(1);
  acks.failed(slot,
              fmt::format("over this connection's rate limit of {} reports/s "
                          "(--max-reports-per-s); send again later",
                          c.limits.maxReportsPerS),
              /*retry=*/true);
  if (const auto n = c.refused.rateLog.due()) {
    spdlog::warn(
        "refused {} report(s) over a connection's --max-reports-per-s {} since the last "
        "such line",
        *n, c.limits.maxReportsPerS);
  }
}

kj::Promise<void> IngestImpl::refuse(std::string_view why) {
  session_->hangUp();
  // The reason is the whole description: clients match its "unauthenticated:".
  return kj::Exception(kj::Exception::Type::FAILED, __FILE__, __LINE__,
                       kj::heapString(why.data(), why.size()));
}

kj::Promise<void> IngestImpl::login(LoginContext context) {
  const int64_t nowMs = wallClockMs();
  auto scope = c_.auth.login(std::string_view(context.getParams().getToken().cStr()), nowMs);
  if (!scope) return refuse(scope.error().message);
  auto results = context.getResults();
  auto out = results.initScope();
  out.setTenant(scope->tenant);
  out.setPrefix(scope->prefix);
  out.setExpiresMs(scope->expiresMs);
  results.setIngest(kj::heap<IngestImpl>(c_, std::move(*scope), kj::addRef(*session_)));
  return kj::READY_NOW;
}

kj::Promise<void> IngestImpl::report(ReportContext context) {
  if (c_.router.closing()) {
    return KJ_EXCEPTION(DISCONNECTED, "the gateway is shutting down; reconnect and resend");
  }
  const int64_t nowMs = wallClockMs();
  // Tokens off, every connection's scope is the empty prefix (any id).
  if (!scope_) return refuse(DeviceAuth::kLoginFirst);
  if (auto why = c_.auth.revoked(*scope_, nowMs)) return refuse(*why);
  auto reports = context.getParams().getBatch().getReports();
  auto acks = kj::refcounted<Acks>(reports.size());
  const Admission admission{nowMs, c_.maxFutureSkewMs, "gateway", &*scope_};
  for (uint32_t i = 0; i < reports.size(); ++i) {
    Report r;
    try {
      r = readReport(reports[i]);
    } catch (const kj::Exception& e) {
      acks->failed(i, std::string("malformed report: ") + e.getDescription().cStr());
      continue;
    }
    if (auto why = admitReport(r, admission)) {
      acks->failed(i, std::move(*why));
      continue;
    }
    if (!session_->rate.take(nowMs)) {
      refuseOverRate(c_, *acks, i);
      continue;
    }
    c_.router.add(r, *acks, i);
  }
  context.releaseParams();
  // Answered once every report is stored or has failed, then once the
  // router admits more (backpressure).
  auto done = acks->done();
  return done.then([this, context, acks = kj::mv(acks)]() mutable {
    const BatchOutcome outcome = acks->outcome();
    c_.counters.accepted += outcome.accepted;
    c_.counters.rejected += outcome.rejected.size();
    writeBatchOutcome(outcome, context.getResults().initResult());
    // Stopping: answer now; whenReady() would never resolve.
    return c_.router.closing() ? kj::Promise<void>(kj::READY_NOW) : c_.router.whenReady();
  });
}

}  // namespace locus::gateway
