#!/usr/bin/env python3
"""The JSON, SVG and text reports of one heap agree, and the JSON is valid.

    report_check.py STATE_TEST_BINARY

Runs the binary's hidden test case "[.pair]", which writes pair.json,
pair.svg and pair.txt for one quiescent pool, then checks the JSON against
docs/report.schema.json and its invariants, the SVG against the JSON (the
figures, the legend's totals, a bar per class, a cell per run of the map),
and the text's rows against the JSON's classes.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
import report_checks  # noqa: E402


def main():
    binary = sys.argv[1]
    with tempfile.TemporaryDirectory() as d:
        p = subprocess.run([binary, "[.pair]"], env=dict(os.environ, STRATA_TEST_REPORT_DIR=d),
                           capture_output=True, text=True, timeout=300)
        if p.returncode:
            print(p.stdout + p.stderr)
            return 1
        with open(os.path.join(d, "pair.json")) as f:
            doc = json.load(f)
        failures = report_checks.validate(doc) + report_checks.invariants(doc)
        failures += report_checks.svg_matches(os.path.join(d, "pair.svg"), doc)
        with open(os.path.join(d, "pair.txt")) as f:
            text = f.read()
        for c in doc["classes"]:
            if c["spans"] == 0 and c["blocks_in_thread_caches"] == 0:
                continue
            row = re.search(r"^\s+%d\s+([\d,]+)\s+([\d,]+)\s" % c["block_size"], text, re.M)
            if not row or int(row.group(1).replace(",", "")) != c["blocks_in_use"]:
                failures.append(f"the text's row for {c['block_size']} B does not say {c['blocks_in_use']} blocks")
        if doc["heap"] not in text.splitlines()[0]:
            failures.append("the text's header does not name the heap")
        print(f"{len(doc['classes'])} classes, {len(doc['map'])} map runs, "
              f"allocated {doc['summary']['allocated_bytes']}, reserved {doc['summary']['reserved_bytes']}")
    for f in failures:
        print("FAIL: " + f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
