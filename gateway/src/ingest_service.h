// The gateway's `Ingest` RPC interface (private to locus::gateway).
#pragma once

#include <kj/refcount.h>

#include <optional>
#include <string_view>

#include "device_auth.h"
#include "locus.capnp.h"
#include "locus/gateway/acks.h"
#include "locus/gateway/gateway.h"
#include "locus/gateway/router.h"
#include "rate_limit.h"

namespace locus::gateway {

// What every Ingest of one gateway shares.
struct IngestContext {
  Router& router;
  ProtocolCounters& counters;
  DeviceAuth& auth;
  int64_t maxFutureSkewMs;
  const ClientLimits& limits;
  Refusals& refused;
};

// Refuses report `slot` of `acks` as over its connection's rate
// (retryable), counted and logged (throttled).
void refuseOverRate(const IngestContext& c, Acks& acks, uint32_t slot);

// One RPC connection's state, shared by the Ingests served on it: how to
// close it (a failed login ends it; the error reply gets a moment to leave
// first), and its report rate.
class RpcSession final : public kj::Refcounted {
 public:
  RpcSession(kj::Own<kj::PromiseFulfiller<void>> hangUp, uint32_t maxReportsPerS)
      : rate(maxReportsPerS), hangUp_(kj::mv(hangUp)) {}
  void hangUp() { hangUp_->fulfill(); }

  RateLimit rate;

 private:
  kj::Own<kj::PromiseFulfiller<void>> hangUp_;
};

// Admits each report of a batch (admitReport: ts 0 stamped with the receive
// time, validation, the future-skew bound, the token's scope; then the
// connection's rate), rejects the others by index with a reason, and
// routes the rest. A call is answered once each routed report is stored by
// its unit or has failed (then rejected by index with why), and the router
// admits more (backpressure).
//
// Each connection starts with its own IngestImpl. With device tokens
// required it has no scope and answers login only; login returns one bound
// to the token's scope, checked again (key retired? expired?) on every
// call. Thread-affinity: the router's thread.
class IngestImpl final : public wire::Ingest::Server {
 public:
  IngestImpl(IngestContext context, std::optional<auth::DeviceScope> scope,
             kj::Own<RpcSession> session)
      : c_(context), scope_(std::move(scope)), session_(kj::mv(session)) {}

 protected:
  kj::Promise<void> report(ReportContext context) override;
  kj::Promise<void> login(LoginContext context) override;

 private:
  // Fails the call with `why` and closes the connection.
  kj::Promise<void> refuse(std::string_view why);

  IngestContext c_;
  std::optional<auth::DeviceScope> scope_;  // set: logged in (or tokens off)
  kj::Own<RpcSession> session_;
};

}  // namespace locus::gateway
