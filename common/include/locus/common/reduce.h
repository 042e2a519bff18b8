// The reduce step of scatter/gather: combine the partial answers of several
// units into one answer, exactly as one unit holding all the data would.
//
// Units own disjoint ids, so each unit's top-k / limit-cut list suffices for
// the global one; each unit sends its part in the answer's order, so the
// parts are merged, not re-sorted. Should an id appear in more than one
// part (a stale copy during resharding or from a replica), the copy with
// the newest tsMs wins and the duplicate is taken off the total count.
#pragma once

#include <cstdint>
#include <vector>

#include "locus/common/query.h"

namespace locus {

// The global k nearest, ordered by (distance, id). Each part holds one
// unit's k nearest, best in that order (a part out of order costs a sort).
QueryResult mergeNearest(std::vector<QueryResult> parts, uint32_t k);

// The union of area answers. `byDistance` orders by (distance, id) as for
// circles, else by id; `limit` (0 = all) cuts the list; count is the sum of
// the parts' counts less duplicates seen.
QueryResult unionArea(std::vector<QueryResult> parts, uint32_t limit, bool byDistance);

// Total matches of count-only answers.
uint64_t sumCounts(const std::vector<QueryResult>& parts);

// Grid answers summed cell by cell, `cells` long (a part without cells
// holds none: a unit that matched nothing may send an empty list).
std::vector<uint64_t> sumCells(const std::vector<QueryResult>& parts, size_t cells);

}  // namespace locus
