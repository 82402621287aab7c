#!/usr/bin/env python3
"""The leak report lists exactly the unexpected leaks of leaky.cpp.

    leak_check.py report  --linked B --plain B --preload LIB --lsan B --plugin-host B --plugin SO
    leak_check.py compare (the same) --valgrind VALGRIND

report: leaky linked with libstrata.so and leaky under LD_PRELOAD, with
STRATA_REPORT_LEAKS=1 STRATA_LEAK_STACKS=1 STRATA_LEAK_REPORT=x.json: the
JSON lists 11 blocks — 3 from leak_small, 2 app::Widget from make_widgets,
1 from leak_medium, 1 from leak_large, 4 from thread_leaks (the second
thread) — each entry's first frame the allocating function with its file
and line, and 4 expected blocks (by address, by size, by class) not listed;
"unregister" brings the 64-byte block back (allocated in main); "clean"
writes no report at all.  Without stacks the text report on stderr groups
the same leaks by size and class.  A plugin with a private heap
(strata::module_heap) that leaks reports its leaks at its unload, naming it.

compare: the same program under valgrind memcheck (--leak-check=full) and
built with LeakSanitizer: every function's count of leaked blocks is
strata's, plus the 4 strata was told to expect (allocated in main), which
the reference tools report too.  Prints the table of docs/leaks.md.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

FUNCTIONS = ["leak_small", "make_widgets", "leak_medium", "leak_large", "thread_leaks", "main"]
EXPECTED = {"leak_small": 3, "make_widgets": 2, "leak_medium": 1, "leak_large": 1, "thread_leaks": 4}
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
    return cond


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATA_") and k != "LD_PRELOAD"}
    env.update(extra)
    return env


def which_function(names):
    """The first of FUNCTIONS a stack's frame names mention."""
    for n in names:
        for f in FUNCTIONS:
            if re.search(r"\b%s\b" % f, n):
                return f
    return None


def strata_json(cmd, env, path, mode="leaks"):
    if os.path.exists(path):
        os.unlink(path)
    p = subprocess.run(cmd + [mode], env=dict(env, STRATA_LEAK_REPORT=path), capture_output=True, text=True,
                       timeout=300)
    check(p.returncode == 0, f"{cmd} {mode}: exit {p.returncode}: {p.stderr[-2000:]}")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def by_function(doc):
    counts = {}
    for e in doc["entries"]:
        f = which_function([fr.get("function", "") for fr in e["stack"]]) or "?"
        counts[f] = counts.get(f, 0) + e["count"]
    return counts


def report(a):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "leaks.json")
        env = clean_env(STRATA_REPORT_LEAKS="1", STRATA_LEAK_STACKS="1")
        for how, cmd, ev in (("linked", [a.linked], env), ("preload", [a.plain], dict(env, LD_PRELOAD=a.preload))):
            doc = strata_json(cmd, ev, path)
            if not check(doc is not None, f"{how}: no leak report written"):
                continue
            check(doc["kind"] == "leaks" and doc["schema"] == 1 and doc["stacks"], f"{how}: not a leak report with stacks")
            check(doc["leaks"]["blocks"] == 11, f"{how}: {doc['leaks']['blocks']} leaked blocks, not 11")
            check(doc["expected"]["blocks"] == 4, f"{how}: {doc['expected']['blocks']} expected blocks, not 4")
            counts = by_function(doc)
            check(counts == EXPECTED, f"{how}: leaks by allocating function {counts}, not {EXPECTED}")
            widgets = [e for e in doc["entries"] if e["class"] == "app::Widget"]
            check(sum(e["count"] for e in widgets) == 2, f"{how}: app::Widget leaks: {widgets}")
            check(all(e.get("mangled") == "N3app6WidgetE" for e in widgets), f"{how}: Widget's mangled name")
            check(not any(e["class"] == "app::Gadget" for e in doc["entries"]), f"{how}: the expected Gadget is listed")
            for e in doc["entries"]:
                top = e["stack"][0] if e["stack"] else {}
                check(which_function([top.get("function", "")]) is not None,
                      f"{how}: an entry's first frame is not the program's: {top}")
                check(top.get("file", "").endswith("leaky.cpp") and top.get("line", 0) > 0,
                      f"{how}: no file and line for {top.get('function')}: {top}")
            small = [e for e in doc["entries"] if which_function([f["function"] for f in e["stack"]]) == "leak_small"]
            check(small and bytes.fromhex(small[0]["first_bytes"]).startswith(b"small leak"),
                  f"{how}: the first bytes of leak_small's blocks")
            check([c["count"] for s in doc["by_size"] if s["size"] == 112 for c in s["classes"]] == [4],
                  f"{how}: the 112-byte group")
            doc = strata_json(cmd, ev, path, "unregister")
            if check(doc is not None, f"{how} unregister: no report"):
                check(doc["leaks"]["blocks"] == 12 and doc["expected"]["blocks"] == 3,
                      f"{how} unregister: {doc['leaks']} leaked, {doc['expected']} expected")
                check(by_function(doc).get("main") == 1 and any(e["size"] == 64 for e in doc["entries"]),
                      f"{how} unregister: the 64-byte block from main is not back")
            doc = strata_json(cmd, ev, path, "clean")
            check(doc is None, f"{how} clean: a report was written: {doc and doc['entries']}")
            print(f"{how}: 11 leaks by function {counts}, 4 expected; unregister brings one back; clean: no report")

        # Without stacks: FastMM's summary, to stderr.
        p = subprocess.run([a.linked], env=clean_env(STRATA_REPORT_LEAKS="1"), capture_output=True, text=True, timeout=300)
        check("strata leak report: process heap" in p.stderr, "no text report on stderr without STRATA_LEAK_REPORT")
        check(re.search(r"^\s+48 bytes: 2 x app::Widget, 3 x unknown$", p.stderr, re.M),
              "the text's 48-byte line is not '2 x app::Widget, 3 x unknown'")
        check(re.search(r"^\s+112 bytes: 4 x unknown$", p.stderr, re.M), "the text's 112-byte line")
        check(re.search(r"^\s+10,224 bytes: 1 x unknown$", p.stderr, re.M), "the text's medium line")
        p = subprocess.run([a.linked], env=clean_env(), capture_output=True, text=True, timeout=300)
        check("leak report" not in p.stderr, "a leak report without STRATA_REPORT_LEAKS")

        # A module's private heap: its leaks at its unload, naming it.
        # (two cycles are too few for the host's own growth check: UNLOAD_MAX_GROWTH off)
        p = subprocess.run([a.plugin_host, a.plugin, "cycles", "2", "tls"],
                           env=clean_env(STRATA_REPORT_LEAKS="1", UNLOAD_MAX_GROWTH="1e12", UNLOAD_MAPS_SLACK="1000"),
                           capture_output=True, text=True, timeout=300)
        reports = re.findall(r"^strata leak report: process heap of (\S+)", p.stderr, re.M)
        check(p.returncode == 0, f"plugin host: exit {p.returncode}")
        check(len(reports) == 2 and all(r.endswith(os.path.basename(a.plugin)) for r in reports),
              f"the plugin's unloads did not each report its leaks naming it: {reports}")
        m = re.search(r"^Leaked memory: ([\d,]+) blocks", p.stderr, re.M)
        check(m and int(m.group(1).replace(",", "")) > 16384, "the plugin's 16,384 leaked table blocks are not all listed")
        print(f"plugin: {len(reports)} reports at unload, {m and m.group(1)} blocks each")


