// The server's LocationService (RPC) on any call: the first byte picks the
// method and who calls (no key, the admin key, a key that reads fleet/
// only), the rest is read as that method's parameters, with the limits of
// an untrusted message, as the RPC system would hand them over. Every call
// is answered with a result or a typed error, never an internal one; a
// caller without a key gets `unauthenticated` and nothing else; a fleet/
// reader sees no other id and no stats.
#include <capnp/message.h>
#include <spdlog/spdlog.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string_view>

#include "cluster_fixture.h"
#include "locus/common/wire.h"

namespace {

using locus::wire::ErrorCode;
using locus::wire::LocationService;

enum class Caller { kNone, kAdmin, kFleet };

// The invariants every answer keeps, for `caller`.
template <typename Results>
void check(const Results& results, Caller caller) {
  if (results.hasError()) {
    const auto code = results.getError().getCode();
    if (code == ErrorCode::INTERNAL) std::abort();
    return;
  }
  if (caller == Caller::kNone) std::abort();  // answered without a key
  const auto checkHits = [caller](auto result) {
    for (auto hit : result.getHits()) {
      if (caller == Caller::kFleet && !std::string_view(hit.getId().cStr()).starts_with("fleet/")) {
        std::abort();  // a read:fleet/ key saw another id
      }
    }
  };
  if constexpr (requires { results.getResult(); }) {
    checkHits(results.getResult());
  } else if constexpr (requires { results.getResults(); }) {
    for (auto result : results.getResults()) checkHits(result);
  } else if (caller == Caller::kFleet) {
    std::abort();  // a reader got the cluster's stats
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static auto& c = *new locus::fuzz::Cluster;  // lives to the process's exit
  if (size == 0) return 0;
  const auto method = data[0] % 7;
  const auto caller = static_cast<Caller>((data[0] / 7) % 3);
  locus::FlatMessage params(data + 1, size - 1);
  if (params.error()) return 0;

  LocationService::Client service =
      kj::heap<locus::server::LocationServiceImpl>(c.scatter, c.serviceCounters, c.clientAuth);
  if (caller != Caller::kNone) {
    auto login = service.loginRequest();
    login.setApiKey(caller == Caller::kAdmin ? locus::fuzz::kAdminKey : locus::fuzz::kFleetKey);
    service = login.send().getService();
  }
  switch (method) {
    case 0: {
      auto request = service.nearestRequest();
      if (!locus::fuzz::copied([&] {
            request.setQuery(params.root<LocationService::NearestParams>().getQuery());
          })) {
        return 0;
      }
      check(request.send().wait(c.io.waitScope), caller);
      break;
    }
    case 1: {
      auto request = service.withinRequest();
      if (!locus::fuzz::copied(
              [&] { request.setQuery(params.root<LocationService::WithinParams>().getQuery()); })) {
        return 0;
      }
      check(request.send().wait(c.io.waitScope), caller);
      break;
    }
    case 2: {
      auto request = service.getRequest();
      if (!locus::fuzz::copied(
              [&] { request.setId(params.root<LocationService::GetParams>().getId()); })) {
        return 0;
      }
      check(request.send().wait(c.io.waitScope), caller);
      break;
    }
    case 3:
      check(service.statsRequest().send().wait(c.io.waitScope), caller);
      break;
    case 5: {
      auto request = service.nearestManyRequest();
      if (!locus::fuzz::copied([&] {
            request.setQuery(params.root<LocationService::NearestManyParams>().getQuery());
          })) {
        return 0;
      }
      check(request.send().wait(c.io.waitScope), caller);
      break;
    }
    case 6: {
      auto request = service.withinManyRequest();
      if (!locus::fuzz::copied([&] {
            request.setQuery(params.root<LocationService::WithinManyParams>().getQuery());
          })) {
        return 0;
      }
      check(request.send().wait(c.io.waitScope), caller);
      break;
    }
    case 4: {
      // A key from the input: refused (it cannot guess a secret), or one
      // of the fixture's, and then its scope is the file's.
      auto request = service.loginRequest();
      if (!locus::fuzz::copied([&] {
            request.setApiKey(params.root<LocationService::LoginParams>().getApiKey());
          })) {
        return 0;
      }
      auto results = request.send().wait(c.io.waitScope);
      if (!results.hasError() && results.getScope() != "admin" &&
          results.getScope() != "read:fleet/") {
        std::abort();
      }
    }
  }
  return 0;
}
