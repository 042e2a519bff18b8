// A location unit as a service: UnitService executes UnitRequest messages
// against one LocationIndex (no sockets, so tests can drive it directly);
// UnitServer serves it on a ZeroMQ ROUTER socket from one thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <zmq.hpp>

#include "locus/unit/location_index.h"

namespace locus::unit {

struct UnitOptions {
  std::string listen = "tcp://0.0.0.0:7900";  // ZeroMQ endpoint; port 0 or * picks one
  std::string name;                           // empty = the bound endpoint
  int64_t ttlS = 0;                           // 0 = positions never expire

  // Why these options cannot work, or nothing.
  std::optional<std::string> validate() const;
};

// Counters a unit reports in stats.
struct UnitCounters {
  uint64_t reportsApplied = 0;   // stored (inserted or moved)
  uint64_t reportsStale = 0;     // older than what was held
  uint64_t reportsRejected = 0;  // failed validation
  uint64_t queriesServed = 0;
  uint64_t badMessages = 0;  // requests that could not be read
};

class UnitService {
 public:
  UnitService(std::string name, IndexOptions options);

  // Executes one request frame and returns the reply frame (a UnitReply).
  // Never throws: an unreadable request gets a typed error reply and changes
  // nothing; a batch is read whole before any report of it is applied.
  zmq::message_t handle(const void* data, size_t size, int64_t nowMs);

  // The error reply to a message that is not a request envelope at all
  // (`frames` frames after the peer's identity).
  zmq::message_t refuseEnvelope(size_t frames);

  // Background work (TTL sweeps), in small slices; call often.
  void tick(int64_t nowMs);

  const LocationIndex& index() const { return index_; }
  const UnitCounters& counters() const { return counters_; }
  const std::string& name() const { return name_; }
  void setName(std::string name) { name_ = std::move(name); }

 private:
  class Handler;

  zmq::message_t refuse(uint64_t requestId, const std::string& problem);

  std::string name_;
  LocationIndex index_;
  UnitCounters counters_;
  std::chrono::steady_clock::time_point lastWarning_{};
};

class UnitServer {
 public:
  // Binds the socket. Throws zmq::error_t when the endpoint cannot be bound
  // (bad address, address in use).
  UnitServer(zmq::context_t& context, const UnitOptions& options);

  // The endpoint actually bound (with the port chosen for port 0).
  const std::string& endpoint() const { return endpoint_; }
  const UnitService& service() const { return service_; }

  // Serves requests until `stopFd` becomes readable (an eventfd or signalfd).
  void run(int stopFd);

 private:
  zmq::socket_t socket_;
  std::string endpoint_;
  UnitService service_;
};

}  // namespace locus::unit
