// Process logging: one line per event on stderr, "time level name: message".
#pragma once

#include <spdlog/spdlog.h>

#include <string>

namespace locus {

// Makes the default spdlog logger write to stderr under `name`.
void initLogging(const std::string& name);

}  // namespace locus
