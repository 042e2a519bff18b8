// locus-unit: one shard of a Locus cluster, serving its LocationIndex on a
// ZeroMQ endpoint until SIGINT/SIGTERM.
#include <spdlog/spdlog.h>

#include "locus/common/flags.h"
#include "locus/common/log.h"
#include "locus/common/shutdown.h"
#include "locus/unit/unit_server.h"

int main(int argc, char** argv) {
  locus::unit::UnitOptions options;
  CLI::App app{"locus-unit: one shard of a Locus cluster (store + index + query executor)"};
  locus::addFlag(app, "--listen", options.listen, "ZeroMQ endpoint to bind (port 0 picks one)");
  locus::addFlag(app, "--name", options.name, "name in stats and logs (default: the endpoint)");
  locus::addFlag(app, "--ttl-s", options.ttlS, "seconds a position lives after its ts (0 = forever)");
  CLI11_PARSE(app, argc, argv);

  locus::initLogging("locus-unit");
  if (auto error = options.validate()) {
    spdlog::error("{}", *error);
    return 2;
  }
  try {
    locus::ShutdownSignal shutdown;  // before the ZeroMQ context starts its threads
    zmq::context_t context;
    locus::unit::UnitServer server(context, options);
    spdlog::info("{} listening on {} (ttl {} s)", server.service().name(), server.endpoint(),
                 options.ttlS);
    server.run(shutdown.fd());
    const auto& c = server.service().counters();
    spdlog::info("stopping: {} devices, {} reports applied, {} queries served",
                 server.service().index().size(), c.reportsApplied, c.queriesServed);
    return 0;
  } catch (const zmq::error_t& e) {
    spdlog::error("cannot serve on {}: {}", options.listen, e.what());
  } catch (const std::exception& e) {
    spdlog::error("fatal: {}", e.what());
  }
  return 1;
}
