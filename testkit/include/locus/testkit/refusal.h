// A daemon started with options it must refuse: it exits non-zero, says why
// on stderr, and never claims to be listening.
// Uses Catch2.
#pragma once

#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <vector>

#include "locus/testkit/process.h"

namespace locus::testkit {

inline void checkRefusesToStart(const std::string& binary, const std::vector<std::string>& args,
                                const std::string& mention) {
  using namespace std::chrono_literals;
  INFO(binary << " " << Catch::Detail::stringify(args));
  ChildProcess process(binary, args);
  const auto status = process.waitExit(5000ms);
  REQUIRE(status);
  INFO(status->describe());
  CHECK((status->exited && status->code != 0));
  process.waitForStderrClosed(5000ms);
  const std::string err = process.stderrText();
  INFO("stderr:\n" << err);
  CHECK_THAT(err, Catch::Contains(mention));
  CHECK_THAT(err, !Catch::Contains("listening on"));
}

}  // namespace locus::testkit
