// Catch-up copies for a unit (UnitServer::Copier): for each copy of a
// gateway's order, a DEALER socket to the source replica, asking it for
// dump pages of the partitions one at a time and storing each through the
// service (UnitService::applyCopied) while live writes go on. A copy is
// done at the page with cursor 0; it starts over when the source's dump
// epoch changes (it restarted or removed devices, so the cursor means
// something else), and gives up after a few unanswered or refused pages
// (its partitions stay unserved until the gateway orders them again).
//
// Thread-affinity: the unit's thread, polled from its loop.
#pragma once

#include <zmq.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "locus/unit/unit_server.h"

namespace locus::unit {

class UnitServer::Copier {
 public:
  Copier(zmq::context_t& context, UnitService& service) : context_(context), service_(service) {}

  // Replaces what runs by the copies of `order`.
  void start(const CatchUpOrder& order);
  bool idle() const { return copies_.empty(); }

  // The sockets to poll for input, appended to `items`.
  void pollItems(std::vector<zmq::pollitem_t>& items) const;
  // Reads every page that arrived, sends the next requests, and retries or
  // gives up on pages unanswered for too long.
  void serve();

  // A page unanswered this long is asked again...
  static constexpr auto kPageTimeout = std::chrono::seconds(2);
  // ... at most this many times in a row, and a copy starts over at most
  // this many times, before the copy gives up.
  static constexpr int kMaxRetries = 5;
  // Devices per page (DumpRequest.limit).
  static constexpr uint32_t kPageSize = 5'000;

 private:
  struct Copy {
    CatchUpOrder::Copy what;
    std::unique_ptr<zmq::socket_t> socket;
    uint64_t cursor = 0;     // the next page's
    uint64_t epoch = 0;      // the source's, from the first page; 0 = none yet
    uint64_t requestId = 0;  // of the page asked for
    std::chrono::steady_clock::time_point askedAt;
    int retries = 0;   // pages asked again in a row
    int restarts = 0;  // times started over
    uint64_t devices = 0;
    std::chrono::steady_clock::time_point started;
  };
  // Asks for the page at copy.cursor.
  void ask(Copy& copy);
  // Handles one reply; false when the copy is over (done or given up).
  bool received(Copy& copy, const zmq::message_t& frame);
  void finish(Copy& copy, bool ok, const std::string& why);

  zmq::context_t& context_;
  UnitService& service_;
  std::vector<std::unique_ptr<Copy>> copies_;
  uint64_t nextRequestId_ = 1;
};

}  // namespace locus::unit
