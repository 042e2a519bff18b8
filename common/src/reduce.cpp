#include "locus/common/reduce.h"

#include <algorithm>
#include <iterator>

namespace locus {
namespace {

// All hits of all parts, one per id (the newest tsMs wins; equal tsMs keeps
// the nearer, then the first part's), and how many duplicates were dropped.
std::pair<std::vector<Hit>, uint64_t> gatherUnique(std::vector<QueryResult>& parts) {
  std::vector<Hit> all;
  size_t total = 0;
  for (const QueryResult& p : parts) total += p.hits.size();
  all.reserve(total);
  for (QueryResult& p : parts) std::move(p.hits.begin(), p.hits.end(), std::back_inserter(all));
  std::stable_sort(all.begin(), all.end(), [](const Hit& a, const Hit& b) {
    if (a.id != b.id) return a.id < b.id;
    if (a.tsMs != b.tsMs) return a.tsMs > b.tsMs;
    return a.distanceM < b.distanceM;
  });
  auto last = std::unique(all.begin(), all.end(),
                          [](const Hit& a, const Hit& b) { return a.id == b.id; });
  const uint64_t duplicates = static_cast<uint64_t>(std::distance(last, all.end()));
  all.erase(last, all.end());
  return {std::move(all), duplicates};
}

void orderAndCut(std::vector<Hit>& hits, size_t keep, bool byDistance) {
  auto less = byDistance ? nearerThan : idBefore;
  if (keep < hits.size()) {
    std::partial_sort(hits.begin(), hits.begin() + static_cast<std::ptrdiff_t>(keep), hits.end(),
                      less);
    hits.resize(keep);
  } else {
    std::sort(hits.begin(), hits.end(), less);
  }
}

}  // namespace

QueryResult mergeNearest(std::vector<QueryResult> parts, uint32_t k) {
  auto [hits, duplicates] = gatherUnique(parts);
  (void)duplicates;
  QueryResult out;
  orderAndCut(hits, k, /*byDistance=*/true);
  out.hits = std::move(hits);
  out.count = out.hits.size();
  return out;
}

QueryResult unionArea(std::vector<QueryResult> parts, uint32_t limit, bool byDistance) {
  const uint64_t counted = sumCounts(parts);
  auto [hits, duplicates] = gatherUnique(parts);
  QueryResult out;
  out.count = counted >= duplicates ? counted - duplicates : 0;
  orderAndCut(hits, limit == 0 ? hits.size() : limit, byDistance);
  out.hits = std::move(hits);
  return out;
}

uint64_t sumCounts(const std::vector<QueryResult>& parts) {
  uint64_t total = 0;
  for (const QueryResult& p : parts) total += p.count;
  return total;
}

}  // namespace locus
