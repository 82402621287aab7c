#!/usr/bin/env python3
"""STRATA_REPORT writes the exit report of a preloaded program (CPython here).

    exit_report.py LIBSTRATA PYTHON [STRATA_REPORT_TOOL]

Runs PYTHON (a workload that keeps a live set of every tier until it exits)
with LD_PRELOAD=LIBSTRATA three ways: STRATA_REPORT=DIR/r-%p.json must leave
one JSON report named after the process id, valid against
docs/report.schema.json, whose figures hold together and show the workload's
live set; STRATA_REPORT=DIR/r.svg must leave a well-formed picture; without
the variable no file appears.  The program's output must not change.  With
STRATA_SHOW_STATS=1 as well, the text report on stderr and the JSON file are
of one snapshot: strata-report (when given) must print that text from the
JSON, byte for byte.
"""
import glob
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
import report_checks  # noqa: E402

WORKLOAD = r"""
import sys
small = [str(i) * (i % 40 + 1) for i in range(100000)]      # strings of 1..~200 bytes
medium = [bytearray(5000 + i) for i in range(300)]           # medium blocks
large = [bytearray(3 << 20) for i in range(4)]               # large blocks
print(len(small), len(medium), len(large))
sys.stdout.flush()
"""


def main():
    lib, python = os.path.abspath(sys.argv[1]), sys.argv[2]
    tool = sys.argv[3] if len(sys.argv) > 3 else None
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "STRATA_REPORT", "STRATA_SHOW_STATS")}
    env["LD_PRELOAD"] = lib
    failures = []
    with tempfile.TemporaryDirectory() as d:
        plain = subprocess.run([python, "-c", WORKLOAD], env=env, capture_output=True, text=True, timeout=300)
        if plain.returncode or os.listdir(d):
            failures.append("the workload failed, or wrote a report without STRATA_REPORT")
        p = subprocess.run([python, "-c", WORKLOAD], env=dict(env, STRATA_REPORT=os.path.join(d, "r-%p.json")),
                           capture_output=True, text=True, timeout=300)
        if p.stdout != plain.stdout or p.returncode:
            failures.append("the output changed with STRATA_REPORT")
        files = glob.glob(os.path.join(d, "r-*.json"))
        if len(files) != 1:
            failures.append(f"expected one r-<pid>.json, found {files}")
        else:
            with open(files[0]) as f:
                doc = json.load(f)
            failures += report_checks.validate(doc) + report_checks.invariants(doc)
            if os.path.basename(files[0]) != f"r-{doc['pid']}.json":
                failures.append("%p is not the process id of the report")
            if "python" not in os.path.basename(doc["program"]):
                failures.append(f"the report is of {doc['program']}, not of python")
            t = doc["tiers"]
            # CPython frees most of its objects at exit; what it keeps is still a heap of all tiers.
            print(f"exit report of {doc['program']}: small {t['small']['blocks_in_use']} blocks, medium "
                  f"{t['medium']['blocks_in_use']}, large {t['large']['blocks_in_use']}; reserved "
                  f"{doc['summary']['reserved_bytes']}, {len(doc['map'])} map runs")
            if doc["summary"]["reserved_bytes"] == 0 or not doc["complete"]:
                failures.append("the report is empty or incomplete")
            if not any(r["use"] == "other" and "python" in r.get("name", "") for r in doc["map"]):
                failures.append("the map does not show the python executable")
        s = subprocess.run([python, "-c", WORKLOAD], env=dict(env, STRATA_REPORT=os.path.join(d, "r.svg")),
                           capture_output=True, text=True, timeout=300)
        if s.returncode:
            failures.append("the workload failed with an SVG report")
        root, bad = report_checks.svg_well_formed(os.path.join(d, "r.svg"))
        failures += bad
        if root is not None and not any(r.get("class") == "c" for r in root.iter(report_checks.SVG_NS + "rect")):
            failures.append("the picture has no map cells")
        if tool:
            both = os.path.join(d, "both.json")
            b = subprocess.run([python, "-c", WORKLOAD], env=dict(env, STRATA_REPORT=both, STRATA_SHOW_STATS="1"),
                               capture_output=True, text=True, timeout=300)
            r = subprocess.run([tool, both], capture_output=True, text=True, timeout=120)
            if b.returncode or r.returncode:
                failures.append(f"STRATA_SHOW_STATS with STRATA_REPORT, then strata-report: exit {b.returncode}, "
                                f"{r.returncode}: {r.stderr}")
            elif not r.stdout or r.stdout not in b.stderr:
                failures.append("strata-report's text of the exit JSON is not the text report the program printed")
            else:
                print(f"strata-report printed the program's own exit text ({len(r.stdout.splitlines())} lines)")
    for f in failures:
        print("FAIL: " + f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
