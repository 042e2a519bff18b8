// locus-server: the query front end of a Locus cluster. Serves
// LocationService over Cap'n Proto RPC, scattering each query to every unit
// and reducing their answers, until SIGINT/SIGTERM.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <kj/async-io.h>
#include <spdlog/spdlog.h>

#include "locus/common/flags.h"
#include "locus/common/log.h"
#include "locus/common/shutdown.h"
#include "locus/server/server.h"

int main(int argc, char** argv) {
  locus::server::ServerOptions options;
  CLI::App app{"locus-server: query front end of a Locus cluster (scatter, gather, reduce)"};
  locus::addFlag(app, "--units", options.units,
                 "ZeroMQ endpoints of the units, comma-separated, in shard order")
      ->delimiter(',')
      ->required();
  locus::addFlag(app, "--listen", options.listen,
                 "HOST:PORT for Cap'n Proto RPC (port 0 picks one)");
  locus::addFlag(app, "--timeout-ms", options.timeoutMs, "per-query deadline for the units, ms");
  CLI11_PARSE(app, argc, argv);

  locus::initLogging("locus-server");
  if (auto error = options.validate()) {
    spdlog::error("{}", *error);
    return 2;
  }
  try {
    locus::ShutdownSignal shutdown;  // before the ZeroMQ context starts its threads
    zmq::context_t context;
    auto io = kj::setupAsyncIo();
    locus::server::Server server(options, context, io);
    spdlog::info("listening on {} ({} units, timeout {} ms)", server.address(),
                 options.units.size(), options.timeoutMs);
    server.run(shutdown.fd());
    spdlog::info("stopping");
    return 0;
  } catch (const kj::Exception& e) {
    spdlog::error("cannot serve on {}: {}", options.listen, e.getDescription().cStr());
  } catch (const zmq::error_t& e) {
    spdlog::error("cannot connect to the units ({}): {}", fmt::join(options.units, ","), e.what());
  } catch (const std::exception& e) {
    spdlog::error("fatal: {}", e.what());
  }
  return 1;
}
