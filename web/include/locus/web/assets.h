// The live map's files (web/: the page, and what it uses from npm), embedded
// into the binary at build time (web/CMakeLists.txt), so a server serves
// its map with nothing installed beside it and no internet.
#pragma once

#include <string_view>

namespace locus::web {

struct Asset {
  std::string_view path;  // as requested: "/", "/map.js", "/vendor/leaflet.js"
  std::string_view contentType;
  std::string_view body;
};

// The file served at `path`, or null.
const Asset* findAsset(std::string_view path);

// Whether the map was built (false: npm was missing when Locus was
// configured, and "/" says so).
bool mapBuilt();

}  // namespace locus::web
