// Units inside the test process on inproc:// endpoints, for library tests
// of what talks to units (scatter/gather, the router): a real UnitServer on
// a thread of its own, or a ROUTER that never answers. Header-only.
// Free of Catch2, so the fuzz targets use it too.
#pragma once

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <system_error>
#include <thread>
#include <zmq.hpp>

#include "locus/unit/unit_server.h"

namespace locus::testkit {

// A UnitServer on inproc://NAME (or on `listen`) served by a thread of its
// own; with `replicas` > 1 it serves no partition until it caught up.
class InprocUnit {
 public:
  InprocUnit(zmq::context_t& context, const std::string& name, const std::string& listen = "",
             uint32_t replicas = 1)
      : stop_(eventfd(0, EFD_CLOEXEC)), server_(context, optionsFor(name, listen, replicas)) {
    if (stop_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
    thread_ = std::thread([this] { server_.run(stop_); });
  }
  ~InprocUnit() {
    const uint64_t one = 1;
    [[maybe_unused]] const ssize_t n = write(stop_, &one, sizeof one);
    thread_.join();
    close(stop_);
  }
  const std::string& endpoint() const { return server_.endpoint(); }
  // The thread that serves, for tests that signal it.
  std::thread::native_handle_type thread() { return thread_.native_handle(); }

 private:
  static unit::UnitOptions optionsFor(const std::string& name, const std::string& listen,
                                      uint32_t replicas) {
    unit::UnitOptions options;
    options.replicas = replicas;
    options.listen = listen.empty() ? "inproc://" + name : listen;
    options.name = name;
    return options;
  }

  int stop_;
  unit::UnitServer server_;
  std::thread thread_;
};

// A ROUTER that takes requests and never answers: a unit that hangs.
struct SilentUnit {
  SilentUnit(zmq::context_t& context, const std::string& name)
      : socket(context, zmq::socket_type::router), endpoint("inproc://" + name) {
    socket.bind(endpoint);
  }
  zmq::socket_t socket;
  std::string endpoint;
};

}  // namespace locus::testkit