def valgrind_counts(a):
    p = subprocess.run([a.valgrind, "--leak-check=full", "--show-leak-kinds=definite", "--num-callers=12",
                        a.plain], env=clean_env(), capture_output=True, text=True, timeout=600)
    counts = {}
    for rec in re.split(r"\n==\d+== \n", p.stderr):
        m = re.search(r"([\d,]+) bytes in ([\d,]+) blocks are definitely lost", rec)
        if not m:
            continue
        names = re.findall(r"(?:at|by) 0x[0-9A-F]+: (.*?) \(", rec)
        f = which_function(names) or "?"
        counts[f] = counts.get(f, 0) + int(m.group(2).replace(",", ""))
    return counts


def lsan_counts(a):
    p = subprocess.run([a.lsan], env=clean_env(), capture_output=True, text=True, timeout=300)
    if "LeakSanitizer has encountered a fatal error" in p.stderr or "LeakSanitizer does not work" in p.stderr:
        return None
    counts = {}
    for rec in re.split(r"\n\n", p.stderr):
        m = re.search(r"(?:Direct|Indirect) leak of \d+ byte\(s\) in (\d+) object\(s\)", rec)
        if not m:
            continue
        names = re.findall(r"#\d+ 0x[0-9a-f]+ in (.*?) (?:/|\.\./|\(|$)", rec, re.M)
        f = which_function(names) or "?"
        counts[f] = counts.get(f, 0) + int(m.group(1))
    return counts


def compare(a):
    with tempfile.TemporaryDirectory() as d:
        env = clean_env(STRATA_REPORT_LEAKS="1", STRATA_LEAK_STACKS="1")
        doc = strata_json([a.linked], env, os.path.join(d, "leaks.json"))
    if doc is None:
        print("no strata report")
        return 1
    s = by_function(doc)
    v = valgrind_counts(a)
    lsan = lsan_counts(a)
    expected = doc["expected"]["blocks"]
    print("| allocating function | strata | valgrind memcheck | LeakSanitizer |")
    print("|---|---|---|---|")
    for f in FUNCTIONS:
        sv = s.get(f, 0)
        shown = f"{sv} + {expected} expected" if f == "main" else str(sv)
        print(f"| `{f}` | {shown} | {v.get(f, 0)} | {'-' if lsan is None else lsan.get(f, 0)} |")
        want = sv + (expected if f == "main" else 0)
        check(v.get(f, 0) == want, f"valgrind: {f} {v.get(f, 0)} blocks, strata {want}")
        if lsan is not None:
            check(lsan.get(f, 0) == want, f"LeakSanitizer: {f} {lsan.get(f, 0)} blocks, strata {want}")
    check(set(v) <= set(FUNCTIONS), f"valgrind reports leaks strata does not know: {v}")
    if lsan is not None:
        check(set(lsan) <= set(FUNCTIONS), f"LeakSanitizer reports leaks strata does not know: {lsan}")
    else:
        print("(LeakSanitizer cannot run here: its column is left out)")
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["report", "compare"])
    for k in ("linked", "plain", "preload", "lsan", "plugin-host", "plugin", "valgrind"):
        ap.add_argument("--" + k)
    a = ap.parse_args()
    rc = report(a) if a.what == "report" else compare(a)
    for f in failures:
        print("FAIL: " + f)
    return 1 if failures or rc else 0


if __name__ == "__main__":
    sys.exit(main())
