"""Results fingerprint for performance work: optimisations must leave every number unchanged.

``python benchmarks/regression.py save DIR`` before optimising, ``... check DIR`` after: the
check compares summary.json and every per-replication array (metrics, census) exactly. Metrics
added since the save (new summary keys, new trailing metric columns) are not differences: only
what existed before must be unchanged.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

import sim
from sim import demand
from sim.engines import run_engine
from sim.network import compile_network
from sim.scenario import load_scenario, scenario_from_dict

ROOT = Path(__file__).resolve().parents[1]
REPLICATIONS = 5
SEED = 7


def _blocking_network_doc() -> dict:
    """Two capacitated stages with queueing, overflow and blocking (exercises every path)."""
    return {
        "name": "regression-blocking", "start": "2020-01-01", "warmup_days": 30, "run_days": 200,
        "pools": {"acute": {"capacity": 30, "when_full": "overflow:spill"},
                  "spill": {"capacity": 5, "when_full": "queue"},
                  "rehab": {"capacity": 20, "when_full": "queue",
                            "capacity_changes": [{"date": "2020-05-01", "capacity": 15}]}},
        "cohorts": {
            "a": {"arrivals": {"per_year": 3000, "growth": 0.05, "overdispersion": 0.2},
                  "pathway": [
                      {"stage": "acute", "pool": {"acute": 0.8, "spill": 0.2},
                       "los": {"dist": "gamma", "mean": 3.0, "cv": 1.3},
                       "next": {"rehab": 0.4, "home": 0.5, "died": 0.1}},
                      {"stage": "rehab", "pool": "rehab",
                       "los": {"dist": "weibull", "mean": 8.0, "cv": 0.8}}]},
            "b": {"arrivals": {"per_year": 800},
                  "pathway": [{"stage": "stay", "pool": "rehab",
                               "los": {"dist": "exponential", "mean": 5.0}}]},
        },
    }


def scenarios():
    """The scenarios fingerprinted: Derbyshire baseline, single ward, a blocking network."""
    out = [
        load_scenario(ROOT / "configs/derbyshire/baseline_2015_16.yaml"),
        load_scenario(ROOT / "configs/examples/single_ward.yaml"),
        scenario_from_dict(_blocking_network_doc()),
    ]
    phased = ROOT / "configs/derbyshire/stp_phased_2016_2021.yaml"
    return out + [load_scenario(phased)] if phased.exists() else out


def fingerprint(scenario) -> dict[str, np.ndarray | str]:
    """summary.json (as text) and raw arrays of a short run, plus one patient table and trace."""
    results = sim.run(scenario, replications=REPLICATIONS, seed=SEED, jobs=1)
    out: dict[str, np.ndarray | str] = {
        "summary": json.dumps(results.summary_json(), sort_keys=True),
        "pool_values": results.pool_values,
        "cohort_admissions": results.cohort_admissions,
        "census_days": results.census_days,
        "unconstrained_census": results.unconstrained_census,
    }
    network = compile_network(scenario)
    table = demand.generate(network, SEED, 3)
    for name in ("arrival", "cohort", "candidate", "mark", "exit", "visit_start", "visit_pool",
                 "visit_los", "visit_stage"):
        if name == "mark" and not network.interventions:
            continue  # not drawn (NaN) without interventions, their only reader
        out[f"table_{name}"] = getattr(table, name)
    trace = run_engine("numba", network, table)
    for name in ("used_pool", "request", "admit", "leave", "flags", "log_time", "log_pool",
                 "log_delta"):
        out[f"trace_{name}"] = getattr(trace, name)
    return out


def _only_old_keys(new, old):
    """``new`` restricted to the keys ``old`` has, recursively (added keys are not changes)."""
    if isinstance(new, dict) and isinstance(old, dict):
        return {k: _only_old_keys(new[k], old[k]) if k in new else None for k in old}
    return new


def _equal(a, b, key: str = "") -> bool:
    if key == "summary":
        old = json.loads(b)
        return _only_old_keys(json.loads(a), old) == old
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    a, b = np.asarray(a), np.asarray(b)
    if key == "pool_values" and a.ndim == 3 and b.ndim == 3 and a.shape[2] > b.shape[2]:
        a = a[:, :, : b.shape[2]]  # metric columns appended since the save
    if a.shape != b.shape:
        return False
    return bool(np.array_equal(a, b, equal_nan=a.dtype.kind == "f"))


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("save", "check"):
        print("usage: regression.py save|check DIR", file=sys.stderr)
        return 2
    mode, folder = argv[0], Path(argv[1])
    folder.mkdir(parents=True, exist_ok=True)
    failed = 0
    for scenario in scenarios():
        path = folder / f"{scenario.name}.npz"
        fp = fingerprint(scenario)
        if mode == "save":
            np.savez(path, **{k: (np.array(v) if isinstance(v, str) else v) for k, v in fp.items()})
            print(f"saved {path}")
            continue
        ref = np.load(path)
        bad = [k for k in fp if not _equal(fp[k], ref[k].item() if k == "summary" else ref[k], k)]
        failed += bool(bad)
        print(f"{scenario.name}: {'DIFFERS in ' + ', '.join(bad) if bad else 'identical'}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
