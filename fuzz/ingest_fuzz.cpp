// The gateway's Ingest (RPC) on any call: the first byte picks how the
// connection stands (logged in with a token for fleet/, not logged in, or
// logging in with the input's token), the rest is read as the call's
// parameters, with the limits of an untrusted message. Reports go through
// the real router to a real unit. A logged-in batch gets one outcome per
// report and every id outside fleet/ refused; a connection that has not
// logged in writes nothing and is closed; a token from the input (which
// cannot carry a valid signature unless it copied the fixture's) is
// refused and the connection closed.
#include <capnp/message.h>
#include <spdlog/spdlog.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <set>
#include <string_view>
#include <vector>

#include "cluster_fixture.h"
#include "locus/common/wire.h"

namespace {

using locus::wire::Ingest;

// The ids of a batch that must be refused: readable, but outside fleet/.
std::vector<bool> outsideScope(Ingest::ReportParams::Reader params) {
  auto reports = params.getBatch().getReports();
  std::vector<bool> outside(reports.size(), false);
  for (uint32_t i = 0; i < reports.size(); ++i) {
    try {
      outside[i] = !std::string_view(reports[i].getId().cStr()).starts_with("fleet/");
    } catch (const kj::Exception&) {
      // A malformed report: refused for that, any id.
    }
  }
  return outside;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto* c = &locus::fuzz::clusterFor(100'000);  // the unit keeps what was stored
  if (size == 0) return 0;
  const auto mode = data[0] % 3;
  locus::FlatMessage params(data + 1, size - 1);
  if (params.error()) return 0;

  auto hangUp = kj::newPromiseAndFulfiller<void>();
  bool hungUp = false;
  auto closed = hangUp.promise.then([&hungUp] { hungUp = true; }).eagerlyEvaluate(nullptr);
  Ingest::Client ingest = kj::heap<locus::gateway::IngestImpl>(
      c->ingest, std::nullopt,
      kj::refcounted<locus::gateway::RpcSession>(kj::mv(hangUp.fulfiller), 0));

  if (mode == 2) {
    auto login = ingest.loginRequest();
    if (!locus::fuzz::copied(
            [&] { login.setToken(params.root<Ingest::LoginParams>().getToken()); })) {
      return 0;
    }
    const bool valid = login.getToken() == c->deviceToken.c_str();
    try {
      login.send().wait(c->io.waitScope);
      if (!valid) std::abort();  // a token the fuzzer made up was accepted
      return 0;
    } catch (const kj::Exception& e) {
      if (!std::string_view(e.getDescription().cStr()).starts_with("unauthenticated: ")) {
        std::abort();
      }
    }
    closed.wait(c->io.waitScope);
    return 0;
  }

  if (mode == 0) {
    auto login = ingest.loginRequest();
    login.setToken(c->deviceToken);
    ingest = login.send().getIngest();
  }
  auto request = ingest.reportRequest();
  std::vector<bool> outside;
  if (!locus::fuzz::copied([&] {
        auto in = params.root<Ingest::ReportParams>();
        request.setBatch(in.getBatch());
        outside = outsideScope(in);
      })) {
    return 0;
  }
  if (mode == 1) {
    try {
      request.send().wait(c->io.waitScope);
      std::abort();  // written without a token
    } catch (const kj::Exception&) {
    }
    closed.wait(c->io.waitScope);
    return 0;
  }
  auto results = request.send().wait(c->io.waitScope);
  if (hungUp) std::abort();  // a logged-in connection closed for its reports
  std::set<uint32_t> refused;
  for (auto rejection : results.getResult().getRejected()) {
    if (rejection.getIndex() >= outside.size() || !refused.insert(rejection.getIndex()).second) {
      std::abort();  // a rejection of no report, or of one twice
    }
  }
  for (uint32_t i = 0; i < outside.size(); ++i) {
    if (outside[i] && !refused.count(i)) std::abort();  // written outside the token's scope
  }
  if (results.getResult().getAccepted() + refused.size() != outside.size()) std::abort();
  return 0;
}
