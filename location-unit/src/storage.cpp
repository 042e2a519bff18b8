#include "locus/unit/storage.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <kj/debug.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <stdexcept>

#include "locus/unit/log_format.h"

namespace locus::unit {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr size_t kSnapshotBatch = 1000;          // reports per snapshot record
constexpr size_t kSnapshotFlushBytes = 1 << 20;  // write the snapshot in 1 MiB pieces
constexpr auto kSnapshotRetry = std::chrono::seconds(60);

std::string errnoText(int error) {
  return std::strerror(error);
}

std::runtime_error failure(const std::string& what, int error) {
  return std::runtime_error(what + ": " + errnoText(error));
}

// Writes all of `data` at the end of `fd`; the errno of a failure, or 0.
int writeAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if (n == 0) return EIO;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return 0;
}

// Makes the names in `dir` (a creation, a rename, a removal) durable.
int syncDir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno;
  const int r = ::fsync(fd) == 0 ? 0 : errno;
  ::close(fd);
  return r;
}

std::string readFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string fileName(const char* kind, uint64_t n) {
  return fmt::format("{}-{:012}.locus", kind, n);
}

// The data files of a dir by number: "log-<n>.locus", "snapshot-<n>.locus".
struct DataFiles {
  std::map<uint64_t, fs::path> logs, snapshots;
  uint64_t highest() const {
    uint64_t n = 0;
    if (!logs.empty()) n = std::max(n, logs.rbegin()->first);
    if (!snapshots.empty()) n = std::max(n, snapshots.rbegin()->first);
    return n;
  }
};

DataFiles listDataFiles(const fs::path& dir) {
  DataFiles files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name.ends_with(".tmp")) {
      fs::remove(entry.path());  // an unfinished snapshot or incarnation
      continue;
    }
    unsigned long long n = 0;
    char kind[16] = {};
    int used = 0;
    if (std::sscanf(name.c_str(), "%15[a-z]-%llu.locus%n", kind, &n, &used) != 2 ||
        static_cast<size_t>(used) != name.size())
      continue;  // not ours, or ours with something after it (a copy, a backup)
    if (std::strcmp(kind, "log") == 0) files.logs[n] = entry.path();
    if (std::strcmp(kind, "snapshot") == 0) files.snapshots[n] = entry.path();
  }
  return files;
}

uint64_t newIncarnation() {
  std::random_device random;
  return (uint64_t{random()} << 32 | random()) | 1;  // never 0
}

// Writes `text` to `path` through a synced temporary file and a rename.
void writeDurably(const fs::path& path, const std::string& text) {
  const std::string tmp = path.string() + ".tmp";
  const int fd = ::open(tmp.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0) throw failure("cannot create " + tmp, errno);
  int error = writeAll(fd, text);
  if (error == 0 && ::fdatasync(fd) != 0) error = errno;
  ::close(fd);
  if (error == 0 && ::rename(tmp.c_str(), path.c_str()) != 0) error = errno;
  if (error == 0) error = syncDir(path.parent_path().string());
  if (error != 0) throw failure("cannot write " + path.string(), error);
}

}  // namespace

std::optional<FsyncPolicy> parseFsyncPolicy(std::string_view text) {
  if (text == "always") return FsyncPolicy::kAlways;
  if (text == "interval") return FsyncPolicy::kInterval;
  if (text == "never") return FsyncPolicy::kNever;
  return std::nullopt;
}

const char* toString(FsyncPolicy policy) {
  switch (policy) {
    case FsyncPolicy::kAlways:
      return "always";
    case FsyncPolicy::kInterval:
      return "interval";
    case FsyncPolicy::kNever:
      return "never";
  }
  return "?";
}

