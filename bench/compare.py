#!/usr/bin/env python3
"""Runs strata's micro benchmarks and prints strata against its peers.

    python3 bench/compare.py [--binary build/bench/strata_micro] [--quick] [--markdown]

The benchmark binary (bench/micro.cpp) registers every pattern once per
allocator, named <pattern>/<allocator>/<variant>, in the order strata, glibc,
tbbmalloc, mimalloc, jemalloc, tcmalloc: the runs of a pattern follow each
other, so they see the same machine state.  This script runs it with --benchmark_format=json output,
takes the median over --repetitions runs of each benchmark (one run: the run
itself), divides its time by the "ops" counter the benchmark reports, and
prints one row per pattern: the time per operation of each allocator and the
ratios strata/glibc and strata/best peer (the fastest of the others in that
row; below 1: strata is faster), then the geometric mean of each ratio column
and, per allocator, the geometric mean of its time relative to glibc.
--allocators narrows the run (e.g. strata,glibc,tbbmalloc).

Time is CPU time of the benchmark thread, except for benchmarks that use real
time (the two-thread patterns xthread and pair2t: name contains /real_time).

After the benchmarks the binary prints strata's heap summary; it is printed
here after the table (--no-summary to leave it out).

The strata commit shown is `git log -1` of this repository (or $STRATA_COMMIT).

Only the Python standard library is used.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

MARKER = "==== strata heap summary after the benchmarks"
ALLOCATORS = ["strata", "glibc", "tbbmalloc", "mimalloc", "jemalloc", "tcmalloc", "system"]
UNIT_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", help="the strata_micro benchmark binary "
                    "(default: build/bench/strata_micro of the repository)")
    ap.add_argument("--quick", action="store_true",
                    help="short runs for the README's main job: --benchmark_min_time=0.05, "
                         "3 repetitions (about half a minute)")
    ap.add_argument("--repetitions", type=int, help="runs per benchmark; the median is used "
                    "(default 5, quick: 3)")
    ap.add_argument("--min-time", type=float, help="--benchmark_min_time in seconds "
                    "(default 0.5, quick: 0.05)")
    ap.add_argument("--filter", help="--benchmark_filter regular expression")
    ap.add_argument("--allocators", help="comma-separated allocators to run (default: all that load; "
                    "'system' = the process's malloc, e.g. under LD_PRELOAD)")
    ap.add_argument("--interleave", action="store_true",
                    help="--benchmark_enable_random_interleaving: repetitions of all "
                         "benchmarks in random order (spreads slow drifts of the machine)")
    ap.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    ap.add_argument("--json-out", help="keep the benchmark JSON in this file")
    ap.add_argument("--json-in", help="do not run: read this JSON (from --json-out or "
                    "--benchmark_out) instead")
    ap.add_argument("--no-summary", action="store_true", help="do not print strata's heap summary")
    ap.add_argument("--verbose", action="store_true", help="echo the benchmark's console output to stderr")
    return ap.parse_args()


def run_benchmarks(args, json_path):
    """Runs the binary; returns its stdout text after the summary marker (or "")."""
    binary = args.binary or os.path.join(REPO, "build", "bench", "strata_micro")
    if not os.access(binary, os.X_OK):
        sys.exit(f"compare.py: no benchmark binary at {binary} (build the strata_micro target, "
                 "or pass --binary)")
    reps = args.repetitions or (3 if args.quick else 5)
    min_time = args.min_time if args.min_time is not None else (0.05 if args.quick else 0.5)
    cmd = [binary, f"--benchmark_out={json_path}", "--benchmark_out_format=json",
           "--benchmark_format=console", f"--benchmark_min_time={min_time:g}",
           f"--benchmark_repetitions={reps}"]
    if reps > 1:
        cmd.append("--benchmark_report_aggregates_only=true")
    if args.filter:
        cmd.append(f"--benchmark_filter={args.filter}")
    if args.interleave:
        cmd.append("--benchmark_enable_random_interleaving=true")
    if args.no_summary:
        cmd.append("--no_strata_summary")
    if args.allocators:
        cmd.append(f"--allocators={args.allocators}")
    print(f"compare.py: running {' '.join(cmd)}", file=sys.stderr, flush=True)
    # stderr (Google Benchmark's context lines) is kept with stdout: echoed
    # with --verbose, shown when the run fails.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            errors="replace")
    out = []
    for line in proc.stdout:
        out.append(line)
        if args.verbose:
            sys.stderr.write(line)
    if proc.wait() != 0:
        sys.stderr.write("".join(out[-20:]))
        sys.exit(f"compare.py: {binary} failed with exit status {proc.returncode}")
    text = "".join(out)
    pos = text.find(MARKER)
    summary = text[pos:] if pos >= 0 else ""
    return summary if summary.endswith("\n") or not summary else summary + "\n"


def median(values):
    v = sorted(values)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def load_results(path):
    """Returns (context, {(row, allocator): ns per op}, [rows in first-seen order], reps)."""
    with open(path) as f:
        data = json.load(f)
    samples = {}  # run_name -> list of ns/op (one per repetition)
    medians = {}  # run_name -> ns/op from the benchmark's own median aggregate
    reps = 1
    for b in data.get("benchmarks", []):
        if b.get("error_occurred"):
            sys.exit(f"compare.py: benchmark {b.get('name')} failed: {b.get('error_message')}")
        name = b.get("run_name", b["name"])
        reps = max(reps, int(b.get("repetitions", 1)))
        ops = float(b.get("ops", 1.0)) or 1.0
        field = "real_time" if "/real_time" in name else "cpu_time"
        ns = float(b[field]) * UNIT_NS[b.get("time_unit", "ns")] / ops
        if b.get("run_type") == "aggregate":
            if b.get("aggregate_name") == "median":
                medians[name] = ns
        else:
            samples.setdefault(name, []).append(ns)
    names = list(dict.fromkeys(list(medians) + list(samples)))
    results, rows = {}, []
    for name in names:
        parts = name.split("/")
        if len(parts) < 2 or parts[1] not in ALLOCATORS:
            continue
        row = "/".join([parts[0]] + [p for p in parts[2:] if p != "real_time" and not p.startswith("threads:")])
        if name in medians:
            value = medians[name]
        else:
            value = median(samples[name])
        results[(row, parts[1])] = value
        if row not in rows:
            rows.append(row)
    global PRESENT
    PRESENT = [a for a in ALLOCATORS if any(k[1] == a for k in results)]
    return data.get("context", {}), results, rows, reps


PRESENT = []  # allocators present in the results, in ALLOCATORS order


def fmt_time(ns):
    if ns is None:
        return "-"
    if ns < 1e3:
        return f"{ns:.1f} ns"
    if ns < 1e6:
        return f"{ns / 1e3:.2f} us"
    return f"{ns / 1e6:.2f} ms"


def fmt_ratio(r):
    return "-" if r is None else f"{r:.2f}"


def geomean(values):
    values = [v for v in values if v is not None and v > 0]
    if not values:
        return None
    return math.exp(sum(math.log(v) for v in values) / len(values))


def build_table(results, rows):
    allocs = PRESENT
    peers = [a for a in allocs if a != "strata"]
    has_glibc = "glibc" in allocs and "strata" in allocs
    has_best = "strata" in allocs and len(peers) > 0
    header = ["pattern (time per op)"] + allocs
    if has_glibc:
        header.append("strata/glibc")
    if has_best:
        header.append("strata/best peer")
    body = []
    ratios_g, ratios_b = [], []
    per_alloc = {a: [] for a in allocs}
    for row in rows:
        vals = {a: results.get((row, a)) for a in allocs}
        cells = [row] + [fmt_time(vals[a]) for a in allocs]
        s = vals.get("strata")
        g = vals.get("glibc")
        for a in allocs:
            if vals[a] is not None and g:
                per_alloc[a].append(vals[a] / g)
        if has_glibc:
            rg = s / g if s is not None and g else None
            ratios_g.append(rg)
            cells.append(fmt_ratio(rg))
        if has_best:
            pv = [(vals[p], p) for p in peers if vals[p] is not None]
            if s is not None and pv:
                b, who = min(pv)
                rb = s / b
                ratios_b.append(rb)
                cells.append(f"{rb:.2f} {who}")
            else:
                cells.append("-")
        body.append(cells)
    footer = ["geometric mean vs glibc"] + [fmt_ratio(geomean(per_alloc[a])) if g_ok else ""
                                            for a, g_ok in ((a, "glibc" in allocs) for a in allocs)]
    if has_glibc:
        footer.append(fmt_ratio(geomean(ratios_g)))
    if has_best:
        footer.append(fmt_ratio(geomean(ratios_b)))
    return header, body, footer


def print_text(header, body, footer, out):
    widths = [max(len(r[i]) for r in [header] + body + [footer]) for i in range(len(header))]

    def line(r):
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    print(line(header), file=out)
    print(rule, file=out)
    for r in body:
        print(line(r), file=out)
    print(rule, file=out)
    print(line(footer), file=out)


def print_markdown(header, body, footer, out):
    print("| " + " | ".join(header) + " |", file=out)
    print("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|", file=out)
    for r in body:
        print("| " + " | ".join(f"`{r[0]}`" if i == 0 else c for i, c in enumerate(r)) + " |", file=out)
    f = ["**" + footer[0] + "**"] + [f"**{c}**" if c else c for c in footer[1:]]
    print("| " + " | ".join(f) + " |", file=out)


def git_commit():
    if os.environ.get("STRATA_COMMIT"):
        return os.environ["STRATA_COMMIT"]
    try:
        return subprocess.run(["git", "-C", REPO, "log", "-1", "--format=%h %s"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def main():
    args = parse_args()
    summary = ""
    if args.json_in:
        context, results, rows, reps = load_results(args.json_in)
    else:
        json_path = args.json_out
        tmp = None
        if not json_path:
            tmp = tempfile.NamedTemporaryFile(prefix="strata-bench-", suffix=".json", delete=False)
            tmp.close()
            json_path = tmp.name
        try:
            summary = run_benchmarks(args, json_path)
            context, results, rows, reps = load_results(json_path)
        finally:
            if tmp is not None:
                os.unlink(tmp.name)
    if not rows:
        sys.exit("compare.py: no benchmark results")

    out = sys.stdout
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    except OSError:
        pass
    stat = f"median of {reps} runs" if reps > 1 else "1 run"
    print(f"strata micro benchmarks: {stat} each; time per operation (cpu time; real time for "
          f"xthread and pair2t); ratio < 1: strata is faster", file=out)
    print(f"strata commit: {git_commit()}; {context.get('num_cpus', '?')} cpus {cpu}; "
          f"{context.get('date', '')}", file=out)
    if context.get("cpu_scaling_enabled"):
        print("note: CPU frequency scaling is enabled; timings are noisier", file=out)
    print(file=out)
    header, body, footer = build_table(results, rows)
    print_text(header, body, footer, out)
    xrows = [r for r in rows if r.startswith("xthread/")]
    if xrows:
        print(file=out)
        print("cross-thread throughput (blocks allocated in one thread and freed in another, per second):",
              file=out)
        for r in xrows:
            cells = []
            for a in PRESENT:
                ns = results.get((r, a))
                cells.append(f"{a} {1e3 / ns:.2f} M/s" if ns else f"{a} -")
            print(f"  {r:<14} " + ", ".join(cells), file=out)
    if args.markdown:
        print(file=out)
        print_markdown(header, body, footer, out)
    if summary and not args.no_summary:
        print(file=out)
        out.write(summary)
    out.flush()


if __name__ == "__main__":
    main()
