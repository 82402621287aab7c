"""Checks of strata's JSON and SVG reports, shared by the report tests.

validate(doc)          the JSON against docs/report.schema.json (python3-jsonschema)
invariants(doc)        what must hold between the figures (sums, the map's cover)
svg_matches(svg, doc)  the picture shows what the JSON says
Each returns a list of failures (empty: all good).
"""
import json
import os
import re
import xml.etree.ElementTree as ET

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
SCHEMA = os.path.join(ROOT, "docs", "report.schema.json")
SVG_NS = "{http://www.w3.org/2000/svg}"
USES = ["unmapped", "small", "medium", "large", "bookkeeping", "free", "other-heap", "other"]


def validate(doc):
    import jsonschema  # Debian: python3-jsonschema (scripts/install-deps.sh)
    with open(SCHEMA) as f:
        schema = json.load(f)
    v = jsonschema.Draft7Validator(schema)
    return [f"schema: {'/'.join(map(str, e.path))}: {e.message}" for e in v.iter_errors(doc)]


def invariants(doc):
    bad = []
    classes, tiers, s = doc["classes"], doc["tiers"], doc["summary"]
    for c in classes:
        if c["bytes_in_use"] != c["blocks_in_use"] * c["block_size"]:
            bad.append(f"class {c['block_size']}: bytes_in_use != blocks x size")
        if c["bytes_reserved"] != c["spans"] * 65536:
            bad.append(f"class {c['block_size']}: bytes_reserved != spans x 64 KiB")
    if sum(c["blocks_in_use"] for c in classes) != tiers["small"]["blocks_in_use"]:
        bad.append("the classes' blocks do not add up to the small tier's")
    if sum(c["bytes_in_use"] for c in classes) != tiers["small"]["bytes_in_use"]:
        bad.append("the classes' bytes do not add up to the small tier's")
    if s["allocated_bytes"] != sum(tiers[t]["bytes_in_use"] for t in ("small", "medium", "large")):
        bad.append("allocated != the tiers' bytes in use")
    if s["allocated_bytes"] + s["free_bytes"] + s["overhead_bytes"] != s["reserved_bytes"]:
        bad.append("allocated + free + overhead != reserved")
    runs = doc["map"]
    if not runs or int(runs[0]["start"], 16) != 0 or int(runs[-1]["end"], 16) != 1 << 47:
        bad.append("the map does not cover [0, 2^47)")
    for a, b in zip(runs, runs[1:]):
        if a["end"] != b["start"]:
            bad.append(f"the map has a hole or an overlap at {a['end']}")
            break
        if a["use"] == b["use"] and a.get("name", "") == b.get("name", ""):
            bad.append(f"two equal runs not merged at {a['end']}")
            break
    for r in runs:
        if int(r["start"], 16) % 65536 or int(r["end"], 16) % 65536 or int(r["end"], 16) <= int(r["start"], 16):
            bad.append(f"a run that is not whole chunks: {r}")
            break
    strata_bytes = sum(int(r["end"], 16) - int(r["start"], 16) for r in runs
                       if r["use"] in ("small", "medium", "large", "bookkeeping", "free"))
    # The map's strata chunks of this heap hold at least what the heap reserved
    # (plus the address map's leaves for the process heap).
    if doc["heap"] == "process heap" and strata_bytes < s["reserved_bytes"]:
        bad.append(f"the map shows {strata_bytes} bytes of strata, the heap reserved {s['reserved_bytes']}")
    return bad


def bytes_text(v):
    """The report's own byte format ("12.3 MiB")."""
    units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
    x, u = float(v), 0
    while x >= 1024 and u < 5:
        x /= 1024
        u += 1
    return f"{v} B" if u == 0 else f"{x:.1f} {units[u]}"


def svg_well_formed(path):
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        return None, [f"{path}: not well-formed XML: {e}"]
    if root.tag != SVG_NS + "svg":
        return None, [f"{path}: the root is {root.tag}, not svg"]
    return root, []


def svg_matches(path, doc):
    root, bad = svg_well_formed(path)
    if root is None:
        return bad
    texts = ["".join(t.itertext()) for t in root.iter(SVG_NS + "text")]
    titles = ["".join(t.itertext()) for t in root.iter(SVG_NS + "title")]
    s = doc["summary"]
    want = f"allocated: {bytes_text(s['allocated_bytes'])} ({s['allocated_bytes']:,} bytes)"
    if want not in texts:
        bad.append(f"the figures lack '{want}'")
    # The legend: each use with the map's total for it.
    totals = {u: 0 for u in USES}
    for r in doc["map"]:
        totals[r["use"]] += int(r["end"], 16) - int(r["start"], 16)
    for u in USES[1:]:
        if f"{u}: {bytes_text(totals[u])}" not in texts:
            bad.append(f"the legend lacks '{u}: {bytes_text(totals[u])}'")
    # The bars: one title per class with its figures.
    for c in doc["classes"]:
        t = (f"{c['block_size']} B: {c['blocks_in_use']:,} blocks, {c['bytes_in_use']:,} bytes in use, "
             f"{c['bytes_reserved']:,} reserved")
        if t not in titles:
            bad.append(f"no bar titled '{t}'")
    # The grid: every cell's title names a run of the map, and every strata run of the map has cells.
    runs = {(int(r["start"], 16), int(r["end"], 16), r["use"]) for r in doc["map"]}
    cell_runs = set()
    for rect in root.iter(SVG_NS + "rect"):
        if rect.get("class") != "c":
            continue
        t = rect.find(SVG_NS + "title")
        m = re.match(r"0x([0-9a-f]+)-0x([0-9a-f]+) (\S+)", "".join(t.itertext()) if t is not None else "")
        if not m:
            bad.append("a map cell without a title")
            break
        key = (int(m.group(1), 16), int(m.group(2), 16), m.group(3))
        if key not in runs:
            bad.append(f"a map cell for a run the JSON does not have: {key}")
            break
        cell_runs.add(key)
    for r in runs:
        if r[2] not in ("unmapped",) and r not in cell_runs:
            bad.append(f"the run {hex(r[0])}-{hex(r[1])} {r[2]} is not drawn")
            break
    return bad
