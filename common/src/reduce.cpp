#include "locus/common/reduce.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <limits>
#include <string_view>
#include <unordered_set>
#include <utility>

namespace locus {
namespace {

// The slow path, for parts that share ids: the hits of all parts, one per
// id (the newest tsMs wins; equal tsMs keeps the nearer, then the first
// part's), ordered by `less` and cut to `keep`; and how many duplicates
// were dropped.
//
// Works on pointers: a Hit (an id string and seven numbers) is moved once,
// into the answer, instead of through a stable sort by id and a second sort
// (the reduce was ~9% of the server's CPU per nearest-10 query that way).
template <typename Less>
std::pair<std::vector<Hit>, uint64_t> uniqueOrderedCut(std::vector<QueryResult>& parts, size_t keep,
                                                       Less less) {
  struct Ref {
    Hit* hit;
    size_t seq;  // arrival order: part, then position in the part
  };
  std::vector<Ref> refs;
  size_t total = 0;
  for (const QueryResult& p : parts) total += p.hits.size();
  refs.reserve(total);
  for (QueryResult& p : parts) {
    for (Hit& h : p.hits) refs.push_back(Ref{&h, refs.size()});
  }
  std::sort(refs.begin(), refs.end(), [](const Ref& a, const Ref& b) {
    if (int c = a.hit->id.compare(b.hit->id); c != 0) return c < 0;
    if (a.hit->tsMs != b.hit->tsMs) return a.hit->tsMs > b.hit->tsMs;
    // NaN (no centre) after every distance, so the order stays strict-weak.
    const double da = a.hit->distanceM, db = b.hit->distanceM;
    if (std::isnan(da) != std::isnan(db)) return std::isnan(db);
    if (da < db || db < da) return da < db;
    return a.seq < b.seq;
  });
  auto last = std::unique(refs.begin(), refs.end(),
                          [](const Ref& a, const Ref& b) { return a.hit->id == b.hit->id; });
  const uint64_t duplicates = static_cast<uint64_t>(std::distance(last, refs.end()));
  refs.erase(last, refs.end());

  const auto byLess = [&less](const Ref& a, const Ref& b) { return less(*a.hit, *b.hit); };
  if (keep < refs.size()) {
    std::partial_sort(refs.begin(), refs.begin() + static_cast<std::ptrdiff_t>(keep), refs.end(),
                      byLess);
    refs.resize(keep);
  } else {
    std::sort(refs.begin(), refs.end(), byLess);
  }
  std::vector<Hit> out;
  out.reserve(refs.size());
  for (const Ref& r : refs) out.push_back(std::move(*r.hit));
  return {std::move(out), duplicates};
}

bool sharesIds(const std::vector<QueryResult>& parts, size_t total) {
  std::unordered_set<std::string_view> seen;
  seen.reserve(total);
  for (const QueryResult& p : parts) {
    for (const Hit& h : p.hits) {
      if (!seen.insert(h.id).second) return true;
    }
  }
  return false;
}

// The parts' hits ordered by `less` and cut to `keep`, and how many
// duplicate ids were dropped. Units send their parts already in order and
// own disjoint ids, so this is a k-way merge that stops at `keep`; a part
// out of order is sorted first, and parts that share an id (a stale copy
// during resharding) take the slow path above.
template <typename Less>
std::pair<std::vector<Hit>, uint64_t> mergeOrdered(std::vector<QueryResult>& parts, size_t keep,
                                                   Less less) {
  size_t total = 0;
  for (QueryResult& p : parts) {
    total += p.hits.size();
    if (!std::is_sorted(p.hits.begin(), p.hits.end(), less))
      std::sort(p.hits.begin(), p.hits.end(), less);
  }
  if (sharesIds(parts, total)) return uniqueOrderedCut(parts, keep, less);

  struct Cursor {
    Hit* at;
    Hit* end;
  };
  std::vector<Cursor> heap;
  heap.reserve(parts.size());
  for (QueryResult& p : parts) {
    if (!p.hits.empty()) heap.push_back(Cursor{p.hits.data(), p.hits.data() + p.hits.size()});
  }
  // std::*_heap keep the greatest first: invert `less` for the nearest.
  const auto later = [&less](const Cursor& a, const Cursor& b) { return less(*b.at, *a.at); };
  std::make_heap(heap.begin(), heap.end(), later);
  std::vector<Hit> out;
  out.reserve(std::min(keep, total));
  while (out.size() < keep && !heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), later);
    Cursor& next = heap.back();
    out.push_back(std::move(*next.at));
    if (++next.at == next.end) {
      heap.pop_back();
    } else {
      std::push_heap(heap.begin(), heap.end(), later);
    }
  }
  return {std::move(out), 0};
}

}  // namespace

QueryResult mergeNearest(std::vector<QueryResult> parts, uint32_t k) {
  QueryResult out;
  out.hits = mergeOrdered(parts, k, nearerThan).first;
  out.count = out.hits.size();
  return out;
}

QueryResult unionArea(std::vector<QueryResult> parts, uint32_t limit, bool byDistance) {
  const uint64_t counted = sumCounts(parts);
  const size_t keep = limit == 0 ? std::numeric_limits<size_t>::max() : limit;
  auto [hits, duplicates] =
      byDistance ? mergeOrdered(parts, keep, nearerThan) : mergeOrdered(parts, keep, idBefore);
  QueryResult out;
  out.count = counted >= duplicates ? counted - duplicates : 0;
  out.hits = std::move(hits);
  return out;
}

std::vector<uint64_t> sumCells(const std::vector<QueryResult>& parts, size_t cells) {
  std::vector<uint64_t> sum(cells, 0);
  for (const QueryResult& p : parts) {
    for (size_t i = 0; i < std::min(cells, p.cells.size()); ++i) sum[i] += p.cells[i];
  }
  return sum;
}

uint64_t sumCounts(const std::vector<QueryResult>& parts) {
  uint64_t total = 0;
  for (const QueryResult& p : parts) total += p.count;
  return total;
}

}  // namespace locus
