#!/usr/bin/env python3
"""Runs a real program's scenario with and without strata preloaded and
compares the results.

    run_compare.py --name NAME --preload LIBSTRATA [--probe PROBE] [--show-stats]
                   [--workdir DIR] -- COMMAND [ARGS...]

COMMAND runs twice, each time in a fresh empty directory: once with the system
allocator (LD_PRELOAD removed from the environment) and once with
LD_PRELOAD=LIBSTRATA, inherited by every process the scenario starts.  The
test fails if either run exits non-zero, if the standard outputs differ, or
if strata was not really in charge of the preloaded run:

  - the dynamic loader's "cannot be preloaded" warning on stderr;
  - PROBE (ov_probe, a program that does not link strata) run with the same
    environment must find strata's symbols and its malloc'ed block;
  - --show-stats: the preloaded run gets STRATA_SHOW_STATS=1 and its stderr
    must hold strata's exit report with a non-zero number of mmap calls
    (checked when the library knows the variable; until then reported as
    not checked).

Extra allocators to compare, for reports (not needed by CTest):
  STRATA_OVERRIDE_ALSO="mimalloc=/usr/lib/x86_64-linux-gnu/libmimalloc.so.2[,name=lib...]"
Wall times are printed; STRATA_OVERRIDE_TIMINGS=FILE appends them as a JSON line.
"""
import argparse
import difflib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

SUMMARY_HEADER = "strata heap report: process heap"


def run(label, cmd, env, workdir, timeout):
    d = os.path.join(workdir, label)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, cwd=d, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout)
    except subprocess.TimeoutExpired as e:
        print(f"[{label}] timed out after {timeout} s", file=sys.stderr)
        return None, (e.stdout or b"").decode(errors="replace"), (e.stderr or b"").decode(errors="replace"), timeout
    dt = time.monotonic() - t0
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace"), dt


def describe_status(rc):
    if rc is None:
        return "timed out"
    if rc < 0:
        return f"killed by signal {-rc}"
    return f"exit status {rc}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True)
    ap.add_argument("--preload", required=True)
    ap.add_argument("--probe")
    ap.add_argument("--show-stats", action="store_true")
    ap.add_argument("--workdir")
    ap.add_argument("--timeout", type=float, default=1200)
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    if not cmd:
        ap.error("no command")
    lib = os.path.abspath(a.preload)
    if not os.path.exists(lib):
        print(f"FAIL: {lib} does not exist", file=sys.stderr)
        return 1

    base_env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "STRATA_SHOW_STATS")}
    variants = [("glibc", None), ("strata", lib)]
    for item in filter(None, os.environ.get("STRATA_OVERRIDE_ALSO", "").split(",")):
        name, _, path = item.partition("=")
        variants.append((name, path))

    workdir = a.workdir or tempfile.mkdtemp(prefix=f"strata-override-{a.name}-")
    os.makedirs(workdir, exist_ok=True)
    failures = []
    with open(lib, "rb") as f:
        knows_show_stats = b"STRATA_SHOW_STATS" in f.read()

    results = {}
    for label, preload in variants:
        env = dict(base_env)
        if preload:
            env["LD_PRELOAD"] = preload
        if label == "strata" and a.show_stats:
            env["STRATA_SHOW_STATS"] = "1"
        if label == "strata" and a.probe:
            pr = subprocess.run([a.probe], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            if pr.returncode != 0:
                failures.append(f"[{label}] the probe did not find strata in charge of malloc:\n"
                                + pr.stdout.decode(errors="replace"))
        rc, out, err, dt = run(label, cmd, env, workdir, a.timeout)
        results[label] = (rc, out, err, dt)
        print(f"[{label}] {describe_status(rc)}, {dt:.2f} s wall", flush=True)
        if rc != 0:
            failures.append(f"[{label}] the scenario failed ({describe_status(rc)}); stderr tail:\n"
                            + "\n".join(err.splitlines()[-40:]))
        if preload and "cannot be preloaded" in err:
            failures.append(f"[{label}] the dynamic loader ignored LD_PRELOAD={preload}")

    ref = results["glibc"][1]
    for label, _ in variants[1:]:
        out = results[label][1]
        if out != ref:
            diff = difflib.unified_diff(ref.splitlines(), out.splitlines(), "glibc", label, lineterm="", n=2)
            failures.append(f"[{label}] standard output differs from the glibc run:\n"
                            + "\n".join(list(diff)[:80]))

    if a.show_stats:
        err = results["strata"][2]
        if not knows_show_stats:
            print("[strata] STRATA_SHOW_STATS: not checked (this libstrata.so does not read the variable yet)")
        else:
            n_summaries = err.count(SUMMARY_HEADER)
            mmaps = [int(m.replace(",", "")) for m in re.findall(r"([\d,]+)\s+mmap calls", err)]
            blocks = [int(m.replace(",", "")) for m in re.findall(r"^\s+total\s+([\d,]+)", err, re.M)]
            print(f"[strata] STRATA_SHOW_STATS: {n_summaries} summaries, mmap calls {mmaps[:8]}, "
                  f"small blocks {blocks[:8]}")
            if n_summaries == 0 or not mmaps or max(mmaps) == 0:
                failures.append("[strata] STRATA_SHOW_STATS=1 gave no heap summary with a non-zero "
                                "mmap count on stderr; stderr tail:\n" + "\n".join(err.splitlines()[-30:]))

    g = results["glibc"][3]
    line = ", ".join(f"{label} {results[label][3]:.2f} s ({results[label][3] / g:.2f}x)" for label, _ in variants)
    print(f"{a.name}: wall time {line}")
    tf = os.environ.get("STRATA_OVERRIDE_TIMINGS")
    if tf:
        with open(tf, "a") as f:
            f.write(json.dumps({"name": a.name, **{label: round(results[label][3], 3) for label, _ in variants}}) + "\n")
    print("---- output (glibc run)\n" + "\n".join(ref.splitlines()[:60]))

    if failures:
        print("\n\n".join(["FAIL: " + f for f in failures]), file=sys.stderr)
        print(f"(work directory kept: {workdir})", file=sys.stderr)
        return 1
    for label, _ in variants:
        shutil.rmtree(os.path.join(workdir, label), ignore_errors=True)
    if not a.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
