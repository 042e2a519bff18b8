#include "redis_backend.h"

#include <hiredis/hiredis.h>
#include <poll.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <deque>
#include <sstream>
#include <string_view>

namespace locus::bench {
namespace {

constexpr size_t kBatchMembers = 1000;  // members per GEOADD
constexpr size_t kCommandsInFlight = 8;
constexpr timeval kIoTimeout{60, 0};

struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

struct ContextDeleter {
  void operator()(redisContext* c) const { redisFree(c); }
};

// One blocking connection; every call either succeeds or throws with the
// server's or the socket's reason.
class Connection {
 public:
  explicit Connection(const std::string& address) {
    const auto colon = address.rfind(':');
    int port = 0;
    if (colon == std::string::npos ||
        std::from_chars(address.data() + colon + 1, address.data() + address.size(), port).ec !=
            std::errc{} ||
        port <= 0 || port > 65535)
      throw std::runtime_error("--redis wants HOST:PORT, got \"" + address + "\"");
    const std::string host = address.substr(0, colon);
    context_.reset(redisConnectWithTimeout(host.c_str(), port, kIoTimeout));
    if (!context_) throw std::runtime_error("redis " + address + ": cannot allocate a context");
    if (context_->err)
      throw std::runtime_error("redis " + address + ": " + std::string(context_->errstr));
    if (redisSetTimeout(context_.get(), kIoTimeout) != REDIS_OK)
      throw std::runtime_error("redis " + address + ": cannot set the I/O timeout");
  }

  // Queues a command; it is written with the next reply() call.
  void append(const std::vector<std::string>& args) {
    argv_.clear();
    lengths_.clear();
    for (const auto& a : args) {
      argv_.push_back(a.data());
      lengths_.push_back(a.size());
    }
    if (redisAppendCommandArgv(context_.get(), static_cast<int>(args.size()), argv_.data(),
                               lengths_.data()) != REDIS_OK)
      throw std::runtime_error("redis: " + std::string(context_->errstr));
  }

  // The reply to the oldest queued command; throws on an error reply.
  Reply reply() {
    void* raw = nullptr;
    if (redisGetReply(context_.get(), &raw) != REDIS_OK || raw == nullptr)
      throw std::runtime_error("redis: " + std::string(context_->errstr));
    Reply r(static_cast<redisReply*>(raw));
    if (r->type == REDIS_REPLY_ERROR) throw std::runtime_error("redis: " + std::string(r->str));
    return r;
  }

  Reply command(const std::vector<std::string>& args) {
    append(args);
    return reply();
  }

  // Writes every queued command now (blocking at most the I/O timeout).
  void flush() {
    int done = 0;
    while (done == 0) {
      if (redisBufferWrite(context_.get(), &done) != REDIS_OK)
        throw std::runtime_error("redis: " + std::string(context_->errstr));
    }
  }

  // A reply already read from the socket, or null; never blocks. Throws on
  // an error reply.
  Reply bufferedReply() {
    void* raw = nullptr;
    if (redisGetReplyFromReader(context_.get(), &raw) != REDIS_OK)
      throw std::runtime_error("redis: " + std::string(context_->errstr));
    Reply r(static_cast<redisReply*>(raw));
    if (r && r->type == REDIS_REPLY_ERROR)
      throw std::runtime_error("redis: " + std::string(r->str));
    return r;
  }

  // Waits until the socket is readable or `until` passes; reads what has
  // arrived into the reply buffer. False when nothing arrived.
  bool readUntil(Clock::time_point until) {
    const auto left = until - Clock::now();
    if (left <= Clock::duration::zero()) return false;
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
    const timespec timeout{static_cast<time_t>(ns / 1'000'000'000),
                           static_cast<long>(ns % 1'000'000'000)};
    pollfd fd{.fd = context_->fd, .events = POLLIN, .revents = 0};
    const int ready = ppoll(&fd, 1, &timeout, nullptr);
    if (ready < 0 && errno != EINTR) throw std::runtime_error("redis: poll failed");
    if (ready <= 0) return false;
    if (redisBufferRead(context_.get()) != REDIS_OK)
      throw std::runtime_error("redis: " + std::string(context_->errstr));
    return true;
  }

 private:
  std::unique_ptr<redisContext, ContextDeleter> context_;
  std::vector<const char*> argv_;
  std::vector<size_t> lengths_;
};

std::string text(double v) {
  char buf[32];
  const auto end = std::to_chars(buf, buf + sizeof buf, v).ptr;  // shortest round-trip
  return std::string(buf, end);
}

// The value of INFO's "name:value" line, "" when absent.
std::string infoValue(const std::string& info, const std::string& name) {
  std::istringstream lines(info);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind(name + ":", 0) == 0) return line.substr(name.size() + 1);
  }
  return "";
}

// An integer field of INFO, 0 when absent.
uint64_t infoField(const std::string& info, const std::string& name) {
  return std::strtoull(infoValue(info, name).c_str(), nullptr, 10);
}

class RedisSession final : public Session {
 public:
  RedisSession(const std::string& address, const Deadline& deadline)
      : connection_(address), deadline_(deadline) {}

