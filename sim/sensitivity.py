"""Sensitivity analysis: one-at-a-time (tornado), Sobol indices and Morris screening via SALib.

A *model* is any callable mapping a sample matrix X [points, parameters] to outputs Y [points].
:class:`ScenarioModel` is the simulator as such a model: each parameter sets one or more YAML
paths of a base scenario (absolute values, or factors of the base values), each point is run
for a few replications with the same seed (common random numbers), and the output is a
:class:`Metric` such as acute beds needed. Test functions (e.g. Ishigami) plug in the same way.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sim.metrics import POOL_METRICS, risk_rule, stp_rule
from sim.results import mean_ci
from sim.scenario import (
    Problem,
    Scenario,
    ScenarioError,
    load_scenario,
    scenario_from_dict,
    set_path,
)

Model = Callable[[np.ndarray], np.ndarray]

#: Pool metrics that may be summed over a group of pools.
ADDITIVE = frozenset({
    "mean_occupancy", "unconstrained_mean_occupancy", "arrivals", "admissions", "overflows",
    "lost", "waits_over_4h", "waits_over_12h", "delayed_transfer_days", "bed_days",
})


# --------------------------------------------------------------------------- outputs


@dataclass(frozen=True)
class Metric:
    """One number per replication from a run: a pool metric, or beds needed, over some pools.

    For several pools, ``risk_rule`` and ``stp_rule`` are computed on their summed demand
    (beds needed if the pools were planned together); other metrics must be additive.
    """

    pools: tuple[str, ...]
    name: str = "risk_rule"

    def __post_init__(self) -> None:
        if isinstance(self.pools, str):
            object.__setattr__(self, "pools", (self.pools,))
        if not self.pools:
            raise ValueError("a metric needs at least one pool")
        if self.name not in POOL_METRICS:
            raise ValueError(f"unknown metric {self.name!r} (known: {', '.join(POOL_METRICS)})")
        if len(self.pools) > 1 and self.name not in ADDITIVE | {"risk_rule", "stp_rule"}:
            raise ValueError(f"metric {self.name!r} cannot be summed over pools")

    @property
    def label(self) -> str:
        return f"{self.name} ({' + '.join(self.pools)})"

    def values(self, results) -> np.ndarray:
        """The metric for each replication of ``results`` (a :class:`sim.results.Results`)."""
        missing = [p for p in self.pools if p not in results.pool_names]
        if missing:
            raise ValueError(f"unknown pools {missing} (scenario has {results.pool_names})")
        if len(self.pools) == 1:
            return np.asarray(results.metric(self.pools[0], self.name), dtype=float)
        if self.name == "risk_rule":
            idx = [results.pool_names.index(p) for p in self.pools]
            total = results.unconstrained_census[:, idx, :].sum(axis=1)
            return np.array([risk_rule(c, results.epsilon) for c in total], dtype=float)
        if self.name == "stp_rule":
            mean = sum(results.metric(p, "unconstrained_mean_occupancy") for p in self.pools)
            return np.array([stp_rule(m, results.target_occupancy) for m in mean], dtype=float)
        return np.asarray(sum(results.metric(p, self.name) for p in self.pools), dtype=float)


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Parameter:
    """An uncertain input with a range; with ``paths`` it sets those YAML paths of a scenario.

    ``relative=True``: values are factors applied to each path's base value (a number, or a LoS
    mapping, whose stays are then scaled). Otherwise values are set as they are. ``base`` is
    where the parameter sits while others vary one at a time (default: 1 for factors, else the
    base scenario's value at the first path, else the middle of the range).
    """

    name: str
    low: float
    high: float
    paths: tuple[str, ...] = ()
    relative: bool = False
    base: float | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high)) or not self.low < self.high:
            raise ValueError(f"parameter {self.name!r}: need finite low < high, got "
                             f"[{self.low}, {self.high}]")
        object.__setattr__(self, "paths", tuple(self.paths))


def problem(parameters: Sequence[Parameter]) -> dict[str, Any]:
    """The SALib problem dict for these parameters."""
    names = [p.name for p in parameters]
    if len(set(names)) != len(names):
        raise ValueError(f"parameter names must be unique: {names}")
    return {"num_vars": len(parameters), "names": names,
            "bounds": [[p.low, p.high] for p in parameters]}


_SEGMENT = re.compile(r"^([^\[\]]*)((?:\[[^\[\]]+\])*)$")
_INDEX = re.compile(r"\[([^\[\]]+)\]")


def _tokens(path: str) -> list[Any]:
    """Split ``a.b[0].c[*].d[name=x]`` into keys, indices, ``*`` and ``("name", x)`` selectors."""
    out: list[Any] = []
    for seg in path.split("."):
        m = _SEGMENT.match(seg)
        if not m or not (m.group(1) or m.group(2)):
            raise ScenarioError([Problem(path, "invalid YAML path")])
        if m.group(1):
            out.append(m.group(1))
        for inner in _INDEX.findall(m.group(2)):
            if inner == "*":
                out.append("*")
            elif re.fullmatch(r"-?\d+", inner):
                out.append(int(inner))
            elif re.fullmatch(r"name=[^=]+", inner):
                out.append(("name", inner[5:]))
            else:
                raise ScenarioError([Problem(path, f"invalid index [{inner}]: use a number, * "
                                                   "or name=NAME")])
    return out


def expand_path(doc: Any, path: str) -> list[str]:
    """Concrete YAML paths matching ``path``: ``*`` matches every key or list item, and
    ``[name=x]`` the list items whose ``name`` is x (e.g. ``interventions[name=step_up].scale``).
    """
    found: list[str] = []

    def key(prefix: str, k: Any) -> str:
        return f"{prefix}[{k}]" if isinstance(k, int) else (f"{prefix}.{k}" if prefix else str(k))

    def walk(node: Any, rest: list[Any], prefix: str) -> None:
        if not rest:
            found.append(prefix)
            return
        tok, tail = rest[0], rest[1:]
        if tok == "*":
            items = (node.items() if isinstance(node, dict)
                     else enumerate(node) if isinstance(node, list) else [])
            for k, child in items:
                walk(child, tail, key(prefix, k))
        elif isinstance(tok, tuple):
            for i, child in enumerate(node if isinstance(node, list) else []):
                if isinstance(child, dict) and child.get("name") == tok[1]:
                    walk(child, tail, key(prefix, i))
        elif isinstance(node, list) and isinstance(tok, int) and -len(node) <= tok < len(node):
            walk(node[tok], tail, key(prefix, tok % len(node)))
        elif isinstance(node, dict) and str(tok) in node:
            walk(node[str(tok)], tail, key(prefix, str(tok)))

    walk(doc, _tokens(path), "")
    if not found:
        raise ScenarioError([Problem(path, "path matches nothing in the scenario")])
    return found


def _get(doc: Any, path: str) -> Any:
    """The value at a concrete path (as returned by :func:`expand_path`)."""
    node = doc
    for tok in _tokens(path):
        node = node[tok] if isinstance(node, list) else node[str(tok)]
    return node


def scale_los(los: dict[str, Any], factor: float, path: str) -> dict[str, Any]:
    """A LoS mapping with every stay multiplied by ``factor`` (the shape is unchanged)."""
    out = copy.deepcopy(los)
    dist = out.get("dist")
    if dist == "mixture":
        out["components"] = [scale_los(c, factor, f"{path}.components[{i}]")
                             for i, c in enumerate(out.get("components") or [])]
    elif out.get("mean") is not None:
        out["mean"] = out["mean"] * factor
    elif out.get("mu") is not None:
        out["mu"] = out["mu"] + math.log(factor)
    elif out.get("scale") is not None:
        out["scale"] = out["scale"] * factor
    else:
        raise ScenarioError([Problem(path, f"cannot scale a {dist} length of stay", dist)])
    return out


def apply(doc: dict[str, Any], parameter: Parameter, value: float) -> None:
    """Set a parameter's value in a scenario dict, in place.

    Paths may contain ``*``; a wildcard skips the matches whose value is unset (null).
    """
    for path in parameter.paths:
        for concrete in expand_path(doc, path):
            old = _get(doc, concrete)
            if old is None and "*" in path:
                continue  # a wildcard sets the values that are given, not the unset ones
            if parameter.relative:
                if isinstance(old, dict) and "dist" in old:
                    new: Any = scale_los(old, value, concrete)
                elif isinstance(old, int | float) and not isinstance(old, bool):
                    new = old * value
                else:
                    raise ScenarioError([Problem(concrete, "a factor needs a number or a LoS here",
                                                 old)])
            else:
                new = value
            if isinstance(old, int) and not isinstance(old, bool) and isinstance(new, float):
                new = int(round(new))
            set_path(doc, concrete, new)


def base_point(parameters: Sequence[Parameter], doc: dict[str, Any] | None = None) -> np.ndarray:
    """Each parameter's base value (see :class:`Parameter`)."""
    out = []
    for p in parameters:
        if p.base is not None:
            out.append(p.base)
        elif p.relative:
            out.append(1.0)
        else:
            value = None
            if doc is not None and p.paths:
                value = _get(doc, expand_path(doc, p.paths[0])[0])
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            out.append(float(value) if ok else (p.low + p.high) / 2)
    return np.array(out, dtype=float)


# --------------------------------------------------------------------------- the simulator


def _run_point(scenario: Scenario, metric: Metric, replications: int, seed: int, engine: str,
               target_occupancy: float, epsilon: float) -> np.ndarray:
    """Run one sample point's replications (in this process) and measure the metric."""
    from sim.experiment import run

    results = run(scenario, replications=replications, seed=seed, engine=engine, jobs=1,
                  target_occupancy=target_occupancy, epsilon=epsilon)
    return metric.values(results)


class ScenarioModel:
    """The simulator as a model X -> Y: parameters set YAML paths, the output is a Metric.

    Every point uses the same seed, so differences between points are not blurred by different
    random patients (common random numbers). Points run in ``jobs`` worker processes.
    """

    def __init__(self, scenario: Scenario, parameters: Sequence[Parameter], metric: Metric,
                 replications: int = 5, seed: int = 1, engine: str = "numba", jobs: int = 1,
                 target_occupancy: float = 0.95, epsilon: float = 0.05):
        if replications < 1:
            raise ValueError("replications must be at least 1")
        self.scenario, self.parameters, self.metric = scenario, list(parameters), metric
        self.replications, self.seed, self.engine, self.jobs = replications, seed, engine, jobs
        self.target_occupancy, self.epsilon = target_occupancy, epsilon
        self.doc = scenario.to_dict()
        problem(self.parameters)
        for p in self.parameters:  # fail early, with the YAML path, on a bad parameter
            apply(copy.deepcopy(self.doc), p, p.low)
        missing = [p for p in metric.pools if p not in scenario.pools]
        if missing:
            raise ScenarioError([Problem(f"pools.{p}", "metric pool not in the scenario")
                                 for p in missing])

    def base(self) -> np.ndarray:
        return base_point(self.parameters, self.doc)

    def scenario_at(self, x: Sequence[float]) -> Scenario:
        """The base scenario with every parameter set to its value in ``x``."""
        doc = copy.deepcopy(self.doc)
        for p, value in zip(self.parameters, x, strict=True):
            apply(doc, p, float(value))
        try:
            return scenario_from_dict(doc, source=self.scenario.source_path)
        except ScenarioError as exc:  # say which sample point made the scenario invalid
            at = ", ".join(f"{p.name} = {v:g}" for p, v in zip(self.parameters, x, strict=True))
            raise ScenarioError([Problem(f"[at {at}] {q.path}", q.message, q.value)
                                 for q in exc.problems]) from None

    def replicate(self, X: np.ndarray) -> np.ndarray:
        """The metric per point and replication: an array [points, replications]."""
        X = np.atleast_2d(np.asarray(X, dtype=float))
        scenarios = [self.scenario_at(x) for x in X]
        args = (self.metric, self.replications, self.seed, self.engine, self.target_occupancy,
                self.epsilon)
        if self.jobs <= 1 or len(scenarios) == 1:
            rows = [_run_point(s, *args) for s in scenarios]
        else:
            with ProcessPoolExecutor(max_workers=self.jobs, mp_context=get_context("spawn")) as ex:
                rows = list(ex.map(_run_point, scenarios, *([a] * len(scenarios) for a in args),
                                   chunksize=max(1, len(scenarios) // (4 * self.jobs))))
        return np.vstack(rows)

    def __call__(self, X: np.ndarray) -> np.ndarray:
        return self.replicate(X).mean(axis=1)


# --------------------------------------------------------------------------- methods


def one_at_a_time(model: Model, parameters: Sequence[Parameter],
                  base: Sequence[float] | None = None) -> pd.DataFrame:
    """Each parameter at its low and high value with the others at base: a tornado table.

    With a :class:`ScenarioModel`, results carry 95% CIs and so do the paired differences from
    the base (same seed for every run).
    """
    params = list(parameters)
    if base is None:
        base = model.base() if hasattr(model, "base") else base_point(params)
    x0 = np.asarray(base, dtype=float)
    X = [x0]
    for i, p in enumerate(params):
        for value in (p.low, p.high):
            x = x0.copy()
            x[i] = value
            X.append(x)
    X = np.array(X)
    reps = model.replicate(X) if hasattr(model, "replicate") else np.asarray(model(X))[:, None]
    rows = []
    for i, p in enumerate(params):
        row: dict[str, Any] = {"parameter": p.name, "low": p.low, "high": p.high,
                               "base_input": x0[i]}
        for side, k in (("low", 1 + 2 * i), ("high", 2 + 2 * i)):
            mean, lo, hi = mean_ci(reps[k])
            d_mean, d_lo, d_hi = mean_ci(reps[k] - reps[0])
            row.update({f"result_{side}": mean, f"result_{side}_ci_low": lo,
                        f"result_{side}_ci_high": hi, f"change_{side}": d_mean,
                        f"change_{side}_ci_low": d_lo, f"change_{side}_ci_high": d_hi})
        rows.append(row)
    mean, lo, hi = mean_ci(reps[0])
    table = pd.DataFrame(rows)
    table.insert(3, "base", mean)
    table.insert(4, "base_ci_low", lo)
    table.insert(5, "base_ci_high", hi)
    table["swing"] = (table["result_high"] - table["result_low"]).abs()
    return table.sort_values("swing", ascending=False).reset_index(drop=True)


def sobol(model: Model, parameters: Sequence[Parameter], n: int = 64, seed: int = 1,
          second_order: bool = False, num_resamples: int = 1000, conf_level: float = 0.95
          ) -> pd.DataFrame:
    """Sobol first-order (S1) and total (ST) indices with bootstrap CIs (SALib, Saltelli scheme).

    ``n`` base samples (a power of 2) give n * (D + 2) model runs (n * (2D + 2) with second
    order). The ``*_conf`` columns are half-widths of the ``conf_level`` intervals.
    """
    from SALib.analyze import sobol as analyze
    from SALib.sample import sobol as sample

    prob = problem(parameters)
    X = sample.sample(prob, n, calc_second_order=second_order, seed=seed)
    Y = np.asarray(model(X), dtype=float)
    si = analyze.analyze(prob, Y, calc_second_order=second_order, num_resamples=num_resamples,
                         conf_level=conf_level, seed=seed)
    table = pd.DataFrame({"parameter": prob["names"], "S1": si["S1"], "S1_conf": si["S1_conf"],
                          "ST": si["ST"], "ST_conf": si["ST_conf"]})
    table.attrs.update(runs=len(Y), n=n, conf_level=conf_level, output_mean=float(Y.mean()),
                       output_sd=float(Y.std()))
    return table


def morris(model: Model, parameters: Sequence[Parameter], trajectories: int = 10,
           levels: int = 4, seed: int = 1, num_resamples: int = 1000, conf_level: float = 0.95
           ) -> pd.DataFrame:
    """Morris elementary-effects screening (SALib): mu*, sigma and a CI of mu* per parameter.

    Costs trajectories * (D + 1) model runs.
    """
    from SALib.analyze import morris as analyze
    from SALib.sample import morris as sample

    prob = problem(parameters)
    X = sample.sample(prob, trajectories, num_levels=levels, seed=seed)
    Y = np.asarray(model(X), dtype=float)
    si = analyze.analyze(prob, X, Y, num_resamples=num_resamples, conf_level=conf_level,
                         num_levels=levels, seed=seed)
    table = pd.DataFrame({"parameter": prob["names"], "mu": si["mu"], "mu_star": si["mu_star"],
                          "sigma": si["sigma"], "mu_star_conf": si["mu_star_conf"]})
    table.attrs.update(runs=len(Y), trajectories=trajectories, levels=levels)
    return table


def ishigami(X: np.ndarray, a: float = 7.0, b: float = 0.1) -> np.ndarray:
    """The Ishigami test function on [-pi, pi]^3, whose Sobol indices are known exactly."""
    X = np.atleast_2d(X)
    return np.sin(X[:, 0]) + a * np.sin(X[:, 1]) ** 2 + b * X[:, 2] ** 4 * np.sin(X[:, 0])


def ishigami_indices(a: float = 7.0, b: float = 0.1) -> pd.DataFrame:
    """Analytic first-order and total Sobol indices of :func:`ishigami`."""
    v1 = 0.5 * (1 + b * math.pi**4 / 5) ** 2
    v2 = a**2 / 8
    v13 = b**2 * math.pi**8 * (1 / 18 - 1 / 50)
    var = v1 + v2 + v13
    return pd.DataFrame({"parameter": ["x1", "x2", "x3"],
                         "S1": [v1 / var, v2 / var, 0.0],
                         "ST": [(v1 + v13) / var, v2 / var, v13 / var]})


# --------------------------------------------------------------------------- experiment files


class _ParamSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str = Field(min_length=1)
    paths: list[str] = Field(min_length=1, description="YAML paths set together; * matches all.")
    scale: tuple[float, float] | None = Field(default=None, description="low/high factors")
    range: tuple[float, float] | None = Field(default=None, description="low/high values")
    base: float | None = None

    @model_validator(mode="after")
    def _one_of(self) -> _ParamSpec:
        if (self.scale is None) == (self.range is None):
            raise ValueError("give exactly one of scale: [low, high] or range: [low, high]")
        low, high = self.scale or self.range  # type: ignore[misc]
        if not low < high:
            raise ValueError(f"low must be < high, got [{low}, {high}]")
        if self.scale is not None and low <= 0:
            raise ValueError(f"scale factors must be > 0, got {low}")
        return self

    def parameter(self) -> Parameter:
        low, high = self.scale or self.range  # type: ignore[misc]
        return Parameter(self.name, low, high, tuple(self.paths), self.scale is not None, self.base)


class _MetricSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pools: list[str] = Field(min_length=1)
    name: str = "risk_rule"

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in POOL_METRICS:
            raise ValueError(f"unknown metric (known: {', '.join(POOL_METRICS)})")
        return v


class _SobolSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n: int = Field(default=32, ge=2)

    @field_validator("n")
    @classmethod
    def _pow2(cls, v: int) -> int:
        if v & (v - 1):
            raise ValueError("must be a power of 2")
        return v


class _MorrisSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    trajectories: int = Field(default=10, ge=2)
    levels: int = Field(default=4, ge=2)


class _Methods(BaseModel):
    model_config = ConfigDict(extra="forbid")

    oat: dict[str, Any] | None = Field(default_factory=dict)
    sobol: _SobolSpec | None = None
    morris: _MorrisSpec | None = None


class SensitivitySpec(BaseModel):
    """A sensitivity experiment file: base scenario, output metric, parameters and methods."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    kind: str = "sensitivity"
    name: str = "sensitivity"
    scenario: str = Field(description="Base scenario YAML, relative to the experiment file.")
    overrides: dict[str, Any] = Field(default_factory=dict)
    metric: _MetricSpec
    replications: int = Field(default=5, ge=1)
    seed: int = 1
    engine: str = "numba"
    target_occupancy: float = Field(default=0.95, gt=0, le=1)
    epsilon: float = Field(default=0.05, gt=0, lt=1)
    parameters: list[_ParamSpec] = Field(min_length=1)
    methods: _Methods = Field(default_factory=_Methods)

    def parameter_list(self) -> list[Parameter]:
        return [p.parameter() for p in self.parameters]


def _loc(loc: Sequence[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_spec(path: str | Path) -> tuple[SensitivitySpec, ScenarioModel]:
    """Read a sensitivity experiment file; every problem is a ScenarioError with its YAML path."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScenarioError([Problem(str(path), "file not found")], path) from None
    except yaml.YAMLError as e:
        raise ScenarioError([Problem(str(path), f"YAML error: {e}")], path) from None
    try:
        spec = SensitivitySpec.model_validate(doc)
    except ValidationError as e:
        raise ScenarioError([Problem(_loc(err["loc"]), err["msg"].removeprefix("Value error, "),
                                     err.get("input")) for err in e.errors()], path) from None
    if spec.kind != "sensitivity":
        raise ScenarioError([Problem("kind", "must be 'sensitivity'", spec.kind)], path)
    scenario = load_scenario(path.parent / spec.scenario, spec.overrides)
    problems = [Problem(f"metric.pools[{i}]", "not a pool of the scenario", p)
                for i, p in enumerate(spec.metric.pools) if p not in scenario.pools]
    doc = scenario.to_dict()
    params = spec.parameter_list()
    for i, p in enumerate(params):
        try:
            apply(copy.deepcopy(doc), p, p.low)
        except ScenarioError as e:
            problems.extend(Problem(f"parameters[{i}].paths: {q.path}", q.message, q.value)
                            for q in e.problems)
    if problems:
        raise ScenarioError(problems, path)
    model = ScenarioModel(scenario, params, Metric(tuple(spec.metric.pools), spec.metric.name),
                          replications=spec.replications, seed=spec.seed, engine=spec.engine,
                          target_occupancy=spec.target_occupancy, epsilon=spec.epsilon)
    return spec, model


METHODS = ("oat", "sobol", "morris")


def run_spec(path: str | Path, out: str | Path | None = None, replications: int | None = None,
             jobs: int = 1, methods: str | None = None, progress: bool = False,
             sobol_n: int | None = None) -> dict[str, Any]:
    """Run a sensitivity experiment file; write CSV tables, PNG charts and a manifest to ``out``.

    ``replications`` and ``sobol_n`` override the file's replications per point and Sobol base
    sample size (a quick file, a converged run)."""
    import json
    import sys
    import time

    from sim import __version__, plots
    from sim.results import write_atomic

    spec, model = load_spec(path)
    if replications is not None:
        if replications < 1:
            raise ScenarioError([Problem("--replications", "must be at least 1", replications)])
        model.replications = replications
    model.jobs = max(1, jobs)
    if sobol_n is not None and (sobol_n < 2 or sobol_n & (sobol_n - 1)):
        raise ScenarioError([Problem("--sobol-n", "must be a power of two >= 2", sobol_n)])
    if methods is None:
        chosen = [m for m in METHODS if getattr(spec.methods, m) is not None]
    else:
        chosen = [m.strip() for m in methods.split(",") if m.strip()]
        bad = [m for m in chosen if m not in METHODS]
        if bad or not chosen:
            raise ScenarioError([Problem("--methods", f"choose from {', '.join(METHODS)}", methods)])
    params = spec.parameter_list()
    label = model.metric.label
    tables: dict[str, pd.DataFrame] = {}
    figures: dict[str, Any] = {}
    timings: dict[str, float] = {}
    for method in chosen:
        if progress:
            print(f"{spec.name}: {method} ...", file=sys.stderr)
        t0 = time.perf_counter()
        if method == "oat":
            tables["oat"] = one_at_a_time(model, params)
            figures["tornado"] = plots.tornado(tables["oat"], label, title=f"{spec.name}: tornado")
        elif method == "sobol":
            cfg = spec.methods.sobol or _SobolSpec()
            tables["sobol"] = sobol(model, params, n=sobol_n or cfg.n, seed=spec.seed)
            figures["sobol"] = plots.sobol_chart(tables["sobol"], f"{spec.name}: Sobol ({label})")
        else:
            mcfg = spec.methods.morris or _MorrisSpec()
            tables["morris"] = morris(model, params, trajectories=mcfg.trajectories,
                                      levels=mcfg.levels, seed=spec.seed)
            figures["morris"] = plots.morris_chart(tables["morris"],
                                                   f"{spec.name}: Morris ({label})")
        timings[f"{method}_seconds"] = time.perf_counter() - t0
    files: list[str] = []
    if out is not None:
        out = Path(out)
        for name, table in tables.items():
            write_atomic(out / f"{name}.csv", table.to_csv(index=False))
            files.append(f"{name}.csv")
        for name, fig in figures.items():
            plots.save(fig, out / f"{name}.png")
            files.append(f"{name}.png")
        manifest = {"experiment": spec.model_dump(mode="json"), "source": str(Path(path).resolve()),
                    "metric": label, "replications_per_point": model.replications,
                    "methods": chosen, "sobol_n": (sobol_n or (spec.methods.sobol or _SobolSpec()).n)
                    if "sobol" in chosen else None,
                    "bedflow_version": __version__, "timings": timings,
                    "runs": {k: int(v.attrs.get("runs", 2 * len(params) + 1))
                             for k, v in tables.items()}}
        write_atomic(out / "sensitivity.json", json.dumps(manifest, indent=2, default=str))
        files.append("sensitivity.json")
    else:
        import matplotlib.pyplot as plt

        for fig in figures.values():
            plt.close(fig)
    return {"tables": tables, "files": files, "timings": timings}
