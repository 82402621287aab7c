// strata report layer — what the writers share about the model: the names
// and colours of the memory map's uses and the map's totals.
// Layer: report (no strata core; linked into strata-report too).
#include "report.hpp"

namespace strata::report {

const char* use_name(strata_map_use use) noexcept {
  switch (use) {
    case STRATA_MAP_UNMAPPED: return "unmapped";
    case STRATA_MAP_SMALL: return "small";
    case STRATA_MAP_MEDIUM: return "medium";
    case STRATA_MAP_LARGE: return "large";
    case STRATA_MAP_BOOKKEEPING: return "bookkeeping";
    case STRATA_MAP_FREE: return "free";
    case STRATA_MAP_OTHER_HEAP: return "other-heap";
    case STRATA_MAP_OTHER: return "other";
  }
  return "unknown";
}

const char* use_colour(strata_map_use use) noexcept {
  switch (use) {
    case STRATA_MAP_UNMAPPED: return "#f2f2f2";
    case STRATA_MAP_SMALL: return "#2e7d32";
    case STRATA_MAP_MEDIUM: return "#1565c0";
    case STRATA_MAP_LARGE: return "#6a1b9a";
    case STRATA_MAP_BOOKKEEPING: return "#ef6c00";
    case STRATA_MAP_FREE: return "#a5d6a7";
    case STRATA_MAP_OTHER_HEAP: return "#80deea";
    case STRATA_MAP_OTHER: return "#9e9e9e";
  }
  return "#000000";
}

MapTotals map_totals(const Model& m) noexcept {
  MapTotals t;
  for (std::size_t i = 0; i < m.runs.size(); ++i) {
    const Run& r = m.runs[i];
    if (static_cast<unsigned>(r.use) < 8) t.chunks[r.use] += (r.end - r.start) >> 16;
  }
  t.runs = m.runs.size();
  return t;
}

}  // namespace strata::report
