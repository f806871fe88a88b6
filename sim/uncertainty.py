"""Input (parameter) uncertainty: scenario values given as ranges or distributions.

Any numeric value in a scenario may be written as ``{low: 4, high: 6}`` (uniform), ``{low, mode,
high}`` (triangular) or ``{dist: uniform|triangular|normal|lognormal, ...}``. Loading replaces it by
its mean (so the scenario validates and a plain run uses the point value) and remembers the spec.
Each replication then samples every uncertain value from its own stream before running, so results
carry both run-to-run noise and parameter uncertainty; :func:`decompose` separates the two.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from sim.streams import stream


def _ndtri(u: float) -> float:
    """Standard normal quantile (scipy imported here: most runs never need it)."""
    from scipy.special import ndtri

    return float(ndtri(u))


PARAMETER_KEY = 0x5EED  # stream key of parameter draws (cohort keys are CRC32 of names)
_DISTS = ("uniform", "triangular", "normal", "lognormal")
# Mappings under these keys are not numeric values (LoS specs, name -> probability maps).
_NOT_PARAMETERS = {"los", "pool", "next"}


@dataclass(frozen=True)
class Parameter:
    """One uncertain value: where it is, its distribution, and whether it must be an integer."""

    path: str
    dist: str
    args: tuple[float, ...]
    integer: bool = False

    @property
    def mean(self) -> float:
        if self.dist == "uniform":
            return (self.args[0] + self.args[1]) / 2
        if self.dist == "triangular":
            return sum(self.args) / 3
        return self.args[0]  # normal (mean, sd), lognormal (mean, cv)

    def ppf(self, u: float) -> float:
        """Value at uniform u (exactly the point value when the spread is zero)."""
        if self.dist == "uniform":
            lo, hi = self.args
            value = lo + u * (hi - lo)
        elif self.dist == "triangular":
            lo, mode, hi = self.args
            if hi == lo:
                value = lo
            else:
                c = (mode - lo) / (hi - lo)
                value = (lo + math.sqrt(u * (hi - lo) * (mode - lo)) if u < c
                         else hi - math.sqrt((1 - u) * (hi - lo) * (hi - mode)))
        elif self.dist == "normal":
            mean, sd = self.args
            value = mean if sd == 0 else mean + sd * _ndtri(u)
        else:
            mean, cv = self.args
            if cv == 0:
                value = mean
            else:
                sigma = math.sqrt(math.log1p(cv * cv))
                value = math.exp(math.log(mean) - sigma * sigma / 2 + sigma * _ndtri(u))
        return float(round(value)) if self.integer else value

    def to_spec(self) -> dict[str, Any]:
        names = {"uniform": ("low", "high"), "triangular": ("low", "mode", "high"),
                 "normal": ("mean", "sd"), "lognormal": ("mean", "cv")}[self.dist]
        return {"dist": self.dist, **dict(zip(names, self.args, strict=True))}


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _parse(path: str, spec: dict[str, Any], problems: list) -> Parameter | None:
    from sim.scenario import Problem

    keys = set(spec)
    dist = spec.get("dist")
    if dist is None and keys in ({"low", "high"}, {"low", "mode", "high"}):
        dist = "uniform" if keys == {"low", "high"} else "triangular"
        body = {k: spec[k] for k in keys}
    elif dist in _DISTS:
        body = {k: v for k, v in spec.items() if k != "dist"}
    else:
        return None
    need = {"uniform": ("low", "high"), "triangular": ("low", "mode", "high"),
            "normal": ("mean", "sd"), "lognormal": ("mean", "cv")}[dist]
    if set(body) != set(need):
        problems.append(Problem(path, f"a {dist} range needs exactly {', '.join(need)}", spec))
        return None
    bad = [k for k in need if not _is_number(body[k]) or not math.isfinite(body[k])]
    if bad:
        problems.append(Problem(f"{path}.{bad[0]}", "must be a finite number", body[bad[0]]))
        return None
    args = tuple(float(body[k]) for k in need)
    if dist in ("uniform", "triangular") and not (args[0] <= args[-1] and args[0] <= args[len(args) // 2] <= args[-1]):
        problems.append(Problem(path, "needs low <= mode <= high" if dist == "triangular" else
                                "needs low <= high", spec))
        return None
    if dist in ("normal", "lognormal") and args[1] < 0:
        problems.append(Problem(f"{path}.{need[1]}", "must be >= 0", args[1]))
        return None
    if dist == "lognormal" and args[0] <= 0:
        problems.append(Problem(f"{path}.mean", "must be > 0", args[0]))
        return None
    integer = all(float(body[k]).is_integer() and isinstance(body[k], int) for k in need
                  if k in ("low", "high", "mode"))
    return Parameter(path, dist, args, integer=integer and dist in ("uniform", "triangular"))


def _candidate(node: dict[str, Any]) -> bool:
    keys = set(node)
    if keys in ({"low", "high"}, {"low", "mode", "high"}):
        return all(_is_number(v) for v in node.values())
    return isinstance(node.get("dist"), str) and node["dist"] in _DISTS


def extract(doc: Any, problems: list) -> tuple[Any, list[Parameter]]:
    """Replace every range/distribution at a value position by its mean; return the parameters."""
    found: list[Parameter] = []

    def walk(node: Any, path: str, where: str | None) -> Any:
        if isinstance(node, dict):
            if path and where not in _NOT_PARAMETERS and _candidate(node):
                param = _parse(path, node, problems)
                if param is None:
                    return node
                found.append(param)
                mean = param.mean
                return int(mean) if param.integer and float(mean).is_integer() else mean
            return {k: walk(v, f"{path}.{k}" if path else str(k), str(k)) for k, v in node.items()}
        if isinstance(node, list):
            # Items of a mixture's component list are LoS specs, like the value of `los`.
            item = "los" if where == "components" else None
            return [walk(v, f"{path}[{i}]", item) for i, v in enumerate(node)]
        return node

    return walk(copy.deepcopy(doc), "", None), found


def sample(scenario, seed: int, replication: int):
    """The scenario with every uncertain value drawn for this replication (same if none)."""
    params: list[Parameter] = scenario.uncertain_parameters
    if not params:
        return scenario
    from sim.scenario import scenario_from_dict, set_path

    rng = stream(seed, replication, PARAMETER_KEY, "parameters")
    u = rng.random(len(params))
    doc = scenario.model_dump(mode="json")
    for p, ui in zip(params, u, strict=True):
        set_path(doc, p.path, p.ppf(float(ui)))
    return scenario_from_dict(doc, scenario.source_path)


@dataclass
class Decomposition:
    """How much of the spread across replications is parameter uncertainty."""

    table: Any  # pandas DataFrame: pool, metric, total_sd, noise_sd, parameter_share


def decompose(scenario, replications: int = 50, seed: int = 1, jobs: int | None = None) -> Decomposition:
    """Run with and without parameter draws (same seeds) and split the variance of each metric."""
    import pandas as pd

    from sim.experiment import run
    from sim.metrics import POOL_METRICS

    point = scenario.model_copy()
    point._source = scenario.source_path
    point._uncertain = []
    with_params = run(scenario, replications, seed, jobs=jobs)
    noise_only = run(point, replications, seed, jobs=jobs)
    rows = []
    for pool in with_params.pool_names:
        for name in POOL_METRICS:
            total = float(np.var(with_params.metric(pool, name), ddof=1))
            noise = float(np.var(noise_only.metric(pool, name), ddof=1))
            share = max(0.0, 1.0 - noise / total) if total > 0 else 0.0
            rows.append({"pool": pool, "metric": name, "total_sd": math.sqrt(total),
                         "noise_sd": math.sqrt(noise), "parameter_share": share})
    return Decomposition(pd.DataFrame(rows))
