// The gateway's `Ingest` RPC interface (private to locus::gateway).
#pragma once

#include <kj/refcount.h>

#include <optional>

#include "device_auth.h"
#include "locus.capnp.h"
#include "locus/gateway/gateway.h"
#include "locus/gateway/router.h"

namespace locus::gateway {

// What every Ingest of one gateway shares.
struct IngestContext {
  Router& router;
  ProtocolCounters& counters;
  DeviceAuth& auth;
  int64_t maxFutureSkewMs;
};

// Closes one RPC connection: a login that failed ends it (the error reply
// gets a moment to leave first). Shared by the Ingests served on it.
class HangUp final : public kj::Refcounted {
 public:
  explicit HangUp(kj::Own<kj::PromiseFulfiller<void>> fulfiller) : fulfiller_(kj::mv(fulfiller)) {}
  void operator()() { fulfiller_->fulfill(); }

 private:
  kj::Own<kj::PromiseFulfiller<void>> fulfiller_;
};

// Admits each report of a batch (admitReport: ts 0 stamped with the receive
// time, validation, the future-skew bound, the token's scope), rejects the
// others by index with a reason, and routes the rest. A call is answered
// once each routed report is stored by its unit or has failed (then
// rejected by index with why), and the router admits more (backpressure).
//
// With device tokens required, a connection starts with an IngestImpl
// without a scope, which answers login only; login returns one bound to
// the token's scope, checked again (key retired? expired?) on every call.
// Thread-affinity: the router's thread.
class IngestImpl final : public wire::Ingest::Server {
 public:
  // `hangUp`: how to close the connection after a failed login; null when
  // the Ingest is shared by every connection (tokens not required).
  IngestImpl(IngestContext context, std::optional<auth::DeviceScope> scope, kj::Own<HangUp> hangUp)
      : c_(context), scope_(std::move(scope)), hangUp_(kj::mv(hangUp)) {}

 protected:
  kj::Promise<void> report(ReportContext context) override;
  kj::Promise<void> login(LoginContext context) override;

 private:
  // Fails the call with `why` and closes the connection.
  kj::Promise<void> refuse(std::string_view why);

  IngestContext c_;
  std::optional<auth::DeviceScope> scope_;  // set: logged in (or tokens off)
  kj::Own<HangUp> hangUp_;
};

}  // namespace locus::gateway
