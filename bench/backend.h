// The system under test, as locus-bench's workload driver sees it: a
// Locus cluster or a Redis server. The driver owns the workload (which
// device moves where, in which order, how queries are timed); a backend
// only carries reports and queries and reports what the system holds.
//
// Thread-affinity: a Backend's methods run on the driver's main thread, except
// connect(), which each worker calls on its own thread; a Session is used
// (and destroyed) only on the thread that made it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "locus/common/geo.h"
#include "locus/common/query.h"

namespace locus::bench {

using Clock = std::chrono::steady_clock;

// The run's deadline: every loop and wait checks it.
class Deadline {
 public:
  explicit Deadline(double seconds)
      : at_(Clock::now() +
            std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds))) {}
  bool passed() const { return Clock::now() >= at_; }
  void check(const std::string& during) const {
    if (passed()) throw std::runtime_error("--max-seconds passed during " + during);
  }
  Clock::time_point at() const { return at_; }

 private:
  Clock::time_point at_;
};

// Everything the bench sent: the latest position of every device.
// Thread-affinity: device i is written only by the worker that owns it (in
// the open loop, by its one updater, while no other thread reads the fleet).
struct Fleet {
  std::vector<geo::LatLon> positions;  // quantized, as the units store them
  int64_t baseTsMs = 0;                // tsMs of the load; updates count up from it
  int workers = 1;

  uint64_t firstOf(int worker) const {
    return positions.size() * static_cast<uint64_t>(worker) / static_cast<uint64_t>(workers);
  }
};

// The k-th report of a worker: device `device` ("bench-<device>") is now at
// fleet.positions[device], observed at tsMs.
struct Move {
  uint64_t device = 0;
  int64_t tsMs = 0;
};
using NextMove = std::function<Move(uint64_t k)>;

struct NearestAnswer {
  std::vector<Hit> hits;  // nearest first
  bool partial = false;   // a shard missed its deadline
};
using Answered = std::function<void(NearestAnswer&&)>;
using AnsweredMany = std::function<void(std::vector<NearestAnswer>&&)>;

// What the system holds, summed over its shards.
struct Totals {
  uint64_t devices = 0;
  uint64_t reportsSeen = 0;   // applied + stale + rejected; 0 where not counted
  uint64_t reportsStale = 0;  // of reportsSeen: older than the stored position (resends among them)
  uint64_t memoryBytes = 0;   // the system's own accounting of what this run added
  uint32_t shardsTotal = 0;
  uint32_t shardsAnswered = 0;
  bool catchingUp = false;  // a replica is copying partitions or does not serve some yet
};

class Session {
 public:
  virtual ~Session() = default;
  // Sends `count` reports, moves(0) .. moves(count - 1), in batches with
  // several in flight, adding to `done` as they are acknowledged. Throws if
  // the system refuses any.
  virtual void send(uint64_t count, const NextMove& moves, const Fleet& fleet,
                    std::atomic<uint64_t>& done) = 0;
  // The k nearest devices of `center`: one request, waited for.
  virtual NearestAnswer nearest(geo::LatLon center, uint32_t k) = 0;

  // Pipelined and open loop: many queries in flight on this one connection.
  //
  // Sends a nearest-k query and returns without waiting for it; `answered`
  // runs later on this thread, inside awaitAnswers(), with the answer (and
  // may start the next query). A caller bounds how many are in flight.
  // Throws if it cannot be sent.
  virtual void startNearest(geo::LatLon center, uint32_t k, Answered answered) = 0;
  // The k nearest devices of each of `centers`, as one call where the
  // system has one (Locus's nearestMany); `answered` gets one answer per
  // centre, in order. By default, one startNearest per centre, in flight
  // together (Redis commands or PostgreSQL statements pipelined).
  virtual void startNearestMany(std::vector<geo::LatLon> centers, uint32_t k,
                                AnsweredMany answered) {
    struct Batch {
      std::vector<NearestAnswer> answers;
      size_t left;
      AnsweredMany answered;
    };
    auto batch = std::make_shared<Batch>(
        Batch{std::vector<NearestAnswer>(centers.size()), centers.size(), std::move(answered)});
    for (size_t i = 0; i < centers.size(); ++i) {
      startNearest(centers[i], k, [batch, i](NearestAnswer&& answer) {
        batch->answers[i] = std::move(answer);
        if (--batch->left == 0) batch->answered(std::move(batch->answers));
      });
    }
  }
  // Handles answers as they arrive (each `answered` runs as soon as its
  // reply is read, so the caller may time it there) until `until`, with
  // sub-millisecond precision. Throws on the first failed query. Queries
  // still in flight when the session is destroyed are abandoned.
  virtual void awaitAnswers(Clock::time_point until) = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  // "locus", "redis" or "postgis", as the JSON's "system".
  virtual std::string name() const = 0;
  // A new connection for one worker.
  virtual std::unique_ptr<Session> connect() = 0;
  virtual Totals totals() = 0;
  // Waits until the system has applied `reportsSeen` reports in all (or
  // returns at once where acknowledged means applied); throws after the
  // settle time or the run's deadline.
  virtual Totals waitForReports(uint64_t reportsSeen, const std::string& phase) = 0;
  // Resident memory this run added, 0 when unknown.
  virtual uint64_t rssBytes() = 0;
  // CPU seconds (user + system) the system's processes have used so far,
  // all threads, or a negative number when unknown.
  virtual double cpuSeconds() = 0;
  // Whether answers are exact (positions stored as sent, haversine
  // distances), so they can be held against a brute-force scan.
  virtual bool exact() const = 0;
};

}  // namespace locus::bench