  void send(uint64_t count, const NextMove& moves, const Fleet& fleet,
            std::atomic<uint64_t>& done) override {
    std::deque<size_t> inFlight;  // members per queued GEOADD
    std::vector<std::string> args;
    const auto settleOldest = [&] {
      connection_.reply();  // the number of new members; moves add none
      done += inFlight.front();
      inFlight.pop_front();
    };
    for (uint64_t k = 0; k < count;) {
      deadline_.check("ingest");
      const auto n = static_cast<size_t>(std::min<uint64_t>(kBatchMembers, count - k));
      args.assign({"GEOADD", kRedisKey});
      for (size_t j = 0; j < n; ++j) {
        const Move m = moves(k + j);
        const geo::LatLon& p = fleet.positions[m.device];
        args.push_back(text(p.lon));
        args.push_back(text(p.lat));
        args.push_back("bench-" + std::to_string(m.device));
      }
      connection_.append(args);
      inFlight.push_back(n);
      k += n;
      if (inFlight.size() >= kCommandsInFlight) settleOldest();
    }
    while (!inFlight.empty()) settleOldest();
  }

  NearestAnswer nearest(geo::LatLon center, uint32_t k) override {
    deadline_.check("queries");
    return readAnswer(connection_.command(geosearch(center, k)));
  }

  // Pipelined on the one connection: Redis answers in order.
  void startNearest(geo::LatLon center, uint32_t k, Answered answered) override {
    connection_.append(geosearch(center, k));
    connection_.flush();
    waiting_.push_back(std::move(answered));
  }

  void awaitAnswers(Clock::time_point until) override {
    for (;;) {
      while (!waiting_.empty()) {
        const Reply r = connection_.bufferedReply();
        if (!r) break;
        Answered answered = std::move(waiting_.front());
        waiting_.pop_front();
        answered(readAnswer(r));
      }
      if (Clock::now() >= until) return;
      connection_.readUntil(until);
    }
  }

 private:
  static std::vector<std::string> geosearch(geo::LatLon center, uint32_t k) {
    return {"GEOSEARCH",
            kRedisKey,
            "FROMLONLAT",
            text(center.lon),
            text(center.lat),
            "BYRADIUS",
            text(kRedisRadiusM),
            "m",
            "ASC",
            "COUNT",
            std::to_string(k),
            "WITHDIST"};
  }

  static NearestAnswer readAnswer(const Reply& r) {
    NearestAnswer answer;
    if (r->type != REDIS_REPLY_ARRAY)
      throw std::runtime_error("redis: GEOSEARCH did not answer an array");
    for (size_t i = 0; i < r->elements; ++i) {
      const redisReply* item = r->element[i];
      if (item->type != REDIS_REPLY_ARRAY || item->elements < 2)
        throw std::runtime_error("redis: GEOSEARCH WITHDIST answered an unexpected item");
      answer.hits.push_back(Hit{.id = std::string(item->element[0]->str, item->element[0]->len),
                                .distanceM = std::strtod(item->element[1]->str, nullptr)});
    }
    return answer;
  }

  Connection connection_;
  const Deadline& deadline_;
  std::deque<Answered> waiting_;  // of the queries in flight, oldest first
};

class RedisBackend final : public Backend {
 public:
  RedisBackend(const std::string& address, const Deadline& deadline)
      : address_(address), deadline_(deadline), control_(address) {
    control_.command({"DEL", kRedisKey});
    const std::string info = infoMemory();
    baseUsed_ = infoField(info, "used_memory");
    baseRss_ = infoField(info, "used_memory_rss");
  }

  std::string name() const override { return "redis"; }

  std::unique_ptr<Session> connect() override {
    return std::make_unique<RedisSession>(address_, deadline_);
  }

  Totals totals() override {
    Totals t;
    t.devices = static_cast<uint64_t>(control_.command({"ZCARD", kRedisKey})->integer);
    const uint64_t used = infoField(infoMemory(), "used_memory");
    t.memoryBytes = used > baseUsed_ ? used - baseUsed_ : 0;
    t.shardsTotal = t.shardsAnswered = 1;
    return t;
  }

  // GEOADD's reply comes after the write: acknowledged is applied.
  Totals waitForReports(uint64_t, const std::string&) override { return totals(); }

  uint64_t rssBytes() override {
    const uint64_t rss = infoField(infoMemory(), "used_memory_rss");
    return rss > baseRss_ ? rss - baseRss_ : 0;
  }

  // INFO cpu: the server's main and background threads, user + system.
  double cpuSeconds() override {
    const Reply r = control_.command({"INFO", "cpu"});
    const std::string info(r->str, r->len);
    return std::strtod(infoValue(info, "used_cpu_sys").c_str(), nullptr) +
           std::strtod(infoValue(info, "used_cpu_user").c_str(), nullptr);
  }

  // Redis stores 52-bit geohashes (positions move by up to ~0.6 m) and
  // GEOSEARCH stops at the radius: answers are not held against a scan.
  bool exact() const override { return false; }

 private:
  std::string infoMemory() {
    const Reply r = control_.command({"INFO", "memory"});
    return std::string(r->str, r->len);
  }

  std::string address_;
  const Deadline& deadline_;
  Connection control_;
  uint64_t baseUsed_ = 0;
  uint64_t baseRss_ = 0;
};

}  // namespace

std::unique_ptr<Backend> makeRedisBackend(const std::string& address, const Deadline& deadline) {
  return std::make_unique<RedisBackend>(address, deadline);
}

}  // namespace locus::bench
