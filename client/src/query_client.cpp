#include "locus/client/query_client.h"

#include <algorithm>

#include "locus/common/wire.h"

namespace locus::client {

QueryClient::QueryClient(const std::string& address, kj::Duration callTimeout,
                         const std::string& apiKey, const transport::TlsClientOptions& tls)
    : address_(address),
      timeout_(callTimeout),
      rpc_(address, tls),
      service_(rpc_.getMain<wire::LocationService>()) {
  if (apiKey.empty()) return;
  auto login = service_.loginRequest();
  login.setApiKey(apiKey);
  kj::Promise<capnp::Response<wire::LocationService::LoginResults>> sent = login.send();
  auto reply = rpc_.timeoutAfter(callTimeout, kj::mv(sent),
                                 kj::str("no answer to login from the server at ", address.c_str()))
                   .wait(rpc_.getWaitScope());
  if (reply.hasError()) {
    kj::throwFatalException(kj::Exception(kj::Exception::Type::FAILED, __FILE__, __LINE__,
                                          kj::heapString(reply.getError().getMessage())));
  }
  service_ = reply.getService();
}

kj::Promise<Result<Answer>> QueryClient::startNearest(const NearestQuery& query) {
  auto request = service_.nearestRequest();
  writeNearestQuery(query, request.initQuery());
  return request.send().then([](auto&& response) { return readAnswer(response); });
}

kj::Promise<Result<Answer>> QueryClient::startWithin(const AreaQuery& query) {
  auto request = service_.withinRequest();
  writeAreaQuery(query, request.initQuery());
  return request.send().then([](auto&& response) { return readAnswer(response); });
}

kj::Promise<Result<std::vector<Answer>>> QueryClient::startNearestMany(const NearestMany& query) {
  auto request = service_.nearestManyRequest();
  writeNearestMany(query, request.initQuery());
  return request.send().then([](auto&& response) { return readAnswers(response); });
}

Result<std::vector<Answer>> QueryClient::nearestMany(const NearestMany& query) {
  return wait(startNearestMany(query));
}

Result<std::vector<Answer>> QueryClient::withinMany(const WithinMany& query) {
  auto request = service_.withinManyRequest();
  writeWithinMany(query, request.initQuery());
  return wait(request.send().then([](auto&& response) { return readAnswers(response); }));
}

Result<Answer> QueryClient::nearest(const NearestQuery& query) {
  return wait(startNearest(query));
}

Result<Answer> QueryClient::within(const AreaQuery& query) {
  return wait(startWithin(query));
}

Result<Answer> QueryClient::get(const std::string& id) {
  auto request = service_.getRequest();
  request.setId(id);
  return wait(request.send().then([](auto&& response) { return readAnswer(response); }));
}

Result<ClusterStats> QueryClient::stats() {
  return wait(service_.statsRequest().send().then([](auto&& response) -> Result<ClusterStats> {
    if (response.hasError()) return readError(response.getError());
    auto stats = response.getStats();
    ClusterStats out;
    for (auto unit : stats.getUnits()) out.units.push_back(readUnitStats(unit));
    out.shards = readCoverage(stats.getShards());
    out.partitions = stats.getPartitions();
    out.replicas = std::max<uint32_t>(1, stats.getReplicas());
    return out;
  }));
}

}  // namespace locus::client
