#include "locus/common/log.h"

#include <spdlog/sinks/stdout_sinks.h>

namespace locus {

void initLogging(const std::string& name) {
  auto logger = spdlog::stderr_logger_mt(name);
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %l %n: %v");
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

}  // namespace locus
