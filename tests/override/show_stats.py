#!/usr/bin/env python3
"""STRATA_SHOW_STATS=1 proves a preloaded program really ran on strata.

    show_stats.py LIBSTRATA COMMAND [ARGS...]

Runs COMMAND with LD_PRELOAD=LIBSTRATA three times: with STRATA_SHOW_STATS=1
its stderr must hold strata's exit summary ("strata process heap summary",
the small-block count and a non-zero number of mmap calls); unset and with
STRATA_SHOW_STATS=0 it must hold no summary.  Exits 77 (CTest: skipped) when
the library does not know the variable yet.
"""
import os
import re
import subprocess
import sys

HEADER = "strata process heap summary"


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
    m = re.search(r"small blocks:\s+(\d+),\s+[\d.]+\s*[KMG]?i?B", p.stderr)
    if not m:
        failures.append("no '  small blocks:  N, X KiB' line")
    mm = re.search(r"from the OS:.*?(\d+)\s+mmap calls", p.stderr)
    if not mm:
        failures.append("no '  from the OS: ... N mmap calls' line")
    elif int(mm.group(1)) == 0:
        failures.append("the summary reports 0 mmap calls: strata did not serve this program")

    for value in (None, "0"):
        e = dict(env)
        if value is not None:
            e["STRATA_SHOW_STATS"] = value
        q = subprocess.run(cmd, env=e, capture_output=True, text=True, timeout=600)
        if HEADER in q.stderr:
            failures.append(f"a summary was printed with STRATA_SHOW_STATS={'unset' if value is None else value}")
        if q.stdout != p.stdout:
            failures.append("the output depends on STRATA_SHOW_STATS")

    for f in failures:
        print("FAIL: " + f, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
