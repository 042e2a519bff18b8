// locus-bench's Locus backend: reports over the gateway's Ingest and
// queries over the server's LocationService, through locus::client.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backend.h"
#include "locus/testkit/cluster.h"
#include "locus/transport/tls.h"

namespace locus::bench {

// A running cluster at `gateway` and `server` (HOST:PORT), or one this
// process spawned (`spawned`, not null: then its units' RSS is measured
// too). With `http` (the server's --http-listen HOST:PORT), nearest
// queries go to GET /v1/nearest instead, on one keep-alive connection per
// worker; the system is then named "locus-http".
// What the clients present to a locked cluster (SPEC "Security").
struct Credentials {
  std::string token;                // device token for the gateway (--auth-keys)
  std::string apiKey;               // admin API key for the server (--api-keys): stats too
  transport::TlsClientOptions tls;  // TLS to both
};
// `cpuPids`: for a cluster it did not spawn, the processes whose CPU is
// the system's (e.g. one `locus local`); none: unknown.
std::unique_ptr<Backend> makeLocusBackend(const std::string& gateway, const std::string& server,
                                          const testkit::SpawnedCluster* spawned,
                                          const Deadline& deadline, const std::string& http = "",
                                          const Credentials& credentials = {},
                                          std::vector<int> cpuPids = {});

}  // namespace locus::bench
