// The gateway's `Ingest` RPC interface (private to locus::gateway).
#pragma once

#include "locus.capnp.h"
#include "locus/gateway/gateway.h"
#include "locus/gateway/router.h"

namespace locus::gateway {

// Validates each report of a batch (stamping ts 0 with the receive time),
// rejects the invalid ones by index with a reason, and routes the rest. A
// call resolves once its reports are in the router's buffers and the router
// admits more (backpressure). Thread-affinity: the router's thread.
class IngestImpl final : public wire::Ingest::Server {
 public:
  IngestImpl(Router& router, ProtocolCounters& counters) : router_(router), counters_(counters) {}

 protected:
  kj::Promise<void> report(ReportContext context) override;

 private:
  Router& router_;
  ProtocolCounters& counters_;
};

}  // namespace locus::gateway
