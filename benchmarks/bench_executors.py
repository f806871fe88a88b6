"""Benchmark the executors on the Derbyshire baseline: replications/s with 1 and 2 local
workers, and the same tasks through a Dask LocalCluster (its overhead vs local processes).

Each measurement is a fresh `python -m sim run ... --json` process, so start-up, imports and
numba compilation (or cache loading) are included, as a planner would see them. The Dask and
local runs must print the same summary.json (bit-identical results whatever the executor).

    .venv/bin/python benchmarks/bench_executors.py [--replications 1000] [--append]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BASELINE = REPO / "configs" / "derbyshire" / "baseline_2015_16.yaml"


def timed_run(replications: int, jobs: int, scheduler: str | None = None) -> tuple[float, dict]:
    """Wall-clock seconds of one `bedflow run` process, and its summary.json."""
    cmd = [sys.executable, "-m", "sim", "run", str(BASELINE), "-n", str(replications),
           "-j", str(jobs), "--seed", "1", "--json"]
    if scheduler:
        cmd += ["--scheduler", scheduler]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=True)
    return time.perf_counter() - t0, json.loads(done.stdout)


def machine() -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        load = "load average {:.2f} {:.2f} {:.2f} at start".format(*os.getloadavg())
    except OSError:
        load = ""
    return f"{platform.machine()}, {cores} cores, Python {platform.python_version()}; {load}"


def commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, check=True).stdout.strip()
        return out + (" + uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=1000, help="for the 2-worker runs")
    parser.add_argument("--replications-1", type=int, default=300, help="for the 1-worker run")
    parser.add_argument("--repeats", type=int, default=2, help="alternating local/Dask runs")
    parser.add_argument("--append", action="store_true", help="append the section to RESULTS.md")
    args = parser.parse_args(argv)

    header = machine()
    timed_run(2, 1)  # warm the numba cache so every run below loads rather than compiles
    rows = []
    t1, s1 = timed_run(args.replications_1, 1)
    rows.append(("local, 1 worker", args.replications_1, t1, ""))
    # Local and Dask alternate, so that load from other work hits both alike; best of repeats.
    local, dask = [], []
    for _ in range(args.repeats):
        local.append(timed_run(args.replications, 2))
        dask.append(timed_run(args.replications, 2, "local-dask"))
    t2, s2 = min(local, key=lambda r: r[0])
    td, sd = min(dask, key=lambda r: r[0])
    each = lambda runs: ", ".join(f"{t:.1f}" for t, _ in runs)  # noqa: E731
    rows.append(("local processes, 2 workers", args.replications, t2, each(local)))
    rows.append(("Dask LocalCluster (127.0.0.1), 2 workers", args.replications, td, each(dask)))
    identical = all(s == s2 for _, s in local + dask)

    lines = [
        "",
        "## Executors: replications/s on the Derbyshire baseline (`benchmarks/bench_executors.py`)",
        "",
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; {header}; commit {commit()}.",
        "Each row is one fresh `python -m sim run configs/derbyshire/baseline_2015_16.yaml "
        "--json` process (start-up, imports and numba cache loading included).",
        "",
        "| executor | replications | wall seconds (best) | replications/s | every run (s) |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {name} | {n} | {t:.1f} | {n / t:.1f} | {runs or f'{t:.1f}'} |"
              for name, n, t, runs in rows]
    lines += [
        "",
        f"- 1,000 replications on 2 workers, projected from the row above: "
        f"{1000 * t2 / args.replications:.1f} s (target < 60 s).",
        f"- Dask overhead vs local processes for the same {args.replications} replications: "
        f"{td - t2:+.1f} s ({100 * (td - t2) / t2:+.0f}%), best run of each; summary.json "
        f"identical in every run: {identical}.",
        f"- Speed-up of 2 workers over 1: {(args.replications / t2) / (args.replications_1 / t1):.2f}x.",
        "",
    ]
    try:
        lines.insert(-1, "- Load average at the end: {:.2f} {:.2f} {:.2f} (other work on the "
                         "machine slows every row alike).".format(*os.getloadavg()))
    except OSError:
        pass
    text = "\n".join(lines)
    print(text)
    if args.append:
        with open(REPO / "benchmarks" / "RESULTS.md", "a") as fh:
            fh.write(text)
    assert s1["replications"] == args.replications_1
    return 0 if identical else 1


if __name__ == "__main__":
    raise SystemExit(main())
