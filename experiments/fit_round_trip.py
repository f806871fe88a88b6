"""The `bedflow fit` round trip over many synthetic extracts: how far a five-year extract of
the Derbyshire baseline lets the fit recover the scenario, seed by seed.

For each seed: synthesise five years of episodes from the baseline (warm-up 0), fit them, and
simulate the fitted scenario beside the original (20 replications each, the same simulation
seed). Writes, under experiments/results/:

  fit_round_trip.csv   per seed: each pool's mean occupancy and census p95, each cohort's
                       admissions and fitted LoS mean, as relative errors against the original
  fit_round_trip.md    the spread of each error over the seeds against the issue's tolerance
                       (2% occupancy and volumes, 3% census p95 and LoS means)

Usage (from the repository root; about 20 s a seed on one core):

  .venv/bin/python experiments/fit_round_trip.py [--seeds 11-20] [--replications 20]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sim  # noqa: E402
from sim import fit  # noqa: E402
from sim import los as los_mod  # noqa: E402
from sim.results import write_atomic  # noqa: E402
from sim.synth import synth_episodes  # noqa: E402

BASELINE = ROOT / "configs" / "derbyshire" / "baseline_2015_16.yaml"
TOLERANCE = {"mean_occupancy": 0.02, "census_p95": 0.03, "admissions": 0.02, "los_mean": 0.03}


def one_seed(seed: int, reps: int) -> list[dict]:
    """Relative errors of one synthetic extract's round trip."""
    original = sim.load_scenario(BASELINE)
    long = sim.load_scenario(BASELINE, overrides={"warmup_days": 0, "run_days": 5 * 365})
    df, ext = synth_episodes(long, seed=seed)
    res = fit.fit_episodes(df, extract_date=ext, pools_from=original,
                           warmup_days=original.warmup_days, run_days=original.run_days)
    a = sim.run(original, replications=reps, seed=7, jobs=1)
    b = sim.run(res.scenario(), replications=reps, seed=7, jobs=1)
    rows = []
    for pool in original.pools:
        for metric in ("mean_occupancy", "census_p95"):
            x, y = a.metric(pool, metric), b.metric(pool, metric)
            rows.append({"seed": seed, "episodes": len(df), "kind": "pool", "name": pool,
                         "metric": metric, "original": x.mean(), "fitted": y.mean()})
    for name, cohort in original.cohorts.items():
        (st,) = res.report["cohorts"][name]["stages"].values()
        rows.append({"seed": seed, "episodes": len(df), "kind": "cohort", "name": name,
                     "metric": "los_mean", "fitted": st["los"]["fitted_mean"],
                     "original": los_mod.from_spec(cohort.pathway[0].los).mean()})
        rows.append({"seed": seed, "episodes": len(df), "kind": "cohort", "name": name,
                     "metric": "admissions", "original": a.admissions(name).mean(),
                     "fitted": b.admissions(name).mean()})
    for r in rows:
        r["error"] = r["fitted"] / r["original"] - 1.0
    return rows


def markdown(df: pd.DataFrame, command: str, seconds: float) -> str:
    seeds = sorted(df.seed.unique())
    out = ["# `bedflow fit` round trip over synthetic extracts", "",
           f"Made by `{command}` ({len(seeds)} seeds, {seconds / 60:.1f} minutes). Each seed is "
           "one five-year extract of the Derbyshire baseline (about "
           f"{df.episodes.mean():,.0f} episodes), fitted and simulated beside the original. "
           "Errors are relative, fitted against original.", "",
           "| quantity | tolerance | mean error | sd over seeds | mean / its se | worst | seeds within |",
           "|---|---|---|---|---|---|---|"]
    biased = []  # mean error at least 3 of its standard errors from 0
    for (_kind, name, metric), g in df.groupby(["kind", "name", "metric"], sort=False):
        e = 100 * g.error.to_numpy()
        tol = 100 * TOLERANCE[metric]
        z = e.mean() / (e.std(ddof=1) / np.sqrt(len(e))) if e.std(ddof=1) > 0 else 0.0
        if abs(z) >= 3:
            biased.append((f"{name} {metric.replace('_', ' ')}", e.mean(), z, abs(e.mean()) <= tol))
        out.append(f"| {name} {metric.replace('_', ' ')} | {tol:.0f}% | {e.mean():+.2f}% | "
                   f"{e.std(ddof=1):.2f}% | {z:+.1f} | {e[np.argmax(np.abs(e))]:+.2f}% | "
                   f"{np.sum(np.abs(e) <= tol)} / {len(e)} |")
    ok = df.assign(ok=df.error.abs() <= df.metric.map(TOLERANCE)).groupby("seed").ok.all()
    out += ["", f"Seeds on which every quantity is within its tolerance: {int(ok.sum())} of "
            f"{len(ok)}.", "",
            "The spread over seeds is the sampling error of one five-year extract (plus the "
            "simulation noise of 20 replications). Where it is close to or above the tolerance "
            "(the 50-bed dementia pool has about 1,500 stays in five years), no fit can meet the "
            "tolerance on every extract; the test (`tests/test_fit.py`) therefore accepts an "
            "error within the tolerance or within 3 standard errors of the fitted inputs. A mean "
            "error several of its standard errors from 0 is a bias of the fit rather than noise"
            + (": here " + "; ".join(f"{q} ({m:+.2f}%, {z:+.1f} se, "
                                       f"{'inside' if inside else 'OUTSIDE'} its tolerance)"
                                       for q, m, z, inside in biased)
               if biased else "; none here is 3 standard errors from 0") + ".", ""]
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", default="11-20", help="first-last (inclusive)")
    p.add_argument("--replications", type=int, default=20)
    p.add_argument("--out", default=str(ROOT / "experiments" / "results"))
    args = p.parse_args()
    lo, hi = (int(v) for v in args.seeds.split("-"))
    t0 = time.time()
    rows = []
    for seed in range(lo, hi + 1):
        rows += one_seed(seed, args.replications)
        print(f"seed {seed} done ({time.time() - t0:.0f} s)", flush=True)
    df = pd.DataFrame(rows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = "python experiments/fit_round_trip.py " + " ".join(sys.argv[1:])
    write_atomic(out / "fit_round_trip.csv", df.to_csv(index=False, float_format="%.6g"))
    write_atomic(out / "fit_round_trip.md", markdown(df, command.strip(), time.time() - t0))


if __name__ == "__main__":
    main()
