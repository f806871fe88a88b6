"""Batch experiments: the experiment YAML schema, its variants, the resumable run store.

An experiment names a base scenario and what varies (a grid or a list of overrides by YAML path).
Each (variant, block of replications) is a task; its result is written atomically to the run
store as soon as it finishes, with a key that hashes the variant's resolved scenario, the seed,
the engine and the block. ``--resume`` reuses every stored block whose key still matches, so an
interrupted experiment (Ctrl-C, SIGKILL) ends with the same ``results.csv``, byte for byte.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sim.executors import Task, make_executor, split_blocks
from sim.metrics import POOL_METRICS, ReplicationMetrics
from sim.results import mean_ci, npz_bytes, write_atomic
from sim.scenario import Problem, Scenario, ScenarioError, load_scenario

_CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False)
_ID_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
#: Aliases accepted as closure limits: name -> (metric, scale applied to the metric).
METRIC_ALIASES = {"mean_wait_hours": ("mean_wait_days", 24.0)}


class Limit(BaseModel):
    """A risk limit on one metric of the pool: ``metric <= max`` (mean across replications)."""

    model_config = _CONFIG

    metric: str = Field(description="A per-pool metric (e.g. p_full_arrival) or mean_wait_hours.")
    max: float

    @model_validator(mode="after")
    def _known(self) -> Limit:
        if self.metric not in POOL_METRICS and self.metric not in METRIC_ALIASES:
            raise ValueError(f"unknown metric {self.metric!r}; use one of "
                             f"{', '.join(POOL_METRICS + tuple(METRIC_ALIASES))}")
        return self


class Closures(BaseModel):
    """Ward-closure search: the most wards of ``pool`` that can close within ``limit``."""

    model_config = _CONFIG

    pool: str
    limit: Limit
    ward_size: int | None = Field(default=None, gt=0, description="Default: the pool's ward_size.")
    max_wards: int | None = Field(default=None, ge=1, description="Default: all wards but one.")
    method: Literal["scan", "bisection"] = "scan"


class VariantSpec(BaseModel):
    """One variant of a ``vary.list``: a name and overrides by YAML path."""

    model_config = _CONFIG

    name: str | None = None
    overrides: dict[str, Any] = Field(default_factory=dict)


class Axis(BaseModel):
    """A named grid axis that sets several YAML paths to each of its values."""

    model_config = _CONFIG

    paths: list[str] = Field(min_length=1)
    values: list[Any] = Field(min_length=1)


class Vary(BaseModel):
    """What varies: ``grid`` (every combination of the listed values) or ``list`` of variants.

    A grid key is a YAML path with a list of values, or a label with ``{paths, values}``.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, populate_by_name=True)

    grid: dict[str, list[Any] | Axis] | None = None
    variants: list[VariantSpec] | None = Field(default=None, alias="list")

    @model_validator(mode="after")
    def _one(self) -> Vary:
        if (self.grid is None) == (self.variants is None):
            raise ValueError("give exactly one of 'grid' or 'list'")
        if self.grid is not None and not self.grid:
            raise ValueError("'grid' needs at least one YAML path with a list of values")
        return self


class Outputs(BaseModel):
    """Which tables to write besides results.csv and summary.csv."""

    model_config = _CONFIG

    census: bool = Field(default=True, description="Daily census per variant/replication as Parquet.")
    pools: list[str] | None = Field(default=None, description="Pools to report (default: all).")


class Experiment(BaseModel):
    """A batch experiment: a base scenario, what varies, replications and seed."""

    model_config = _CONFIG

    name: str = Field(min_length=1)
    description: str = ""
    kind: Literal["variants", "ward_closures"] = "variants"
    base: str = Field(description="Scenario YAML, relative to the experiment file.")
    overrides: dict[str, Any] = Field(
        default_factory=dict, description="Overrides by YAML path applied to every variant.")
    replications: int = Field(ge=2)
    seed: int = Field(default=1, ge=0)
    engine: Literal["numba", "simpy"] = "numba"
    block_size: int = Field(default=10, ge=1, description="Replications per task.")
    target_occupancy: float = Field(default=0.95, gt=0, le=1)
    epsilon: float = Field(default=0.05, gt=0, lt=1)
    vary: Vary | None = None
    closures: Closures | None = None
    outputs: Outputs = Field(default_factory=Outputs)

    @model_validator(mode="after")
    def _kind(self) -> Experiment:
        if self.kind == "variants" and self.vary is None:
            raise ValueError("an experiment of kind 'variants' needs 'vary'")
        if self.kind == "ward_closures" and self.closures is None:
            raise ValueError("an experiment of kind 'ward_closures' needs 'closures'")
        return self


