"""Ward-closure search: the most wards of a pool that can close while a risk limit holds.

Variant k closes k wards (capacity = base capacity - k * ward size, dated capacity changes left
as they are). Every variant uses the same seed, so they share their patients (common random
numbers) and the risk curve is smooth in k. ``scan`` runs every k (the whole frontier);
``bisection`` runs O(log n) of them, assuming risk grows as wards close.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from sim.batch import METRIC_ALIASES, ExperimentRunner, LoadedExperiment, Variant
from sim.metrics import POOL_METRICS
from sim.results import mean_ci, write_atomic
from sim.scenario import Problem, ScenarioError


def closure_variants(exp: LoadedExperiment) -> list[Variant]:
    """Variants ``k0``..``kN``: the pool with 0..max_wards wards closed."""
    spec = exp.spec.closures
    assert spec is not None
    problems: list[Problem] = []
    pool = exp.base.pools.get(spec.pool)
    if pool is None:
        raise ScenarioError([Problem("closures.pool", "unknown pool in the base scenario",
                                     spec.pool)], exp.path)
    if pool.capacity is None:
        problems.append(Problem("closures.pool", "the pool has unlimited capacity: give it a "
                                "capacity in the base scenario", spec.pool))
    ward = spec.ward_size or pool.ward_size
    if ward is None:
        problems.append(Problem("closures.ward_size", "needed: the pool has no ward_size"))
    if problems:
        raise ScenarioError(problems, exp.path)
    assert pool.capacity is not None and ward is not None
    max_wards = spec.max_wards if spec.max_wards is not None else pool.capacity // ward - 1
    if max_wards < 1 or pool.capacity - max_wards * ward < 0:
        raise ScenarioError([Problem("closures.max_wards", f"must leave a capacity >= 0 "
                                     f"(capacity {pool.capacity}, ward size {ward})", max_wards)],
                            exp.path)
    path = f"pools.{spec.pool}.capacity"
    return [exp.variant(f"k{k:03d}", {path: pool.capacity - k * ward}, f"closures (k={k})",
                        columns={"wards_closed": k, path: pool.capacity - k * ward})
            for k in range(max_wards + 1)]


@dataclass
class ClosureSearch:
    """The search's outcome: the frontier (each k evaluated) and the most wards that can close."""

    pool: str
    metric: str
    limit: float
    method: str
    ward_size: int
    base_capacity: int
    frontier: list[dict[str, Any]]
    evaluated: list[Variant]

    def best(self, key: str) -> int | None:
        """Most wards closed with every smaller k also within the limit (None: not even k=0)."""
        best = None
        for row in sorted(self.frontier, key=lambda r: r["wards_closed"]):
            if not row[key]:
                break
            best = row["wards_closed"]
        return best

    def to_json(self) -> dict[str, Any]:
        most, safe = self.best("within_limit"), self.best("within_limit_ci")
        return {
            "pool": self.pool, "metric": self.metric, "limit": self.limit, "method": self.method,
            "ward_size": self.ward_size, "base_capacity": self.base_capacity,
            "max_wards_closed": most,
            "capacity": None if most is None else self.base_capacity - most * self.ward_size,
            "max_wards_closed_ci": safe,
            "capacity_ci": None if safe is None else self.base_capacity - safe * self.ward_size,
            "definition": "max_wards_closed: the largest k whose mean risk (and every smaller "
                          "k's) is within the limit; _ci: the same with the upper 95% bound",
            "frontier": self.frontier,
        }


def _risk(runner: ExperimentRunner, v: Variant, pool: str, metric: str) -> tuple[float, float, float]:
    name, scale = METRIC_ALIASES.get(metric, (metric, 1.0))
    k = list(v.scenario.pools).index(pool)
    values = runner.pool_values(v)[:, k, POOL_METRICS.index(name)] * scale
    return mean_ci(values)


def search(runner: ExperimentRunner, chosen: list[Variant]) -> ClosureSearch:
    """Scan or bisect over wards closed; every evaluation goes through the run store."""
    spec = runner.exp.spec.closures
    assert spec is not None
    rows: dict[int, dict[str, Any]] = {}
    cap_path = f"pools.{spec.pool}.capacity"

    def evaluate(ks: list[int]) -> None:
        todo = [k for k in ks if k not in rows]
        runner.ensure([chosen[k] for k in todo])
        for k in todo:
            mean, lo, hi = _risk(runner, chosen[k], spec.pool, spec.limit.metric)
            rows[k] = {"wards_closed": k, "capacity": chosen[k].overrides[cap_path],
                       "mean": mean, "ci_low": lo, "ci_high": hi,
                       "within_limit": bool(mean <= spec.limit.max),
                       "within_limit_ci": bool(hi <= spec.limit.max)}
            runner.log.info("k=%d wards closed: %s = %.6g [%.6g, %.6g]", k, spec.limit.metric,
                            mean, lo, hi)

    n = len(chosen) - 1
    if spec.method == "scan":
        evaluate(list(range(n + 1)))
    else:
        evaluate([0, n])
        lo, hi = 0, n  # invariant once started: lo within the limit, hi not
        if rows[0]["within_limit"] and not rows[n]["within_limit"]:
            while hi - lo > 1:
                mid = (lo + hi) // 2
                evaluate([mid])
                lo, hi = (mid, hi) if rows[mid]["within_limit"] else (lo, mid)
    base = chosen[0].overrides[cap_path]
    ward = base - chosen[1].overrides[cap_path]
    frontier = [rows[k] for k in sorted(rows)]
    return ClosureSearch(spec.pool, spec.limit.metric, spec.limit.max, spec.method, ward, base,
                         frontier, [chosen[k] for k in sorted(rows)])


def write_outputs(root: Path, result: ClosureSearch) -> None:
    """closures.json (answer and frontier) and frontier.csv (wards closed vs risk, with CIs)."""
    write_atomic(root / "closures.json", json.dumps(result.to_json(), indent=2))
    write_atomic(root / "frontier.csv", pd.DataFrame(result.frontier).to_csv(index=False,
                                                                             lineterminator="\n"))
