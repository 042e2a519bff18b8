// `locus send`: stream NDJSON reports to a gateway's Ingest RPC.
#pragma once

#include <iosfwd>
#include <nlohmann/json.hpp>
#include <string>

#include "locus/client/ingest_client.h"

namespace locus::cli {

// Reads NDJSON lines from `in`, sends the valid ones to the gateway at
// `gateway` (HOST:PORT) in pipelined batches, and returns the summary
// {"sent":N,"accepted":N,"rejected":N,"errors":[{"line":L,"error":"..."}]}
// (errors capped at 100). Lines that do not parse are rejected locally with
// their line number. Progress goes to `progress` for large inputs.
// Throws kj::Exception when the gateway cannot be reached.
// `options` carries the device token (the gateway's --auth-keys) and TLS.
nlohmann::ordered_json sendReports(std::istream& in, const std::string& gateway,
                                   const client::IngestClient::Options& options,
                                   std::ostream& progress);

}  // namespace locus::cli
