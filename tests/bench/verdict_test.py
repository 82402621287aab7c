#!/usr/bin/env python3
"""bench/run's judgement of the issue's bar, on made-up rows.

The verdict is what docs/benchmarks.md and the README's main job print
against the bar, so a slip in it misreports the project's state: these cases
pin down each of its lines (time and peak RSS, geometric means and rows over
1.25x the best peer).  Run by CTest (bench_verdict); needs only python3.
"""
import importlib.machinery
import importlib.util
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
RUN = os.path.join(HERE, "..", "..", "bench", "run")


def load_run():
    loader = importlib.machinery.SourceFileLoader("bench_run", RUN)
    spec = importlib.util.spec_from_loader("bench_run", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


run = load_run()
ALLOCS = ["strata", "glibc", "tcmalloc", "jemalloc"]


def row(workload, threads, time, rss):
    """time: seconds per allocator; rss: peak KiB per allocator (same order as ALLOCS)."""
    return {"workload": workload, "threads": threads,
            "time": dict(zip(ALLOCS, time)), "rss": dict(zip(ALLOCS, rss)), "final_rss": {}}


class Verdict(unittest.TestCase):
    def test_memory_rows_are_judged_against_the_leanest_peer_glibc_included(self):
        rows = [
            # strata fastest, but 1.50x glibc's peak: a memory row over the bar
            row("larson", 1, [1.0, 3.0, 1.2, 1.5], [1500, 1000, 2000, 1800]),
            # 1.20x the leanest (tcmalloc here, not glibc): within the bar
            row("churn", 1, [1.0, 2.0, 1.1, 1.3], [1200, 1300, 1000, 1100]),
        ]
        an = run.analysis(rows, ALLOCS)
        lean = {(x[2]["workload"], x[1]): round(x[0], 2) for x in an["per_row_leanest"]}
        self.assertEqual(lean, {("larson", "glibc"): 1.5, ("churn", "tcmalloc"): 1.2})
        lines = run.verdict(an, rows, ALLOCS)
        mem = [l for l in lines if "peak RSS is more than 1.25x" in l]
        self.assertEqual(len(mem), 1)
        self.assertIn("1 of 2: larson/1t 1.50x (glibc)", mem[0])
        self.assertNotIn("churn", mem[0])

    def test_time_rows_and_geometric_means(self):
        rows = [
            row("xmalloc", 4, [1.3, 4.0, 1.0, 1.1], [1000, 1000, 1000, 1000]),  # 1.30x tcmalloc
            row("larson", 2, [1.0, 4.0, 1.0, 1.0], [1000, 1000, 1000, 1000]),   # 1.00x
        ]
        an = run.analysis(rows, ALLOCS)
        lines = run.verdict(an, rows, ALLOCS)
        tline = [l for l in lines if "time is more than 1.25x" in l][0]
        self.assertIn("1 of 2: xmalloc/4t 1.30x (tcmalloc)", tline)
        mline = [l for l in lines if "peak RSS is more than 1.25x" in l][0]
        self.assertIn("0 of 2", mline)
        # geometric means relative to glibc: strata sqrt(1.3/4 * 1/4), RSS all 1.0
        self.assertAlmostEqual(an["time_gm"]["strata"], (1.3 / 4 * 1.0 / 4) ** 0.5)
        rss_line = [l for l in lines if l.startswith("- peak RSS, geometric mean")][0]
        self.assertIn("strata 1.00 (bar: <= 1.00) -> met", rss_line)

    def test_rss_table_has_the_leanest_peer_column(self):
        rows = [row("larson", 1, [1.0, 3.0, 1.2, 1.5], [1500, 1000, 2000, 1800])]
        an = run.analysis(rows, ALLOCS)
        hdr, body, foot = run.rss_lines(rows, ALLOCS, an)
        self.assertEqual(hdr[-1], "strata/leanest peer (who)")
        self.assertEqual(body[0][-1], "1.50 (glibc)")
        self.assertEqual(foot[-1], "1.50")

    def test_a_row_without_strata_peak_is_not_judged(self):
        r = row("larson", 1, [1.0, 3.0, 1.2, 1.5], [1500, 1000, 2000, 1800])
        del r["rss"]["strata"]
        an = run.analysis([r], ALLOCS)
        self.assertEqual(an["per_row_leanest"], [])


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0]] + sys.argv[1:], verbosity=1)
