#include "ingest_service.h"

#include <kj/debug.h>

#include <string>
#include <utility>

#include "locus/common/clock.h"
#include "locus/common/report.h"
#include "locus/common/wire.h"
#include "locus/gateway/acks.h"

namespace locus::gateway {

kj::Promise<void> IngestImpl::report(ReportContext context) {
  if (router_.closing()) {
    return KJ_EXCEPTION(DISCONNECTED, "the gateway is shutting down; reconnect and resend");
  }
  auto reports = context.getParams().getBatch().getReports();
  auto acks = kj::refcounted<Acks>(reports.size());
  const Admission admission{wallClockMs(), maxFutureSkewMs_, "gateway"};
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
    router_.add(r, *acks, i);
  }
  context.releaseParams();
  // Answered once every report is stored or has failed, then once the
  // router admits more (backpressure).
  auto done = acks->done();
  return done.then([this, context, acks = kj::mv(acks)]() mutable {
    const BatchOutcome outcome = acks->outcome();
    counters_.accepted += outcome.accepted;
    counters_.rejected += outcome.rejected.size();
    writeBatchOutcome(outcome, context.getResults().initResult());
    // Stopping: answer now; whenReady() would never resolve.
    return router_.closing() ? kj::Promise<void>(kj::READY_NOW) : router_.whenReady();
  });
}

}  // namespace locus::gateway
