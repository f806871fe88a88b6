"""Run some or all benchmarks: ``python benchmarks/run_bench.py [--quick] [NAME ...]``.

The same suite as ``bedflow bench`` (names: see ``sim.bench.BENCHMARKS``); results are appended
to ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import sys

from sim.bench import run_suite

if __name__ == "__main__":
    args = sys.argv[1:]
    quick = "--quick" in args
    run_suite([a for a in args if a != "--quick"] or None, quick=quick)