Storage::Storage(StorageOptions options, LocationIndex& index) : options_(std::move(options)) {
  KJ_REQUIRE(index.size() == 0, "recovery needs an empty index", index.size());
  const auto started = Clock::now();
  const fs::path dir(options_.dir);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw std::runtime_error("cannot create " + options_.dir + ": " + ec.message());

  const std::string lock = (dir / "LOCK").string();
  lockFd_ = ::open(lock.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  if (lockFd_ < 0) throw failure("cannot open " + lock, errno);
  if (::flock(lockFd_, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    ::close(lockFd_);
    throw std::runtime_error(options_.dir + " is in use by another unit (" + errnoText(error) +
                             ")");
  }

  // A start that fails releases the dir: a later try in this process
  // (a test, an embedded unit) must not find it locked.
  try {
    DataFiles files = listDataFiles(dir);
    const fs::path incarnationPath = dir / "INCARNATION";
    if (fs::exists(incarnationPath)) {
      incarnation_ = std::stoull(readFile(incarnationPath), nullptr, 16);
    } else {
      if (!files.logs.empty() || !files.snapshots.empty())
        throw std::runtime_error(options_.dir +
                                 " holds data files but no INCARNATION: not a unit's data dir, "
                                 "or damaged");
      incarnation_ = newIncarnation();
      writeDurably(incarnationPath, fmt::format("{:016x}\n", incarnation_));
      recovery_.fresh = true;
    }

    // The newest snapshot, then every log from its number on.
    index.beginLoad();
    uint64_t from = 0;
    if (!files.snapshots.empty()) {
      const auto& [n, path] = *files.snapshots.rbegin();
      const std::string data = readFile(path);
      const logfmt::Scan s = logfmt::scan(data, [&](const Report& r) { index.apply(r); });
      if (s.problem)
        throw std::runtime_error("snapshot " + path.string() + " is damaged at byte " +
                                 std::to_string(s.validBytes) + ": " + *s.problem +
                                 " (it was synced before use, so the disk lost data)");
      recovery_.snapshotReports = s.reports;
      lastSnapshotBytes_ = data.size();
      from = n;
    }
    // Only the last log that holds anything can end in a torn write: every
    // start begins a new log, and a refused append is cut at once.
    uint64_t lastWritten = 0;
    for (const auto& [n, path] : files.logs) {
      if (n >= from && fs::file_size(path) > 0) lastWritten = n;
    }
    for (const auto& [n, path] : files.logs) {
      if (n < from) continue;
      const std::string data = readFile(path);
      const logfmt::Scan s = logfmt::scan(data, [&](const Report& r) { index.apply(r); });
      recovery_.logRecords += s.records;
      recovery_.logReports += s.reports;
      logBytes_ += s.validBytes;
      if (!s.problem) continue;
      if (n != lastWritten || !s.atTail) {
        // Damage, not a torn write: cutting it would drop acknowledged
        // batches after it. Say so and let an operator decide.
        throw std::runtime_error(fmt::format(
            "{} is damaged at byte {} of {} ({} after {} intact records); it is not a torn "
            "write at the end, so it is not cut: move it aside to start without what follows",
            path.string(), s.validBytes, data.size(), *s.problem, s.records));
      }
      const uint64_t cut = data.size() - s.validBytes;
      spdlog::warn("{}: {} after {} intact records: cut {} bytes there (a write the crash tore)",
                   path.string(), *s.problem, s.records, cut);
      if (::truncate(path.c_str(), static_cast<off_t>(s.validBytes)) != 0)
        throw failure("cannot cut " + path.string(), errno);
      recovery_.cutBytes += cut;
    }
    index.endLoad();
    // What was read may still be only in the page cache (a killed process
    // loses nothing, a machine may): make it durable before writing after
    // it, so that after a power loss it is never a torn stretch followed
    // by newer records.
    for (const auto& [n, path] : files.logs) {
      if (n < from) continue;
      const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0 || ::fsync(fd) != 0) {
        const int error = errno;
        if (fd >= 0) ::close(fd);
        throw failure("cannot sync " + path.string(), error);
      }
      ::close(fd);
    }
    // What a snapshot made redundant, should a crash have left it.
    for (const auto& [n, path] : files.logs) {
      if (n < from) fs::remove(path);
    }
    for (const auto& [n, path] : files.snapshots) {
      if (n < from) fs::remove(path);
    }
    logSeq_ = files.highest();
    openNextLog();
    recovery_.seconds = std::chrono::duration<double>(Clock::now() - started).count();
    lastSync_ = Clock::now();
    counters_.writable.set(1);
    counters_.logBytes.set(static_cast<double>(logBytes_));
  } catch (...) {
    if (logFd_ >= 0) ::close(logFd_);
    ::close(lockFd_);
    logFd_ = lockFd_ = -1;
    throw;
  }
}

Storage::~Storage() {
  if (dirty_ && !failed_ && ::fdatasync(logFd_) != 0)
    spdlog::error("{}: the last writes could not be synced: {}", options_.dir, errnoText(errno));
  if (logFd_ >= 0) ::close(logFd_);
  if (lockFd_ >= 0) ::close(lockFd_);  // releases the lock
}

void Storage::openNextLog() {
  const std::string path = (fs::path(options_.dir) / fileName("log", ++logSeq_)).string();
  const int fd = ::open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) throw failure("cannot create " + path, errno);
  if (const int error = syncDir(options_.dir); error != 0) {
    ::close(fd);
    throw failure("cannot sync " + options_.dir, error);
  }
  if (logFd_ >= 0) {
    if (dirty_ && !failed_) {
      if (::fdatasync(logFd_) == 0) {
        ++counters_.syncs;
      } else {
        failed_ = fmt::format("cannot sync the log in {}: {}", options_.dir, errnoText(errno));
        counters_.writable.set(0);
        spdlog::error("{}; this unit stores nothing more until it restarts", *failed_);
      }
    }
    ::close(logFd_);
  }
  logFd_ = fd;
  logFileBytes_ = 0;
  dirty_ = false;
}

