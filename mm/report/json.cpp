// strata report layer — the JSON report, schema version kSchemaVersion
// (docs/introspection.md and docs/report.schema.json; tools/strata_report.cpp
// reads it back).  Keys are never removed within a schema version; new keys
// may appear.
// Layer: report.
#include "report.hpp"

namespace strata::report {

namespace {

struct Obj {  // writes "key": value pairs with the commas between
  Sink& o;
  bool first = true;
  Sink& key(const char* k) noexcept {
    if (!first) o.ch(',');
    first = false;
    return o.json_string(k).ch(':');
  }
  void num(const char* k, std::uint64_t v) noexcept { key(k).dec(v); }
};

void hex_string(Sink& o, std::uint64_t v) noexcept { o.ch('"').hex(v, 12).ch('"'); }

}  // namespace

void write_json(Sink& o, const Model& m) noexcept {
  const strata_heap_state_t& s = m.state;
  o.str("{\n");
  Obj top{o};
  top.num("schema", kSchemaVersion);
  top.key("generator").json_string(m.generator);
  top.key("heap").json_string(m.heap);
  top.key("module").json_string(m.module);
  top.key("program").json_string(m.program);
  top.key("pid").sdec(m.pid);
  top.key("time").sdec(m.time);
  top.key("complete").str(s.complete && (!m.has_map || m.map_complete) ? "true" : "false");
  top.key("state_complete").str(s.complete ? "true" : "false");
  top.key("map_complete").str(!m.has_map || m.map_complete ? "true" : "false");
  top.num("skipped_locks", s.skipped_locks);
  top.num("thread_caches", s.thread_caches);

  o.str(",\n\"classes\":[");
  for (unsigned c = 0; c < s.class_count && c < STRATA_STATE_MAX_CLASSES; ++c) {
    const strata_class_state_t& k = s.classes[c];
    o.str(c ? ",\n {" : "\n {");
    Obj e{o};
    e.num("class", c);
    e.num("block_size", k.block_size);
    e.num("blocks_in_use", k.blocks_in_use);
    e.num("bytes_in_use", k.bytes_in_use);
    e.num("blocks_free_in_spans", k.blocks_free_in_spans);
    e.num("blocks_in_thread_caches", k.blocks_in_thread_caches);
    e.num("spans", k.spans);
    e.num("bytes_reserved", k.bytes_reserved);
    o.ch('}');
  }
  o.str("],\n\"tiers\":{\n \"small\":{");
  {
    Obj e{o};
    e.num("blocks_in_use", s.small.blocks_in_use);
    e.num("bytes_in_use", s.small.bytes_in_use);
    e.num("bytes_reserved", s.small.bytes_reserved);
    e.num("free_bytes", s.small.free_bytes);
    e.num("empty_spans", s.small.empty_spans);
  }
  o.str("},\n \"medium\":{");
  {
    Obj e{o};
    e.num("blocks_in_use", s.medium.blocks_in_use);
    e.num("bytes_in_use", s.medium.bytes_in_use);
    e.num("bytes_reserved", s.medium.bytes_reserved);
    e.num("pools", s.medium.pools);
    e.num("free_bytes", s.medium.free_bytes);
    e.num("largest_free_block", s.medium.largest_free_block);
    e.num("free_runs", s.medium.free_runs);
    e.num("bins_in_use", s.medium.bins_in_use);
    e.num("blocks_in_thread_caches", s.medium.blocks_in_thread_caches);
    e.num("bytes_in_thread_caches", s.medium.bytes_in_thread_caches);
  }
  o.str("},\n \"large\":{");
  {
    Obj e{o};
    e.num("blocks_in_use", s.large.blocks_in_use);
    e.num("bytes_in_use", s.large.bytes_in_use);
    e.num("bytes_reserved", s.large.bytes_mapped + s.large.kept_bytes + s.large.parked_bytes);
    e.num("bytes_requested", s.large.bytes_requested);
    e.num("bytes_mapped", s.large.bytes_mapped);
    e.num("kept_mappings", s.large.kept_mappings);
    e.num("kept_bytes", s.large.kept_bytes);
    e.num("parked_mappings", s.large.parked_mappings);
    e.num("parked_bytes", s.large.parked_bytes);
  }
  o.str("}},\n\"summary\":{");
  {
    const strata_usage_summary_t& u = s.summary;
    Obj e{o};
    e.num("allocated_bytes", u.allocated_bytes);
    e.num("free_bytes", u.free_bytes);
    e.num("overhead_bytes", u.overhead_bytes);
    e.num("bookkeeping_bytes", s.bookkeeping_bytes);
    e.num("reserved_bytes", u.reserved_bytes);
    e.num("os_reserved_bytes", u.os_reserved_bytes);
    e.key("efficiency_percent").fixed(u.efficiency_percent, 2);
    e.num("chunk_map_bytes", s.chunk_map_bytes);
    e.num("peak_os_reserved_bytes", s.peak_os_reserved_bytes);
    e.num("os_map_calls", s.os_map_calls);
  }
  o.str("},\n\"map\":[");
  for (std::size_t i = 0; i < m.runs.size(); ++i) {
    const Run& r = m.runs[i];
    o.str(i ? ",\n {" : "\n {");
    Obj e{o};
    e.key("start");
    hex_string(o, r.start);
    e.key("end");
    hex_string(o, r.end);
    e.key("use").json_string(use_name(r.use));
    const char* name = m.run_name(r);
    if (name && *name) e.key("name").json_string(name);
    o.ch('}');
  }
  o.str("]\n}\n");
}

}  // namespace strata::report
