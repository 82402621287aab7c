// strata report layer — the text report, in the spirit of FastMM's state
// report: a header, a row per small size class, the medium and large tiers,
// the usage summary and the memory map's totals.
// Layer: report.
#include "report.hpp"

namespace strata::report {

namespace {

double percent(std::uint64_t part, std::uint64_t whole) noexcept {
  return whole ? 100.0 * static_cast<double>(part) / static_cast<double>(whole) : 0.0;
}

void line(Sink& o, const char* label, std::uint64_t v, const char* note) noexcept {
  o.str("  ").pad(label, 14).grouped(v, 16);
  if (*note) o.str("  ").str(note);
  o.ch('\n');
}

}  // namespace

void write_text(Sink& o, const Model& m) noexcept {
  const strata_heap_state_t& s = m.state;
  o.str("strata heap report: ").str(m.heap);
  if (m.module[0]) o.str(" of ").str(m.module);
  o.str(" (pid ").sdec(m.pid).str(m.program[0] ? ", " : "").str(m.program).str(")\n");
  if (!s.complete) o.str("  INCOMPLETE: ").dec(s.skipped_locks).str(" busy lock(s) skipped\n");
  o.ch('\n');

  o.str("Small blocks (").dec(s.class_count).str(" size classes, 64 KiB spans)\n");
  o.str("   block      blocks     bytes in use    free in spans   in caches    spans    bytes reserved   usage\n");
  strata_class_state_t total{};
  for (unsigned c = 0; c < s.class_count && c < STRATA_STATE_MAX_CLASSES; ++c) {
    const strata_class_state_t& k = s.classes[c];
    total.blocks_in_use += k.blocks_in_use;
    total.bytes_in_use += k.bytes_in_use;
    total.blocks_free_in_spans += k.blocks_free_in_spans;
    total.blocks_in_thread_caches += k.blocks_in_thread_caches;
    total.spans += k.spans;
    total.bytes_reserved += k.bytes_reserved;
    if (!k.spans && !k.blocks_in_thread_caches && !k.blocks_in_use && !k.bytes_reserved) continue;  // a class never used
    o.field(k.block_size, 8, false).grouped(k.blocks_in_use, 12).grouped(k.bytes_in_use, 17)
        .grouped(k.blocks_free_in_spans, 17).grouped(k.blocks_in_thread_caches, 12).grouped(k.spans, 9)
        .grouped(k.bytes_reserved, 18).fixed(percent(k.bytes_in_use, k.bytes_reserved), 1, 7).str("%\n");
  }
  o.str("   total").grouped(total.blocks_in_use, 12).grouped(total.bytes_in_use, 17)
      .grouped(total.blocks_free_in_spans, 17).grouped(total.blocks_in_thread_caches, 12).grouped(total.spans, 9)
      .grouped(total.bytes_reserved, 18).fixed(percent(total.bytes_in_use, total.bytes_reserved), 1, 7).str("%\n");
  o.str("   tier: ").grouped(s.small.bytes_reserved).str(" bytes reserved (").dec(s.small.empty_spans)
      .str(" empty spans kept), ").grouped(s.small.free_bytes).str(" free\n\n");

  const strata_medium_state_t& md = s.medium;
  o.str("Medium blocks (1.25 MiB pools)\n");
  line(o, "in use", md.bytes_in_use, "");
  o.str("  ").pad("blocks", 14).grouped(md.blocks_in_use, 16).str("\n");
  line(o, "reserved", md.bytes_reserved, "");
  o.str("  ").pad("pools", 14).grouped(md.pools, 16).str("\n");
  o.str("  ").pad("free", 14).grouped(md.free_bytes, 16).str("  in ").grouped(md.free_runs).str(" runs (largest ")
      .grouped(md.largest_free_block).str("), ").dec(md.bins_in_use).str(" bins in use\n");
  o.str("  ").pad("in caches", 14).grouped(md.bytes_in_thread_caches, 16).str("  in ").grouped(md.blocks_in_thread_caches)
      .str(" blocks\n\n");

  const strata_large_state_t& lg = s.large;
  o.str("Large blocks (one mapping each)\n");
  o.str("  ").pad("blocks", 14).grouped(lg.blocks_in_use, 16).str("\n");
  line(o, "requested", lg.bytes_requested, "");
  line(o, "usable", lg.bytes_in_use, "");
  line(o, "mapped", lg.bytes_mapped, "");
  o.str("  ").pad("kept", 14).grouped(lg.kept_bytes, 16).str("  in ").grouped(lg.kept_mappings).str(" mappings\n");
  o.str("  ").pad("parked", 14).grouped(lg.parked_bytes, 16).str("  in ").grouped(lg.parked_mappings)
      .str(" mappings\n\n");

  const strata_usage_summary_t& u = s.summary;
  o.str("Usage summary\n");
  line(o, "allocated", u.allocated_bytes, "bytes the program holds (usable sizes)");
  line(o, "free", u.free_bytes, "reserved, free for reuse");
  o.str("  ").pad("overhead", 14).grouped(u.overhead_bytes, 16).str("  headers, tags, span tails; bookkeeping ")
      .grouped(s.bookkeeping_bytes).str("\n");
  line(o, "reserved", u.reserved_bytes, "from the OS, counted from the heap's structures");
  o.str("  ").pad("os count", 14).grouped(u.os_reserved_bytes, 16).str("  the heap's own count of what it mapped (peak ")
      .grouped(s.peak_os_reserved_bytes).str(", ").grouped(s.os_map_calls).str(" mmap calls)\n");
  o.str("  ").pad("efficiency", 14).fixed(u.efficiency_percent, 1, 16).str(" %  allocated / reserved\n");
  o.str("  ").pad("thread caches", 14).grouped(s.thread_caches, 16).str("\n");
  line(o, "address map", s.chunk_map_bytes, "strata's chunk map (process-wide)");

  if (m.has_map) {
    MapTotals t = map_totals(m);
    o.str("\nMemory map (47-bit address space, 64 KiB chunks; ").grouped(t.runs).str(" runs")
        .str(m.map_complete ? "" : ", INCOMPLETE").str(")\n");
    for (unsigned use = 1; use < 8; ++use) {
      o.str("  ").pad(use_name(static_cast<strata_map_use>(use)), 14).grouped(t.chunks[use], 16).str(" chunks  ")
          .bytes(t.chunks[use] << 16).ch('\n');
    }
  }
}

}  // namespace strata::report
