// `locus nearest --points FILE` and `locus radius --points FILE`: one
// query for each point of an NDJSON file, asked in calls of many points
// (nearestMany, withinMany), one answer line per point in the file's order.
#pragma once

#include <iosfwd>

#include "locus/client/query_client.h"
#include "locus/common/query.h"

namespace locus::cli {

// The query asked at every point: `each` with its center (nearest) or its
// circle's center (radius) replaced by the point.
struct PointsQuery {
  bool nearest = true;
  NearestQuery each;   // nearest: k, max distance, max age, prefix
  AreaQuery eachArea;  // radius: limit, count only, max age, prefix
  double radiusM = 0;  // radius
  bool requireComplete = false;
};

// Reads {"lat":..,"lon":..} lines from `in` (blank lines skipped, other
// fields ignored), asks them of `server` a batch at a time and prints each
// answer as one line of `out`, as `locus nearest` prints one. A line that
// is not such a point, or a refused call, stops it with {"error":..} (its
// line number) on `err`. Returns the exit status: 0, 1 on an error, 2 when
// requireComplete and some answer was partial. Throws kj::Exception when
// the server cannot be reached.
int askPoints(std::istream& in, client::QueryClient& server, const PointsQuery& query,
              std::ostream& out, std::ostream& err);

}  // namespace locus::cli
