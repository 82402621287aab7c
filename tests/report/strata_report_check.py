#!/usr/bin/env python3
"""strata-report reads a JSON report back and writes what the library wrote.

    strata_report_check.py STRATA_REPORT_TOOL STATE_TEST_BINARY

1. Round trip: the state test's hidden case "[.pair]" writes pair.json,
   pair.txt and pair.svg of one quiescent pool; `strata-report pair.json`
   must print pair.txt byte for byte and `--svg` must draw pair.svg byte for
   byte; `--json` writes JSON that validates against the schema and reads
   back to the same text.
2. diff: "[.diff]" writes two reports of a pool before and after 1,000
   blocks of 100 B, 20 medium and 2 large blocks; the diff must show exactly
   those in the 112 B class's row and the tiers.
3. Untrusted input: reports broken one rule at a time are refused with exit
   status 2 and a message naming the key, and nothing is written.
"""
import copy
import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
import report_checks  # noqa: E402

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
    return cond


def run(args, **kw):
    return subprocess.run(args, capture_output=True, timeout=120, **kw)


def main():
    tool, state = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, STRATA_TEST_REPORT_DIR=d)
        for case in ("[.pair]", "[.diff]"):
            p = run([state, case], env=env)
            if p.returncode:
                print(p.stdout.decode() + p.stderr.decode())
                return 1
        pj, pt, ps = (os.path.join(d, "pair." + e) for e in ("json", "txt", "svg"))

        # 1. round trip
        p = run([tool, pj])
        check(p.returncode == 0, f"strata-report pair.json: exit {p.returncode}: {p.stderr.decode()}")
        with open(pt, "rb") as f:
            text = f.read()
        check(p.stdout == text, "strata-report's text differs from the library's text:\n"
              + first_difference(p.stdout, text))
        out_svg = os.path.join(d, "tool.svg")
        p = run([tool, pj, "--svg", out_svg])
        check(p.returncode == 0, f"--svg: exit {p.returncode}: {p.stderr.decode()}")
        with open(ps, "rb") as a, open(out_svg, "rb") as b:
            lib_svg, tool_svg = a.read(), b.read()
        check(lib_svg == tool_svg, "strata-report's SVG differs from the library's SVG:\n"
              + first_difference(tool_svg, lib_svg))
        p = run([tool, pj, "--json"])
        check(p.returncode == 0, f"--json: exit {p.returncode}")
        again = json.loads(p.stdout)
        failures.extend("--json: " + f for f in report_checks.validate(again))
        with open(pj) as f:
            orig = json.load(f)
        for k in ("classes", "tiers", "summary", "map", "heap", "pid", "complete"):
            check(again.get(k) == orig.get(k), f"--json changed \"{k}\"")
        norm = os.path.join(d, "norm.json")
        with open(norm, "wb") as f:
            f.write(p.stdout)
        check(run([tool, norm]).stdout == text, "the normalised JSON does not read back to the same text")

        # A minimal report: only the keys the schema requires.
        minimal = {k: orig[k] for k in ("schema", "generator", "heap", "pid", "complete")}
        minimal["classes"] = [{k: c[k] for k in ("block_size", "blocks_in_use", "bytes_in_use", "bytes_reserved")}
                              for c in orig["classes"]]
        minimal["tiers"] = {t: {k: orig["tiers"][t][k] for k in ("blocks_in_use", "bytes_in_use", "bytes_reserved")}
                            for t in ("small", "medium", "large")}
        minimal["summary"] = {k: orig["summary"][k] for k in
                              ("allocated_bytes", "free_bytes", "overhead_bytes", "reserved_bytes",
                               "efficiency_percent")}
        minimal["map"] = [{k: r[k] for k in ("start", "end", "use")} for r in orig["map"]]
        mp = os.path.join(d, "minimal.json")
        with open(mp, "w") as f:
            json.dump(minimal, f)
        p = run([tool, mp])
        check(p.returncode == 0, f"a report with only the required keys is refused: {p.stderr.decode()}")
        used = [c for c in orig["classes"] if c["bytes_reserved"]]
        for c in used:
            check(re.search(rb"^\s+%d\s+%s\s" % (c["block_size"], f"{c['blocks_in_use']:,}".encode()),
                            p.stdout, re.M), f"the minimal report's text lacks the {c['block_size']} B row")

        # 2. diff
        p = run([tool, "diff", os.path.join(d, "before.json"), os.path.join(d, "after.json")])
        check(p.returncode == 0, f"diff: exit {p.returncode}: {p.stderr.decode()}")
        out = p.stdout.decode()
        print(out)
        rows = re.findall(r"^\s+(\d+)\s+(\S+)\s+(\S+)\s+(\S+)$", out.split("\nTiers")[0], re.M)
        check(len(rows) == 1 and rows[0][0] == "112" and rows[0][1] == "+1,000" and rows[0][2] == "+112,000",
              f"diff: the size classes that changed should be 112 B only, +1,000 blocks: {rows}")
        for label, change in (("medium blocks", "+20"), ("large blocks", "+2"), ("small blocks", "+1,000")):
            m = re.search(r"^\s+%s\s+\S+\s+\S+\s+(\S+)$" % label, out, re.M)
            check(m and m.group(1) == change, f"diff: {label} should change by {change}: {m and m.group(0)}")
        m = re.search(r"^\s+small blocks\s+(\S+)", out, re.M)
        check(m and m.group(1) == "300", "diff: the old small blocks should be 300")

        # 3. untrusted input
        def broken(name, mutate, key):
            doc = copy.deepcopy(orig)
            mutate(doc)
            path = os.path.join(d, f"bad-{name}.json")
            with open(path, "w") as f:
                if isinstance(doc, str):
                    f.write(doc)
                else:
                    json.dump(doc, f)
            svg = os.path.join(d, f"bad-{name}.svg")
            for args in ([tool, path], [tool, path, "--svg", svg], [tool, "diff", path, pj]):
                p = run(args)
                err = p.stderr.decode()
                check(p.returncode == 2, f"{name}: {args[1:]} exits {p.returncode}, not 2 ({err.strip()})")
                check(key in err, f"{name}: the message does not name {key!r}: {err.strip()}")
                check(not p.stdout, f"{name}: wrote to stdout")
            check(not os.path.exists(svg), f"{name}: wrote the SVG")

        def setk(path, value):
            def f(doc):
                o = doc
                for k in path[:-1]:
                    o = o[k]
                o[path[-1]] = value
            return f

        def delk(path):
            def f(doc):
                o = doc
                for k in path[:-1]:
                    o = o[k]
                del o[path[-1]]
            return f

        run_ = next(i for i, r in enumerate(orig["map"]) if r["use"] != "unmapped")
        broken("schema", setk(["schema"], 2), "schema 2")
        broken("schema-type", setk(["schema"], "1"), "schema")
        broken("missing-classes", delk(["classes"]), "classes")
        broken("negative", setk(["classes", 0, "blocks_in_use"], -1), "classes[0].blocks_in_use")
        broken("fraction", setk(["tiers", "medium", "bytes_in_use"], 1.5), "tiers.medium.bytes_in_use")
        broken("huge", setk(["summary", "free_bytes"], 2 ** 70), "summary.free_bytes")
        broken("string-count", setk(["tiers", "large", "blocks_in_use"], "3"), "tiers.large.blocks_in_use")
        broken("too-many-classes", lambda doc: doc["classes"].extend(doc["classes"] * 64), "classes")
        broken("block-size", setk(["classes", 1, "block_size"], 0), "classes[1].block_size")
        broken("efficiency", setk(["summary", "efficiency_percent"], 250.0), "efficiency_percent")
        broken("efficiency-lie", setk(["summary", "efficiency_percent"],
                                      (orig["summary"]["efficiency_percent"] + 50) % 100), "efficiency_percent")
        broken("heap-long", setk(["heap"], "x" * 100), ".heap")
        broken("heap-nul", setk(["heap"], "process\u0000heap"), ".heap")
        broken("program-long", setk(["program"], "/" * 300), ".program")
        broken("pid", setk(["pid"], 0), ".pid")
        broken("address-form", setk(["map", run_, "start"], "12345"), f"map[{run_}].start")
        broken("address-upper", setk(["map", run_, "start"], "0x0000AB000000"), f"map[{run_}].start")
        broken("address-unaligned", setk(["map", run_, "end"], "0x%012x" % (int(orig["map"][run_]["end"], 16) + 8)),
               f"map[{run_}]")
        broken("address-beyond", setk(["map", len(orig["map"]) - 1, "end"], "0x%012x" % (1 << 48)),
               f"map[{len(orig['map']) - 1}]")
        broken("run-backwards", lambda doc: doc["map"].reverse(), "map[1]")
        broken("use", setk(["map", run_, "use"], "mine"), f"map[{run_}].use")
        broken("name-type", setk(["map", run_, "name"], 7), f"map[{run_}].name")
        broken("complete-lie", setk(["state_complete"], False), ".complete")
        broken("not-object", lambda doc: doc.clear() or doc.update({"schema": 1, "classes": []}), "generator")
        with open(os.path.join(d, "garbage.json"), "w") as f:
            f.write('{"schema": 1, "classes": [')
        p = run([tool, os.path.join(d, "garbage.json")])
        check(p.returncode == 2 and "not JSON" in p.stderr.decode(), f"garbage: exit {p.returncode}")
        p = run([tool, os.path.join(d, "no-such.json")])
        check(p.returncode == 1 and "no-such.json" in p.stderr.decode(), f"a missing file: exit {p.returncode}")
        p = run([tool])
        check(p.returncode == 2 and b"usage" in p.stderr, "no arguments: not the usage and exit 2")
        p = run([tool, pj, "--png", "x"])
        check(p.returncode == 2, "an unknown option: not exit 2")
    for f in failures:
        print("FAIL: " + f)
    print(f"{len(failures)} failure(s)")
    return 1 if failures else 0


def first_difference(a, b):
    al, bl = a.splitlines(), b.splitlines()
    for i, (x, y) in enumerate(zip(al, bl)):
        if x != y:
            return f"  line {i + 1}:\n    tool:    {x!r}\n    library: {y!r}"
    return f"  lengths {len(al)} and {len(bl)} lines"


if __name__ == "__main__":
    sys.exit(main())