@dataclass
class Variant:
    """One scenario of an experiment: its id, the values that define it, and its hash."""

    id: str
    overrides: dict[str, Any]
    scenario: Scenario
    sha256: str
    columns: dict[str, Any] = field(default_factory=dict)  # reported in results.csv


@dataclass
class LoadedExperiment:
    """A validated experiment with its base scenario resolved."""

    spec: Experiment
    path: Path
    base_path: Path
    base: Scenario

    def base_sha256(self) -> str:
        return digest(self.base.to_dict())

    def variant(self, vid: str, overrides: Mapping[str, Any], where: str = "",
                columns: Mapping[str, Any] | None = None) -> Variant:
        """Build a variant by applying the experiment's and then its own overrides to the base.

        A key may hold several paths separated by commas (all set to the value), and a list item
        may be picked by name: ``interventions[name=step_up].scale``.
        """
        try:
            resolved = expand_overrides(self.base, {**self.spec.overrides, **overrides})
            scenario = load_scenario(self.base_path, overrides=resolved) if overrides else self.base
        except ScenarioError as exc:
            raise ScenarioError([Problem(f"{where}: {p.path}" if where else p.path, p.message, p.value)
                                 for p in exc.problems], self.path) from None
        key = digest({"scenario": scenario.to_dict(), "seed": self.spec.seed,
                      "engine": self.spec.engine, "target_occupancy": self.spec.target_occupancy,
                      "epsilon": self.spec.epsilon})
        return Variant(vid, dict(overrides), scenario, key, dict(columns or overrides))


_NAMED_RE = re.compile(r"\[name=([^\]]+)\]")


