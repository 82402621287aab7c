#!/usr/bin/env python3
"""STRATA_SHOW_STATS=1 proves a preloaded program really ran on strata.

    show_stats.py LIBSTRATA COMMAND [ARGS...]

Runs COMMAND with LD_PRELOAD=LIBSTRATA three times: with STRATA_SHOW_STATS=1
its stderr must hold strata's full exit report ("strata heap report: process
heap", a row per size class used with the small-block total, the usage
summary with a non-zero reserve that adds up, the memory map's totals);
unset and with STRATA_SHOW_STATS=0 it must hold no report.  Exits 77 (CTest: skipped) when
the library does not know the variable yet.
"""
import os
import re
import subprocess
import sys

HEADER = "strata heap report: process heap"


def number(text):
    return int(text.replace(",", ""))


def main():
    lib, cmd = os.path.abspath(sys.argv[1]), sys.argv[2:]
    with open(lib, "rb") as f:
        if b"STRATA_SHOW_STATS" not in f.read():
            print(f"SKIP: {lib} does not read STRATA_SHOW_STATS yet")
            return 77
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "STRATA_SHOW_STATS")}
    env["LD_PRELOAD"] = lib
    failures = []

    p = subprocess.run(cmd, env=dict(env, STRATA_SHOW_STATS="1"), capture_output=True, text=True, timeout=600)
    print("---- stderr with STRATA_SHOW_STATS=1\n" + p.stderr)
    if p.returncode != 0:
        failures.append(f"the command failed with status {p.returncode}")
    if HEADER not in p.stderr:
        failures.append(f"no '{HEADER}' line on stderr")
    rows = re.findall(r"^\s+(\d+)\s+([\d,]+)\s+([\d,]+)\s+[\d,]+\s+[\d,]+\s+[\d,]+\s+[\d,]+\s+[\d.]+%$", p.stderr, re.M)
    total = re.search(r"^\s+total\s+([\d,]+)\s+([\d,]+)", p.stderr, re.M)
    if not rows or not total:
        failures.append("no per-class rows and total row in the small-block table")
    else:
        if sum(number(r[1]) for r in rows) != number(total.group(1)):
            failures.append("the per-class block counts do not add up to the total row")
        if any(number(r[2]) != int(r[0]) * number(r[1]) for r in rows):
            failures.append("a class row's bytes are not blocks x block size")
    usage = p.stderr[p.stderr.find("Usage summary"):]
    fig = {k: re.search(r"^\s+" + k + r"\s+([\d,]+)", usage, re.M) for k in ("allocated", "free", "overhead", "reserved", "os count")}
    if not all(fig.values()):
        failures.append("the usage summary lacks allocated/free/overhead/reserved/os count")
    else:
        v = {k: number(m.group(1)) for k, m in fig.items()}
        if v["reserved"] == 0:
            failures.append("the report shows nothing reserved: strata did not serve this program")
        if v["allocated"] + v["free"] + v["overhead"] != v["reserved"]:
            failures.append("allocated + free + overhead != reserved")
    if "Memory map (47-bit address space" not in p.stderr:
        failures.append("no memory map totals")

    for value in (None, "0"):
        e = dict(env)
        if value is not None:
            e["STRATA_SHOW_STATS"] = value
        q = subprocess.run(cmd, env=e, capture_output=True, text=True, timeout=600)
        if HEADER in q.stderr:
            failures.append(f"a report was printed with STRATA_SHOW_STATS={'unset' if value is None else value}")
        if q.stdout != p.stdout:
            failures.append("the output depends on STRATA_SHOW_STATS")

    for f in failures:
        print("FAIL: " + f, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
