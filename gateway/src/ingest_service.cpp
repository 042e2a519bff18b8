#include "ingest_service.h"

#include <kj/debug.h>

#include <string>
#include <utility>

#include "locus/common/clock.h"
#include "locus/common/report.h"
#include "locus/common/wire.h"

namespace locus::gateway {

kj::Promise<void> IngestImpl::report(ReportContext context) {
  if (router_.closing()) {
    return KJ_EXCEPTION(DISCONNECTED, "the gateway is shutting down; reconnect and resend");
  }
  BatchOutcome outcome;
  {
    auto reports = context.getParams().getBatch().getReports();
    const Admission admission{wallClockMs(), maxFutureSkewMs_, "gateway"};
    for (uint32_t i = 0; i < reports.size(); ++i) {
      Report r;
      try {
        r = readReport(reports[i]);
      } catch (const kj::Exception& e) {
        outcome.rejected.emplace_back(
            i, std::string("malformed report: ") + e.getDescription().cStr());
        continue;
      }
      if (auto why = admitReport(r, admission)) {
        outcome.rejected.emplace_back(i, std::move(*why));
        continue;
      }
      if (auto refused = router_.add(r)) {
        outcome.rejected.emplace_back(i, std::move(*refused));
        continue;
      }
      ++outcome.accepted;
    }
  }
  counters_.accepted += outcome.accepted;
  counters_.rejected += outcome.rejected.size();
  context.releaseParams();
  writeBatchOutcome(outcome, context.getResults().initResult());
  return router_.whenReady();
}

}  // namespace locus::gateway