def expand_overrides(base: Scenario, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Split comma-joined keys and turn ``[name=X]`` list selectors into indices of ``base``."""
    doc = base.model_dump(mode="json")
    out: dict[str, Any] = {}
    for key, value in overrides.items():
        for path in (p.strip() for p in str(key).split(",")):
            resolved = ""
            node: Any = doc
            for part in re.split(r"(\[name=[^\]]+\])", path):
                m = _NAMED_RE.fullmatch(part)
                if m is None:
                    resolved += part
                    try:
                        node = _walk(doc, resolved)
                    except (KeyError, IndexError, TypeError, ValueError):
                        node = None
                    continue
                names = [item.get("name") if isinstance(item, dict) else None
                         for item in (node if isinstance(node, list) else [])]
                if m.group(1) not in names:
                    raise ScenarioError([Problem(path, f"no item named {m.group(1)!r} in "
                                                 f"'{resolved}'")])
                resolved += f"[{names.index(m.group(1))}]"
                node = _walk(doc, resolved)
            out[resolved] = value
    return out


def _walk(doc: Any, dotted: str) -> Any:
    node = doc
    for tok in re.findall(r"[^.\[\]]+|\[\d+\]", dotted):
        node = node[int(tok[1:-1])] if tok.startswith("[") else node[tok]
    return node


def digest(doc: Any) -> str:
    """sha256 of a JSON document in canonical form (sorted keys, no spaces)."""
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _loc(parts: Sequence[Any]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def load_experiment(path: str | Path) -> LoadedExperiment:
    """Read and validate an experiment YAML; every problem is reported with its YAML path."""
    path = Path(path).expanduser().resolve()
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ScenarioError([Problem(str(path), f"cannot read: {exc.strerror}")], path) from None
    except yaml.YAMLError as exc:
        raise ScenarioError([Problem(str(path), f"not valid YAML: {exc}")], path) from None
    if not isinstance(doc, dict):
        raise ScenarioError([Problem("", "an experiment must be a mapping of keys to values", doc)], path)
    if doc.get("kind") == "sensitivity":
        raise ScenarioError([Problem("kind", "a sensitivity analysis: run it with "
                                     "`bedflow sensitivity`", "sensitivity")], path)
    try:
        spec = Experiment.model_validate(doc)
    except ValidationError as exc:
        problems = []
        for e in exc.errors():
            loc = [p for p in e["loc"] if not (isinstance(p, str) and p.startswith(("function-", "literal")))]
            msg = e["msg"].removeprefix("Value error, ")
            problems.append(Problem(_loc(loc), msg, e.get("input")) if loc
                            else Problem("", msg))
        raise ScenarioError(problems, path) from None
    base_path = (path.parent / spec.base).resolve()
    if not base_path.is_file():
        raise ScenarioError([Problem("base", "scenario file not found", spec.base)], path)
    try:
        base = load_scenario(base_path)
        if spec.overrides:
            base = load_scenario(base_path, overrides=expand_overrides(base, spec.overrides))
    except ScenarioError as exc:
        raise ScenarioError([Problem(f"base ({spec.base}): {p.path}", p.message, p.value)
                             for p in exc.problems], path) from None
    loaded = LoadedExperiment(spec, path, base_path, base)
    problems: list[Problem] = []
    for pool in spec.outputs.pools or []:
        if pool not in base.pools:
            problems.append(Problem("outputs.pools", "unknown pool", pool))
    if problems:
        raise ScenarioError(problems, path)
    return loaded


def variants(exp: LoadedExperiment) -> list[Variant]:
    """Every variant of a ``kind: variants`` experiment, each validated (all problems at once)."""
    vary = exp.spec.vary
    assert vary is not None
    plans: list[tuple[str, dict[str, Any], dict[str, Any], str]] = []
    if vary.grid is not None:
        labels = list(vary.grid)
        axes = {k: (a.paths, a.values) if isinstance(a, Axis) else ([k], a)
                for k, a in vary.grid.items()}
        for k in labels:
            if not axes[k][1]:
                raise ScenarioError([Problem(f"vary.grid.{k}", "needs at least one value")], exp.path)
        for i, values in enumerate(itertools.product(*(axes[k][1] for k in labels))):
            cols = dict(zip(labels, values, strict=True))
            ov = {path: value for k, value in cols.items() for path in axes[k][0]}
            plans.append((f"v{i:03d}", ov, cols,
                          "vary.grid (" + ", ".join(f"{k}={v}" for k, v in cols.items()) + ")"))
    else:
        for i, spec in enumerate(vary.variants or []):
            plans.append((spec.name or f"v{i:03d}", spec.overrides, spec.overrides,
                          f"vary.list[{i}]"))
    out: list[Variant] = []
    problems: list[Problem] = []
    seen: set[str] = set()
    for vid, ov, cols, where in plans:
        if not _ID_RE.match(vid):
            problems.append(Problem(f"{where}.name", "use letters, digits, '_', '-' or '.'", vid))
            continue
        if vid in seen:
            problems.append(Problem(f"{where}.name", "duplicate variant name", vid))
            continue
        seen.add(vid)
        try:
            out.append(exp.variant(vid, ov, where, columns=cols))
        except ScenarioError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ScenarioError(problems, exp.path)
    return out


# --------------------------------------------------------------------------- run store


class RunStoreError(Exception):
    """The run folder cannot be used as asked (e.g. it exists and --resume was not given)."""


def _checksum(arrays: Mapping[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        h.update(name.encode())
        h.update(np.ascontiguousarray(arrays[name]).tobytes())
    return h.hexdigest()


def _pack(metrics: list[ReplicationMetrics], key: str) -> bytes:
    arrays = {
        "replications": np.array([m.replication for m in metrics], np.int64),
        "pool": np.stack([m.pool for m in metrics]),
        "cohort_admissions": np.stack([m.cohort_admissions for m in metrics]),
        "census": np.stack([m.census for m in metrics]),
        "unconstrained_census": np.stack([m.unconstrained_census for m in metrics]),
    }
    meta = json.dumps({"key": key, "sha256": _checksum(arrays)}).encode()
    return npz_bytes({"meta": np.frombuffer(meta, np.uint8), **arrays})


def _unpack(path: Path, key: str) -> list[ReplicationMetrics] | None:
    """The metrics stored in a block file, or None if it is not a complete block for ``key``."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(z["meta"].tobytes().decode())
            arrays = {n: z[n] for n in ("cohort_admissions", "census", "pool", "replications",
                                        "unconstrained_census")}
    except Exception:  # truncated, corrupt or foreign file: never trusted
        return None
    if meta.get("key") != key or _checksum(arrays) != meta.get("sha256"):
        return None
    return [ReplicationMetrics(int(r), arrays["pool"][i], arrays["cohort_admissions"][i],
                               arrays["census"][i], arrays["unconstrained_census"][i])
            for i, r in enumerate(arrays["replications"])]


class RunStore:
    """One folder per experiment: manifest.json, blocks/<variant>/<reps>.npz, tables, a log."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.blocks_dir = self.root / "blocks"

    def prepare(self, manifest: dict[str, Any], resume: bool) -> dict[str, Any] | None:
        """Create or reopen the folder; return the previous manifest (on resume) if any."""
        old = None
        mpath = self.root / "manifest.json"
        if self.root.exists() and any(self.root.iterdir()):
            if not resume:
                raise RunStoreError(f"{self.root} already holds a run: add --resume to continue "
                                    "it, or choose another --out")
            if mpath.exists():
                try:
                    old = json.loads(mpath.read_text())
                except (OSError, ValueError):
                    old = None
        self.root.mkdir(parents=True, exist_ok=True)
        for tmp in self.root.rglob(".*.tmp"):  # left by a killed write: never trusted
            tmp.unlink(missing_ok=True)
        write_atomic(mpath, json.dumps(manifest, indent=2, default=str))
        return old

    def block_path(self, variant: Variant, block: Sequence[int]) -> Path:
        return self.blocks_dir / variant.id / f"r{block[0]:05d}-{block[-1]:05d}.npz"

    @staticmethod
    def block_key(variant: Variant, block: Sequence[int]) -> str:
        return digest({"variant": variant.sha256, "replications": list(block)})

    def load_block(self, variant: Variant, block: Sequence[int]) -> list[ReplicationMetrics] | None:
        path = self.block_path(variant, block)
        if not path.exists():
            return None
        got = _unpack(path, self.block_key(variant, block))
        if got is None or [m.replication for m in got] != list(block):
            return None
        return got

    def save_block(self, variant: Variant, block: Sequence[int],
                   metrics: list[ReplicationMetrics]) -> None:
        write_atomic(self.block_path(variant, block), _pack(metrics, self.block_key(variant, block)))


# --------------------------------------------------------------------------- runner

ProgressFn = Callable[[int, int], None]  # (replications done, replications total)


class ExperimentRunner:
    """Runs the missing blocks of chosen variants on an executor, storing each as it finishes."""

    def __init__(self, exp: LoadedExperiment, store: RunStore, *, jobs: int | None = None,
                 scheduler: str | None = None, progress: ProgressFn | None = None,
                 log: logging.Logger | None = None):
        self.exp, self.store = exp, store
        self.jobs, self.scheduler = jobs, scheduler
        self.progress = progress
        self.log = log or logging.getLogger("bedflow.experiment")
        self.done = 0
        self.total = 0
        self._executor = None
        self._cache: dict[str, list[ReplicationMetrics]] = {}

    def __enter__(self) -> ExperimentRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._executor is not None:
            self._executor.close()
            self._executor = None

    def _get_executor(self):
        if self._executor is None:
            self._executor = make_executor(self.jobs, self.scheduler)
            self.log.info("executor: %s", self._executor.describe())
        return self._executor

    def blocks(self) -> list[tuple[int, ...]]:
        return split_blocks(self.exp.spec.replications, self.exp.spec.block_size)

    def ensure(self, chosen: Sequence[Variant]) -> None:
        """Make sure every block of the chosen variants is stored (running only what is missing)."""
        spec = self.exp.spec
        todo: list[Task] = []
        found: dict[str, list[ReplicationMetrics]] = {}
        self.total += spec.replications * len(chosen)
        reused = 0
        for v in chosen:
            found[v.id] = []
            for block in self.blocks():
                got = self.store.load_block(v, block)
                if got is None and self.store.block_path(v, block).exists():
                    self.log.warning("ignoring stored %s/%s: corrupt, or made for another seed, "
                                     "engine or scenario", v.id, self.store.block_path(v, block).name)
                if got is None:
                    todo.append(Task((v.id, block), v.scenario, spec.seed, block, spec.engine,
                                     spec.target_occupancy, spec.epsilon))
                else:
                    found[v.id].extend(got)
                    reused += len(got)
        self.done += reused
        if reused:
            self.log.info("reusing %d stored replications; running %d blocks", reused, len(todo))
        self._tick()
        by_id = {v.id: v for v in chosen}
        if todo:
            t0 = time.perf_counter()
            for (vid, block), metrics in self._get_executor().run(todo):
                self.store.save_block(by_id[vid], block, metrics)
                found[vid].extend(metrics)
                self.done += len(metrics)
                self.log.info("stored %s replications %d-%d", vid, block[0], block[-1])
                self._tick()
            self.log.info("ran %d blocks in %.1f s", len(todo), time.perf_counter() - t0)
        for v in chosen:
            self._cache[v.id] = sorted(found[v.id], key=lambda m: m.replication)

    def _tick(self) -> None:
        if self.progress:
            self.progress(self.done, self.total)

    def metrics(self, variant: Variant) -> list[ReplicationMetrics]:
        """The stored metrics of a variant, in replication order (call ensure first)."""
        return self._cache[variant.id]

    def pool_values(self, variant: Variant) -> np.ndarray:
        return np.stack([m.pool for m in self.metrics(variant)])


def _cell(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value, sort_keys=True)


def results_frames(runner: ExperimentRunner, chosen: Sequence[Variant]
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """results.csv (long: variant, columns, replication, pool, metric, value) and summary.csv."""
    exp = runner.exp
    pools = exp.spec.outputs.pools or list(exp.base.pools)
    cols: list[str] = []
    for v in chosen:
        cols.extend(c for c in v.columns if c not in cols)
    long_parts, summary_rows = [], []
    metrics = np.array(POOL_METRICS, dtype=object)
    for v in chosen:
        names = list(v.scenario.pools)
        idx = [names.index(p) for p in pools]
        values = runner.pool_values(v)[:, idx, :]  # [reps, pools, metrics]
        reps = np.array([m.replication for m in runner.metrics(v)])
        n_r, n_p, n_m = values.shape
        part = {"variant": np.full(n_r * n_p * n_m, v.id, dtype=object)}
        for c in cols:
            part[c] = np.full(n_r * n_p * n_m, _cell(v.columns.get(c)), dtype=object)
        part["replication"] = np.repeat(reps, n_p * n_m)
        part["pool"] = np.tile(np.repeat(np.array(pools, dtype=object), n_m), n_r)
        part["metric"] = np.tile(metrics, n_r * n_p)
        part["value"] = values.ravel()
        long_parts.append(pd.DataFrame(part))
        for k, pool in enumerate(pools):
            for j, name in enumerate(POOL_METRICS):
                mean, lo, hi = mean_ci(values[:, k, j])
                summary_rows.append({"variant": v.id, **{c: _cell(v.columns.get(c)) for c in cols},
                                     "pool": pool, "metric": name, "replications": n_r,
                                     "mean": mean, "ci_low": lo, "ci_high": hi})
    return pd.concat(long_parts, ignore_index=True), pd.DataFrame(summary_rows)


def census_table(runner: ExperimentRunner, chosen: Sequence[Variant]) -> bytes:
    """Daily midnight census (constrained and unconstrained) of every variant as Parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    exp = runner.exp
    pools = exp.spec.outputs.pools or list(exp.base.pools)
    tables = []
    for v in chosen:
        names = list(v.scenario.pools)
        idx = [names.index(p) for p in pools]
        ms = runner.metrics(v)
        census = np.stack([m.census for m in ms])[:, idx, :]
        uc = np.stack([m.unconstrained_census for m in ms])[:, idx, :]
        n_r, n_p, n_d = census.shape
        first = int(np.ceil(v.scenario.warmup_days))
        tables.append(pa.table({
            "variant": pa.array(np.full(n_r * n_p * n_d, v.id, dtype=object)).dictionary_encode(),
            "replication": np.repeat([m.replication for m in ms], n_p * n_d).astype(np.int32),
            "pool": pa.array(np.tile(np.repeat(np.array(pools, dtype=object), n_d), n_r)).dictionary_encode(),
            "day": np.tile(np.arange(first, first + n_d, dtype=np.int32), n_r * n_p),
            "census": census.ravel(),
            "unconstrained_census": uc.ravel(),
        }))
    buf = io.BytesIO()
    pq.write_table(pa.concat_tables(tables), buf, compression="zstd")
    return buf.getvalue()


def manifest(exp: LoadedExperiment, chosen: Sequence[Variant], extra: Mapping[str, Any] | None = None
             ) -> dict[str, Any]:
    """The run store's manifest: what was asked and the hashes that make stored blocks valid."""
    from sim import __version__

    spec = exp.spec
    return {
        "experiment": spec.model_dump(mode="json", by_alias=True),
        "experiment_file": str(exp.path),
        "base_file": str(exp.base_path),
        "base_sha256": exp.base_sha256(),
        "seed": spec.seed, "replications": spec.replications, "block_size": spec.block_size,
        "engine": spec.engine,
        "variants": [{"id": v.id, "overrides": v.overrides, "sha256": v.sha256} for v in chosen],
        "bedflow_version": __version__,
        **(extra or {}),
    }


def open_log(root: Path) -> logging.Logger:
    """A logger that appends to experiment.log in the run folder (and nowhere else)."""
    root.mkdir(parents=True, exist_ok=True)
    log = logging.getLogger(f"bedflow.experiment.{root.resolve()}")
    log.setLevel(logging.INFO)
    log.propagate = False
    for h in list(log.handlers):
        log.removeHandler(h)
        h.close()
    handler = logging.FileHandler(root / "experiment.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    return log


def close_log(log: logging.Logger) -> None:
    for h in list(log.handlers):
        log.removeHandler(h)
        h.close()


def write_tables(runner: ExperimentRunner, chosen: Sequence[Variant]) -> list[str]:
    """Write results.csv, summary.csv and (if asked) census.parquet; return the file names."""
    root = runner.store.root
    long, summary = results_frames(runner, chosen)
    write_atomic(root / "results.csv", long.to_csv(index=False, lineterminator="\n"))
    write_atomic(root / "summary.csv", summary.to_csv(index=False, lineterminator="\n"))
    written = ["results.csv", "summary.csv"]
    if runner.exp.spec.outputs.census:
        write_atomic(root / "census.parquet", census_table(runner, chosen))
        written.append("census.parquet")
    return written


def run_experiment(exp: LoadedExperiment, out: str | Path, *, resume: bool = False,
                   jobs: int | None = None, scheduler: str | None = None,
                   progress: ProgressFn | None = None) -> dict[str, Any]:
    """Run (or resume) an experiment into the run folder ``out``; return a short report.

    Every finished block is stored at once, so an interruption loses only running blocks.
    """
    from sim import closures

    root = Path(out)
    if exp.spec.kind == "ward_closures":
        chosen = closures.closure_variants(exp)
    else:
        chosen = variants(exp)
    store = RunStore(root)
    doc = manifest(exp, chosen, {"status": "running"})
    store.prepare(doc, resume)  # raises before the log is opened if the folder is taken
    log = open_log(root)
    log.info("%s experiment %s: %d variants x %d replications (seed %d)%s",
             "resuming" if resume else "starting", exp.spec.name, len(chosen),
             exp.spec.replications, exp.spec.seed, "" if not scheduler else f", scheduler {scheduler}")
    t0 = time.perf_counter()
    report: dict[str, Any] = {"experiment": exp.spec.name, "out": str(root),
                              "variants": len(chosen), "replications": exp.spec.replications}
    try:
        with ExperimentRunner(exp, store, jobs=jobs, scheduler=scheduler, progress=progress,
                              log=log) as runner:
            if exp.spec.kind == "ward_closures":
                search = closures.search(runner, chosen)
                evaluated = search.evaluated
                closures.write_outputs(store.root, search)
                report["closures"] = search.to_json()
            else:
                runner.ensure(chosen)
                evaluated = chosen
            report["files"] = write_tables(runner, evaluated)
            report["reused_or_run"] = runner.done
    except KeyboardInterrupt:
        log.warning("interrupted: finished blocks are stored; rerun with --resume to continue")
        close_log(log)
        raise
    except BaseException:
        log.exception("failed")
        close_log(log)
        raise
    seconds = time.perf_counter() - t0
    doc["status"] = "complete"
    doc["evaluated_variants"] = [v.id for v in evaluated]
    write_atomic(root / "manifest.json", json.dumps(doc, indent=2, default=str))
    log.info("complete in %.1f s: %s", seconds, ", ".join(report["files"]))
    close_log(log)
    report["seconds"] = seconds
    return report


class StderrProgress:
    """A progress bar on stderr: replications done / total, rate, ETA (rich)."""

    def __init__(self, label: str, enabled: bool = True):
        self.enabled = enabled
        self.label = label
        self.bar = None
        self.task = None
        self.start = time.perf_counter()
        self.first_done: int | None = None

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
                                TextColumn("ETA"), TimeRemainingColumn(),
                                console=Console(stderr=True), transient=False)
            self.bar.start()
            self.task = self.bar.add_task(self.label, total=total, completed=done, rate="")
            self.first_done = done
            self.start = time.perf_counter()
            return
        elapsed = time.perf_counter() - self.start
        ran = done - (self.first_done or 0)
        rate = f"{ran / elapsed:.1f} rep/s" if elapsed > 0 and ran > 0 else ""
        self.bar.update(self.task, total=total, completed=done, rate=rate)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