std::optional<std::string> Storage::append(std::span<const Report> reports) {
  if (failed_) return failed_;
  buffer_.clear();
  logfmt::appendBatch(reports, buffer_);
  if (const int error = writeAll(logFd_, buffer_); error != 0) {
    // Nothing of a refused batch may stay: cut what part of it got in.
    if (::ftruncate(logFd_, static_cast<off_t>(logFileBytes_)) != 0) {
      failed_ = fmt::format("cannot write the log in {} ({}), nor cut the partial write ({})",
                            options_.dir, errnoText(error), errnoText(errno));
      counters_.writable.set(0);
      spdlog::error("{}; this unit stores nothing more until it restarts", *failed_);
    }
    ++counters_.appendErrors;
    return fmt::format("cannot store the batch in {}: {}", options_.dir, errnoText(error));
  }
  logFileBytes_ += buffer_.size();
  logBytes_ += buffer_.size();
  ++counters_.appends;
  counters_.logBytes.set(static_cast<double>(logBytes_));
  dirty_ = true;
  if (options_.fsync == FsyncPolicy::kAlways && !grouping_) return sync();
  return std::nullopt;
}

std::optional<std::string> Storage::endGroup() {
  grouping_ = false;
  if (options_.fsync == FsyncPolicy::kAlways) return sync();
  return failed_;
}

std::optional<std::string> Storage::sync() {
  if (failed_) return failed_;
  if (!dirty_) return std::nullopt;
  if (::fdatasync(logFd_) != 0) {
    // The kernel may have dropped the pages it could not write: what is in
    // the file can no longer be vouched for.
    failed_ = fmt::format("cannot sync the log in {}: {}", options_.dir, errnoText(errno));
    counters_.writable.set(0);
    spdlog::error("{}; this unit stores nothing more until it restarts", *failed_);
    return failed_;
  }
  dirty_ = false;
  lastSync_ = Clock::now();
  ++counters_.syncs;
  return std::nullopt;
}

std::chrono::milliseconds Storage::idleFor() const {
  if (options_.fsync != FsyncPolicy::kInterval || !dirty_ || failed_)
    return std::chrono::milliseconds(1000);
  const auto due = lastSync_ + options_.fsyncInterval - Clock::now();
  return std::max(std::chrono::milliseconds(0), std::chrono::ceil<std::chrono::milliseconds>(due));
}

void Storage::tick(const LocationIndex& index) {
  if (options_.fsync == FsyncPolicy::kInterval && dirty_ &&
      Clock::now() - lastSync_ >= options_.fsyncInterval) {
    (void)sync();  // a failure is logged and refuses later writes
  }
  if (logBytes_ > std::max(options_.snapshotAfterBytes, lastSnapshotBytes_) &&
      Clock::now() >= nextSnapshotTry_ && !failed_) {
    if (auto error = snapshot(index)) {
      spdlog::error("{}; the logs stay, next try in {} s", *error, kSnapshotRetry.count());
      nextSnapshotTry_ = Clock::now() + kSnapshotRetry;
    }
  }
}

std::optional<std::string> Storage::snapshot(const LocationIndex& index) {
  if (failed_) return failed_;
  const auto started = Clock::now();
  // Reports applied from now on go to a new log, which the snapshot does
  // not cover; the snapshot covers every log before it.
  try {
    openNextLog();
  } catch (const std::exception& e) {
    ++counters_.snapshotErrors;
    return fmt::format("cannot start a log for the snapshot: {}", e.what());
  }
  if (failed_) return failed_;
  const uint64_t n = logSeq_;
  const fs::path path = fs::path(options_.dir) / fileName("snapshot", n);
  const std::string tmp = path.string() + ".tmp";
  const int fd = ::open(tmp.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0) return fmt::format("cannot create {}: {}", tmp, errnoText(errno));
  int error = 0;
  uint64_t bytes = 0;
  std::string out;
  std::optional<logfmt::BatchEncoder> batch;
  const auto flush = [&] {
    if (batch) batch->finish();
    batch.reset();
    if (error == 0) error = writeAll(fd, out);
    bytes += out.size();
    out.clear();
  };
  index.forEach([&](const Report& r) {
    if (!batch) batch.emplace(out);
    batch->add(r);
    if (batch->count() >= kSnapshotBatch) {
      batch->finish();
      batch.reset();
      if (out.size() >= kSnapshotFlushBytes) flush();
    }
  });
  flush();
  if (error == 0 && ::fdatasync(fd) != 0) error = errno;
  ::close(fd);
  if (error == 0 && ::rename(tmp.c_str(), path.c_str()) != 0) error = errno;
  if (error == 0) error = syncDir(options_.dir);
  if (error != 0) {
    ::unlink(tmp.c_str());
    ++counters_.snapshotErrors;
    return fmt::format("cannot write the snapshot {}: {}", path.string(), errnoText(error));
  }
  // The snapshot is durable: the logs and snapshots before it can go.
  const DataFiles files = listDataFiles(options_.dir);
  for (const auto& [m, p] : files.logs) {
    if (m < n) fs::remove(p);
  }
  for (const auto& [m, p] : files.snapshots) {
    if (m < n) fs::remove(p);
  }
  lastSnapshotBytes_ = bytes;
  logBytes_ = logFileBytes_;
  counters_.logBytes.set(static_cast<double>(logBytes_));
  ++counters_.snapshots;
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  counters_.snapshotSeconds.set(seconds);
  spdlog::info("{}: snapshot of {} devices ({} bytes) in {:.3f} s", options_.dir, index.size(),
               bytes, seconds);
  return std::nullopt;
}

}  // namespace locus::unit
