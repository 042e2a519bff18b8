// A key file a daemon reads at start and again on SIGHUP: the keys in use,
// kept when a new version does not parse (and said so), with the reloads
// counted. DeviceAuth (the gateway's --auth-keys) and ClientAuth (the
// server's --api-keys) hold one each.
#pragma once

#include <spdlog/spdlog.h>

#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

#include "locus/common/metrics.h"

namespace locus {

// `Keys` has `static Result<Keys> load(path)` and `size()`.
template <typename Keys>
class KeyFile {
 public:
  // Off: no file, no keys.
  KeyFile() = default;
  // Loads `path`; throws std::runtime_error naming `flag` when it cannot.
  KeyFile(std::string path, std::string flag, std::string what)
      : path_(std::move(path)), flag_(std::move(flag)), what_(std::move(what)) {
    auto keys = Keys::load(path_);
    if (!keys) throw std::runtime_error(flag_ + ": " + keys.error().message);
    keys_.emplace(std::move(*keys));
    spdlog::info("{} required: {} key(s) from {}", what_, keys_->size(), path_);
  }

  bool on() const { return keys_.has_value(); }
  // The keys in use. Precondition: on().
  const Keys& keys() const { return *keys_; }

  // Reads the file again (SIGHUP); on failure keeps the keys in use.
  void reload() {
    if (!keys_) return;
    auto keys = Keys::load(path_);
    if (!keys) {
      failed_.add(1);
      spdlog::error("SIGHUP: kept the {} {} key(s) in use: {}", keys_->size(), what_,
                    keys.error().message);
      return;
    }
    keys_.emplace(std::move(*keys));
    reloaded_.add(1);
    spdlog::info("SIGHUP: {} {} key(s) from {}", keys_->size(), what_, path_);
  }

  // `name`{outcome="ok"|"failed"}: the reloads.
  void expose(metrics::Registry& r, const std::string& name) const {
    const std::string help = "Reloads of the " + flag_ + " file (SIGHUP), by outcome";
    r.counter(name, help, {{"outcome", "ok"}}, reloaded_);
    r.counter(name, help, {{"outcome", "failed"}}, failed_);
  }

 private:
  std::string path_, flag_, what_;
  std::optional<Keys> keys_;
  metrics::Counter reloaded_, failed_;
};

}  // namespace locus
