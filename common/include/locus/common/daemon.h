// The process conventions every Locus daemon shares (SPEC "Processes"): one
// log line per event on stderr; options checked before anything starts (exit
// 2 with the reason); SIGINT/SIGTERM delivered as a pollable fd; every
// failure to start or serve turned into one line and exit 1; exit 0 after a
// clean stop.
#pragma once

#include <kj/exception.h>
#include <spdlog/spdlog.h>

#include <string>
#include <zmq.hpp>

#include "locus/common/log.h"
#include "locus/common/shutdown.h"

namespace locus {

// The signals a daemon's loop waits on, as file descriptors.
struct DaemonSignals {
  int stop;    // SIGINT, SIGTERM: readable once a stop was asked for
  int reload;  // SIGHUP: readable until drained (drainSignalFd)
};

// Runs `serve(context, signals)` under those conventions. `options` needs a
// validate() returning std::optional<std::string>; `failure` prefixes the
// line logged when serve throws ("cannot serve on tcp://0.0.0.0:7900").
template <typename Options, typename Serve>
int runDaemon(const std::string& name, const Options& options, const std::string& failure,
              Serve&& serve) {
  initLogging(name);
  if (auto error = options.validate()) {
    spdlog::error("{}", *error);
    return 2;
  }
  try {
    ShutdownSignal shutdown;  // before the ZeroMQ context starts its threads
    ReloadSignal reload;
    zmq::context_t context;
    serve(context, DaemonSignals{shutdown.fd(), reload.fd()});
    return 0;
  } catch (const kj::Exception& e) {
    spdlog::error("{}: {}", failure, e.getDescription().cStr());
  } catch (const std::exception& e) {
    spdlog::error("{}: {}", failure, e.what());
  }
  return 1;
}

}  // namespace locus
