// strata report layer — the SVG picture (in the spirit of FastMM's usage
// tracker): the heap's figures and a legend, the memory map as a grid of
// 64 KiB chunks coloured by use (256 cells to a row; long unmapped gaps
// folded into one labelled line; cells merged 2, 4, ... chunks to a cell
// when the mapped space would need more than kMaxRows rows), and a bar chart
// of the bytes reserved and in use per small size class.
// Layer: report.
#include "report.hpp"

namespace strata::report {

namespace {

constexpr unsigned kCols = 256;     // cells per row
constexpr unsigned kCell = 4;       // pixels per cell
constexpr unsigned kMaxRows = 320;  // grid rows before cells merge chunks
constexpr unsigned kLeft = 130;     // room for the address labels
constexpr unsigned kWidth = kLeft + kCols * kCell + 20;
constexpr unsigned kGapHeight = 14;  // a folded gap's line

inline std::uint64_t chunks(const Run& r) noexcept { return (r.end - r.start) >> 16; }

// The grid's layout for `per_cell` chunks per cell: calls row_fn(first chunk
// of the row block, rows) for every block of rows and gap_fn(bytes) for
// every folded gap, in address order.
template <class Rows, class Gap>
void layout(const Model& m, std::uint64_t per_cell, Rows row_fn, Gap gap_fn) noexcept {
  const std::uint64_t row_chunks = kCols * per_cell;
  std::size_t i = 0;
  const std::size_t n = m.runs.size();
  while (i < n) {
    // Skip unmapped runs; a block starts at the row holding the next mapped chunk.
    while (i < n && m.runs[i].use == STRATA_MAP_UNMAPPED) ++i;
    if (i == n) break;
    const std::uint64_t first = (m.runs[i].start >> 16) / row_chunks * row_chunks;
    std::uint64_t last = m.runs[i].end >> 16;  // one past the last mapped chunk of the block
    std::size_t j = i + 1;
    for (; j < n; ++j) {
      const Run& r = m.runs[j];
      if (r.use == STRATA_MAP_UNMAPPED && chunks(r) >= 2 * row_chunks) break;  // a gap worth folding
      if (r.use != STRATA_MAP_UNMAPPED) last = r.end >> 16;
    }
    const std::uint64_t rows = (last - first + row_chunks - 1) / row_chunks;
    row_fn(first, rows);
    if (j < n) gap_fn(m.runs[j].end - m.runs[j].start);
    i = j;
  }
}

std::uint64_t total_rows(const Model& m, std::uint64_t per_cell, unsigned* gaps) noexcept {
  std::uint64_t rows = 0;
  unsigned g = 0;
  layout(m, per_cell, [&](std::uint64_t, std::uint64_t r) { rows += r; }, [&](std::uint64_t) { ++g; });
  *gaps = g;
  return rows;
}

void rect(Sink& o, double x, double y, double w, double h, const char* fill) noexcept {
  o.str("<rect x=\"").fixed(x, 1).str("\" y=\"").fixed(y, 1).str("\" width=\"").fixed(w, 1).str("\" height=\"")
      .fixed(h, 1).str("\" fill=\"").str(fill).str("\"/>\n");
}

void figure(Sink& o, double x, double y, const char* label, std::uint64_t bytes) noexcept {
  o.str("<text x=\"").fixed(x, 1).str("\" y=\"").fixed(y, 1).str("\" font-size=\"12\">").xml(label).str(": ")
      .bytes(bytes).str(" (").grouped(bytes).str(" bytes)</text>\n");
}

// The cells of run r within a row block starting at chunk `first`, drawn row by row.
void draw_run(Sink& o, const Run& r, const char* name, std::uint64_t first, std::uint64_t rows, std::uint64_t per_cell,
              double y0) noexcept {
  const std::uint64_t block_end = first + rows * kCols * per_cell;
  std::uint64_t a = r.start >> 16, b = r.end >> 16;
  if (b <= first || a >= block_end) return;
  if (a < first) a = first;
  if (b > block_end) b = block_end;
  std::uint64_t ca = (a - first) / per_cell, cb = (b - first + per_cell - 1) / per_cell;  // cells [ca, cb)
  while (ca < cb) {
    const std::uint64_t row = ca / kCols, col = ca % kCols;
    const std::uint64_t n = cb - ca < kCols - col ? cb - ca : kCols - col;
    o.str("<rect class=\"c\" x=\"").dec(kLeft + col * kCell).str("\" y=\"").fixed(y0 + static_cast<double>(row * kCell), 1)
        .str("\" width=\"").dec(n * kCell).str("\" height=\"").dec(kCell).str("\" fill=\"").str(use_colour(r.use))
        .str("\"><title>").hex(r.start).str("-").hex(r.end).ch(' ').str(use_name(r.use)).ch(' ').xml(name)
        .str("</title></rect>\n");
    ca += n;
  }
}

}  // namespace

void write_svg(Sink& o, const Model& m) noexcept {
  const strata_heap_state_t& s = m.state;
  // Grid scale: the fewest chunks per cell that keep the rows within kMaxRows.
  std::uint64_t per_cell = 1;
  unsigned gaps = 0;
  std::uint64_t rows = total_rows(m, per_cell, &gaps);
  while (rows > kMaxRows && per_cell < (std::uint64_t{1} << 30)) {
    per_cell *= 2;
    rows = total_rows(m, per_cell, &gaps);
  }
  const double header_h = 150;
  const double grid_y = header_h + 40;
  const double grid_h = static_cast<double>(rows * kCell) + gaps * kGapHeight + 10.0 * (gaps + 1);
  const double chart_y = grid_y + grid_h + 40;
  const double chart_h = 220;
  const double height = chart_y + chart_h + 70;

  o.str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
  o.str("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"").dec(kWidth).str("\" height=\"").fixed(height, 0)
      .str("\" viewBox=\"0 0 ").dec(kWidth).ch(' ').fixed(height, 0).str("\" font-family=\"sans-serif\">\n");
  o.str("<title>strata heap report: ").xml(m.heap).str(" (pid ").sdec(m.pid).str(")</title>\n");
  rect(o, 0, 0, kWidth, height, "#ffffff");

  // Figures.
  o.str("<text x=\"10\" y=\"22\" font-size=\"16\" font-weight=\"bold\">strata: ").xml(m.heap).str(" of ").xml(m.program)
      .str(" (pid ").sdec(m.pid).str(")").str(s.complete && (!m.has_map || m.map_complete) ? "" : " — incomplete")
      .str("</text>\n");
  const strata_usage_summary_t& u = s.summary;
  figure(o, 10, 44, "allocated", u.allocated_bytes);
  figure(o, 10, 60, "free (reserved)", u.free_bytes);
  figure(o, 10, 76, "overhead", u.overhead_bytes);
  figure(o, 10, 92, "reserved from the OS", u.reserved_bytes);
  o.str("<text x=\"10\" y=\"108\" font-size=\"12\">efficiency: ").fixed(u.efficiency_percent, 1)
      .str(" % (allocated / reserved)</text>\n");
  o.str("<text x=\"420\" y=\"44\" font-size=\"12\">small: ").grouped(s.small.blocks_in_use).str(" blocks, ")
      .bytes(s.small.bytes_in_use).str(" in use, ").bytes(s.small.bytes_reserved).str(" reserved</text>\n");
  o.str("<text x=\"420\" y=\"60\" font-size=\"12\">medium: ").grouped(s.medium.blocks_in_use).str(" blocks, ")
      .bytes(s.medium.bytes_in_use).str(" in use, ").dec(s.medium.pools).str(" pools, largest free ")
      .bytes(s.medium.largest_free_block).str("</text>\n");
  o.str("<text x=\"420\" y=\"76\" font-size=\"12\">large: ").grouped(s.large.blocks_in_use).str(" blocks, ")
      .bytes(s.large.bytes_in_use).str(" in use, ").bytes(s.large.bytes_mapped).str(" mapped, ")
      .dec(s.large.kept_mappings).str(" kept</text>\n");
  o.str("<text x=\"420\" y=\"92\" font-size=\"12\">thread caches: ").dec(s.thread_caches).str("; address map: ")
      .bytes(s.chunk_map_bytes).str("</text>\n");

  // Legend, with each use's total.
  MapTotals t = map_totals(m);
  for (unsigned use = 0; use < 8; ++use) {
    const double x = 10 + (use % 4) * 260.0, y = 122 + (use / 4) * 18.0;
    rect(o, x, y, 12, 12, use_colour(static_cast<strata_map_use>(use)));
    o.str("<text x=\"").fixed(x + 18, 1).str("\" y=\"").fixed(y + 11, 1).str("\" font-size=\"12\">")
        .str(use_name(static_cast<strata_map_use>(use)));
    if (use) o.str(": ").bytes(t.chunks[use] << 16);
    o.str("</text>\n");
  }

  // The memory map.
  o.str("<text x=\"10\" y=\"").fixed(grid_y - 12, 1).str("\" font-size=\"13\" font-weight=\"bold\">Memory map: ")
      .str(per_cell == 1 ? "one 64 KiB chunk" : "").str("</text>\n");
  if (per_cell > 1)
    o.str("<text x=\"260\" y=\"").fixed(grid_y - 12, 1).str("\" font-size=\"12\">a cell is ").dec(per_cell)
        .str(" chunks of 64 KiB</text>\n");
  else
    o.str("<text x=\"260\" y=\"").fixed(grid_y - 12, 1).str("\" font-size=\"12\">per cell, ").dec(kCols)
        .str(" cells (16 MiB) per row</text>\n");
  o.str("<g id=\"map\">\n");
  double y = grid_y;
  layout(
      m, per_cell,
      [&](std::uint64_t first, std::uint64_t nrows) {
        rect(o, kLeft, y, kCols * kCell, static_cast<double>(nrows * kCell), use_colour(STRATA_MAP_UNMAPPED));
        for (std::uint64_t r = 0; r < nrows; r += 16) {  // an address every 16 rows
          o.str("<text x=\"5\" y=\"").fixed(y + static_cast<double>(r * kCell) + 8, 1).str("\" font-size=\"9\">")
              .hex((first + r * kCols * per_cell) << 16, 12).str("</text>\n");
        }
        // Others first, then strata's runs over them (a merged cell shows strata).
        for (int pass = 0; pass < 2; ++pass)
          for (std::size_t i = 0; i < m.runs.size(); ++i) {
            const Run& run = m.runs[i];
            const bool mine = run.use != STRATA_MAP_OTHER && run.use != STRATA_MAP_UNMAPPED;
            if (run.use == STRATA_MAP_UNMAPPED || mine != (pass == 1)) continue;
            draw_run(o, run, m.run_name(run), first, nrows, per_cell, y);
          }
        y += static_cast<double>(nrows * kCell) + 10;
      },
      [&](std::uint64_t bytes) {
        o.str("<text x=\"").dec(kLeft).str("\" y=\"").fixed(y + 9, 1).str("\" font-size=\"10\" fill=\"#666\">… ")
            .bytes(bytes).str(" unmapped …</text>\n");
        y += kGapHeight;
      });
  o.str("</g>\n");

  // Bytes per size class.
  std::uint64_t top = 1;
  for (unsigned c = 0; c < s.class_count && c < STRATA_STATE_MAX_CLASSES; ++c)
    if (s.classes[c].bytes_reserved > top) top = s.classes[c].bytes_reserved;
  o.str("<text x=\"10\" y=\"").fixed(chart_y - 12, 1)
      .str("\" font-size=\"13\" font-weight=\"bold\">Small blocks: bytes reserved (light) and in use (dark) per size class, up to ")
      .bytes(top).str("</text>\n<g id=\"classes\">\n");
  const double bar_w = s.class_count ? (kWidth - 60.0) / s.class_count : 1;
  for (unsigned c = 0; c < s.class_count && c < STRATA_STATE_MAX_CLASSES; ++c) {
    const strata_class_state_t& k = s.classes[c];
    const double x = 40 + c * bar_w;
    const double hr = chart_h * static_cast<double>(k.bytes_reserved) / static_cast<double>(top);
    const double hu = chart_h * static_cast<double>(k.bytes_in_use) / static_cast<double>(top);
    o.str("<g><title>").dec(k.block_size).str(" B: ").grouped(k.blocks_in_use).str(" blocks, ").grouped(k.bytes_in_use)
        .str(" bytes in use, ").grouped(k.bytes_reserved).str(" reserved</title>\n");
    rect(o, x, chart_y + chart_h - hr, bar_w - 2, hr, use_colour(STRATA_MAP_FREE));
    rect(o, x, chart_y + chart_h - hu, bar_w - 2, hu, use_colour(STRATA_MAP_SMALL));
    o.str("</g>\n");
    if (c % 2 == 0) {
      o.str("<text x=\"").fixed(x, 1).str("\" y=\"").fixed(chart_y + chart_h + 14, 1).str("\" font-size=\"9\">")
          .dec(k.block_size).str("</text>\n");
    }
  }
  rect(o, 40, chart_y + chart_h, kWidth - 60.0, 1, "#000000");
  o.str("</g>\n</svg>\n");
}

}  // namespace strata::report
