// The gateway's `Ingest` RPC interface (private to locus::gateway).
#pragma once

#include "locus.capnp.h"
#include "locus/gateway/gateway.h"
#include "locus/gateway/router.h"

namespace locus::gateway {

// Admits each report of a batch (admitReport: ts 0 stamped with the receive
// time, validation, the future-skew bound), rejects the others by index with
// a reason, and routes the rest. A call is answered once each routed report
// is stored by its unit or has failed (then rejected by index with why), and
// the router admits more (backpressure). Thread-affinity: the router's
// thread.
class IngestImpl final : public wire::Ingest::Server {
 public:
  IngestImpl(Router& router, ProtocolCounters& counters, int64_t maxFutureSkewMs)
      : router_(router), counters_(counters), maxFutureSkewMs_(maxFutureSkewMs) {}

 protected:
  kj::Promise<void> report(ReportContext context) override;

 private:
  Router& router_;
  ProtocolCounters& counters_;
  int64_t maxFutureSkewMs_;
};

}  // namespace locus::gateway
