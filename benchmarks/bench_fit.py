"""Benchmark: `bedflow fit` on about a million ward stays (target: under 60 s on 2 cores).

``python benchmarks/bench_fit.py [--years 10] [--keep DIR] [--config SCENARIO]`` synthesises
a scenario (default the Derbyshire baseline, about 108,000 stays a year) for ``years`` years,
writes it as CSV, then times reading and validating the CSV and fitting arrivals, LoS and
routing (no plots). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import tempfile
import time
from pathlib import Path

from sim import fit
from sim.scenario import load_scenario, scenario_from_dict
from sim.synth import synth_episodes, write_extract

ROOT = Path(__file__).resolve().parents[1]

#: ``--config multistage``: transfers between pools, so spells have up to three ward stays.
MULTISTAGE = {
    "name": "bench-multistage", "start": "2015-01-01", "run_days": 365,
    "pools": {p: {"capacity": None} for p in ("acute_a", "acute_b", "community", "rehab")},
    "cohorts": {
        "frail": {"arrivals": {"per_year": 30000, "growth": 0.02,
                               "weekday": [1.2, 1.1, 1, 1, 1, 0.85, 0.85]},
                  "pathway": [
                      {"stage": "acute", "pool": {"acute_a": 0.6, "acute_b": 0.4},
                       "los": {"dist": "lognormal", "mean": 9.0, "cv": 1.3},
                       "next": {"community": 0.25, "rehab": 0.1, "home": 0.55, "care_home": 0.05,
                                "died": 0.05}},
                      {"stage": "community", "pool": "community",
                       "los": {"dist": "gamma", "mean": 21.0, "cv": 0.9},
                       "next": {"rehab": 0.2, "home": 0.8}},
                      {"stage": "rehab", "pool": "rehab",
                       "los": {"dist": "weibull", "mean": 14.0, "cv": 0.8}}]},
        "adults": {"arrivals": {"per_year": 40000}, "pathway": [
            {"stage": "acute", "pool": {"acute_a": 0.5, "acute_b": 0.5},
             "los": {"dist": "lognormal", "mean": 3.0, "cv": 1.5}}]},
    },
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--years", type=float, default=10.0)
    ap.add_argument("--keep", help="folder to keep the extract and fitted scenario in")
    ap.add_argument("--config", default=str(ROOT / "configs/derbyshire/baseline_2015_16.yaml"),
                    help="scenario to synthesise (default: the Derbyshire baseline), or "
                         "'multistage' for a built-in one with transfers between pools")
    args = ap.parse_args()
    if args.config == "multistage":
        scenario = scenario_from_dict(MULTISTAGE)
    else:
        scenario = load_scenario(args.config)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep or tmp)
        t0 = time.perf_counter()
        df, extract_date = synth_episodes(scenario, years=args.years, seed=1)
        csv = write_extract(df, folder / "episodes.csv")
        t_synth = time.perf_counter() - t0
        t0 = time.perf_counter()
        x = fit.read_extract(csv, extract_date=extract_date)
        t_read = time.perf_counter() - t0
        t0 = time.perf_counter()
        result = fit.fit_extract(x)
        t_fit = time.perf_counter() - t0
        if args.keep:
            result.write(folder / "fitted.yaml", plots=False)
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                                capture_output=True).stdout.strip()
    except OSError:
        commit = ""
    print(json.dumps({
        "config": Path(args.config).name, "stays": x.n_stays, "spells": result.report["spells"], "years": args.years,
        "csv_mb": round(csv.stat().st_size / 1e6, 1) if args.keep else None,
        "synth_s": round(t_synth, 1), "read_validate_s": round(t_read, 1),
        "fit_s": round(t_fit, 1), "total_fit_s": round(t_read + t_fit, 1),
        "machine": f"{platform.machine()}, {platform.processor() or platform.system()}",
        "commit": commit,
    }))


if __name__ == "__main__":
    main()
