// The query flags of the SPEC's CLI (`nearest`, `radius`, `box`), shared by
// every Locus command-line tool that asks queries.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "locus/common/query.h"

namespace locus::cli {

// Binds `nearest --lat --lon [-k] [--max-distance-m] [--max-age-s] [--prefix P]`.
inline void addNearestFlags(CLI::App* cmd, NearestQuery& q) {
  cmd->add_option("--lat", q.center.lat, "latitude, degrees")->required();
  cmd->add_option("--lon", q.center.lon, "longitude, degrees")->required();
  cmd->add_option("-k", q.k, "how many")->capture_default_str();
  cmd->add_option("--max-distance-m", q.maxDistanceM, "0 = unlimited")->capture_default_str();
  cmd->add_option("--max-age-s", q.maxAgeS, "0 = any age")->capture_default_str();
  cmd->add_option("--prefix", q.idPrefix, "only devices whose id starts with this");
}

// Binds `[--limit N] [--count] [--max-age-s S] [--prefix P]`, common to area queries.
inline void addAreaFlags(CLI::App* cmd, AreaQuery& q) {
  cmd->add_option("--limit", q.limit, "at most N results (0 = all)")->capture_default_str();
  cmd->add_flag("--count", q.countOnly, "only count the matches");
  cmd->add_option("--max-age-s", q.maxAgeS, "0 = any age")->capture_default_str();
  cmd->add_option("--prefix", q.idPrefix, "only devices whose id starts with this");
}

// Binds `radius --lat --lon --radius-m`.
inline void addCircleFlags(CLI::App* cmd, Circle& c) {
  cmd->add_option("--lat", c.center.lat, "latitude, degrees")->required();
  cmd->add_option("--lon", c.center.lon, "longitude, degrees")->required();
  cmd->add_option("--radius-m", c.radiusM, "radius, metres")->required();
}

// Binds `box --south --west --north --east` (west > east crosses the antimeridian).
inline void addBoxFlags(CLI::App* cmd, geo::Box& b) {
  cmd->add_option("--south", b.south, "degrees")->required();
  cmd->add_option("--west", b.west, "degrees")->required();
  cmd->add_option("--north", b.north, "degrees")->required();
  cmd->add_option("--east", b.east, "degrees")->required();
}

// The query commands both tools offer: `nearest`, `radius`, `box`, `get ID`
// and `stats`, bound to one set of variables.
struct QueryCommands {
  NearestQuery nearest;
  AreaQuery radius, box;
  Circle circle;
  geo::Box boxArea;
  std::string id;
  CLI::App* nearestCmd = nullptr;
  CLI::App* radiusCmd = nullptr;
  CLI::App* boxCmd = nullptr;
  CLI::App* getCmd = nullptr;
  CLI::App* statsCmd = nullptr;

  // After parsing: the radius or box query the command line asked for, with
  // its area set, or null.
  AreaQuery* area() {
    if (*radiusCmd) {
      radius.area = circle;
      return &radius;
    }
    if (*boxCmd) {
      box.area = boxArea;
      return &box;
    }
    return nullptr;
  }
};

// Adds the query commands to `app`; `statsHelp` says what stats lists.
inline void addQueryCommands(CLI::App& app, QueryCommands& q, const std::string& statsHelp) {
  q.nearestCmd = app.add_subcommand("nearest", "the k devices nearest a point, nearest first");
  addNearestFlags(q.nearestCmd, q.nearest);
  q.radiusCmd = app.add_subcommand("radius", "devices within a radius, nearest first");
  addCircleFlags(q.radiusCmd, q.circle);
  addAreaFlags(q.radiusCmd, q.radius);
  q.boxCmd = app.add_subcommand("box", "devices inside a box (west > east crosses 180°)");
  addBoxFlags(q.boxCmd, q.boxArea);
  addAreaFlags(q.boxCmd, q.box);
  q.getCmd = app.add_subcommand("get", "the stored position of one device");
  q.getCmd->add_option("id", q.id, "device id")->required();
  q.statsCmd = app.add_subcommand("stats", statsHelp);
}

}  // namespace locus::cli
