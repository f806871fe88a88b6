"""Start a run from today's census instead of an empty hospital.

A pool's current patients are given as a count (with a cohort mix) or as a CSV of inpatients with
their admission dates. Their remaining stays are drawn from the LoS distribution conditioned on the
time already spent (residual life), not uniformly: for a count, the time already spent is itself
drawn from the steady state, where a patient in a bed is length-biased (long stays are more likely
to be found in a bed), so a census start needs no warm-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from sim.los import LosDistribution
from sim.streams import stream

INITIAL_KEY = 0xCE45  # stream key of census-start draws
_GRID = 4096


def equilibrium_residual(dist: LosDistribution, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Remaining stay of a patient found in a bed in steady state, from two uniforms.

    The stay of such a patient is length-biased (CDF 1 - bed_day_share(x)); the time already
    spent is a uniform fraction v of it, and the rest is the residual.
    """
    q = np.linspace(0.0, 1.0, _GRID + 1)[1:-1]
    x = np.sort(np.concatenate([[0.0], dist.ppf(q), dist.ppf(np.array([1 - 1e-9, 1 - 1e-12]))]))
    g = 1.0 - np.asarray(dist.bed_day_share(x), dtype=float)
    g = np.maximum.accumulate(np.clip(g, 0.0, 1.0))
    stay = np.interp(u, g, x)
    return (1.0 - v) * stay


def conditional_residual(dist: LosDistribution, elapsed: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Remaining stay given the time already spent: F^-1(F(a) + u (1 - F(a))) - a, at least 0."""
    elapsed = np.asarray(elapsed, dtype=float)
    f = np.asarray(dist.cdf(elapsed), dtype=float)
    target = np.minimum(f + u * (1.0 - f), np.nextafter(1.0, 0.0))
    return np.maximum(np.asarray(dist.ppf(target), dtype=float) - elapsed, 0.0)


@dataclass(frozen=True)
class InitialPatients:
    """Current inpatients of one pool: cohort, stage (global index) and elapsed days each.

    ``elapsed`` is NaN where only a count was given (drawn from the steady state instead).
    """

    pool: int
    cohort: np.ndarray  # int32 cohort index
    stage: np.ndarray  # int32 local stage index within the cohort
    elapsed: np.ndarray  # float64 days in bed at day 0, or NaN
    key: int  # stream key for this group's draws


def stage_for_pool(cohort, pool: int) -> int | None:
    """The first stage of a cohort's pathway that can use the pool (None if none)."""
    for j, st in enumerate(cohort.stages):
        if pool in st.pool_index:
            return j
    return None


def expected_bed_days(cohort, pool: int) -> float:
    """A cohort's expected yearly bed days in a pool (routing reach x pool share x mean LoS)."""
    reach = np.zeros(len(cohort.stages))
    reach[0] = 1.0
    for _ in range(len(cohort.stages)):  # acyclic: relaxation settles within n passes
        new = np.zeros_like(reach)
        new[0] = 1.0
        for j, st in enumerate(cohort.stages):
            probs = np.diff(np.concatenate([[0.0], st.next_cum]))
            for tgt, p in zip(st.next_target, probs, strict=True):
                if tgt >= 0:
                    new[tgt] += reach[j] * p
        reach = new
    total = 0.0
    for j, st in enumerate(cohort.stages):
        probs = np.diff(np.concatenate([[0.0], st.pool_cum]))
        share = float(probs[st.pool_index == pool].sum())
        total += cohort.per_year * reach[j] * share * st.los.mean()
    return total


def _read_inpatients(path: Path, start, cohorts, pool: int, where: str):
    import pandas as pd  # only for inpatient files: keeps pandas off `import sim`

    from sim.scenario import Problem, ScenarioError

    try:
        df = pd.read_csv(path, dtype=str, encoding="utf-8")
    except (OSError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise ScenarioError([Problem(f"{where}.file", f"cannot read inpatient list: {exc}", str(path))]) from None
    missing = [c for c in ("cohort", "admitted") if c not in df.columns]
    if missing:
        raise ScenarioError([Problem(f"{where}.file", f"missing column(s) {', '.join(missing)}", str(path))])
    names = {c.name: c for c in cohorts}
    admitted = pd.to_datetime(df["admitted"], errors="coerce", format="ISO8601")
    problems = []
    for i, (name, when) in enumerate(zip(df["cohort"], admitted, strict=True)):
        if name not in names:
            problems.append(Problem(f"{where}.file", f"row {i + 2}: unknown cohort", name))
        elif stage_for_pool(names[name], pool) is None:
            problems.append(Problem(f"{where}.file", f"row {i + 2}: cohort {name} never uses this pool", name))
        if pd.isna(when):
            problems.append(Problem(f"{where}.file", f"row {i + 2}: admitted is not a date", df["admitted"][i]))
        elif when > pd.Timestamp(datetime.combine(start, datetime.min.time())):
            problems.append(Problem(f"{where}.file", f"row {i + 2}: admitted after the scenario start",
                                    df["admitted"][i]))
        if len(problems) >= 10:
            break
    if problems:
        raise ScenarioError(problems)
    elapsed = (pd.Timestamp(start) - admitted).dt.total_seconds().to_numpy() / 86400.0
    cohort = np.array([names[n].index for n in df["cohort"]], dtype=np.int32)
    stage = np.array([stage_for_pool(names[n], pool) for n in df["cohort"]], dtype=np.int32)
    return cohort, stage, elapsed


def compile_initial(scenario, pool_names, cohorts) -> tuple[InitialPatients, ...]:
    """Turn the scenario's ``initial_census`` entries into per-pool groups of patients."""
    from sim.network import stable_hash

    groups = []
    for i, entry in enumerate(getattr(scenario, "initial_census", []) or []):
        pool = pool_names.index(entry.pool)
        key = stable_hash(f"initial:{i}:{entry.pool}")
        if entry.file is not None:
            cohort, stage, elapsed = _read_inpatients(scenario.resolve_path(entry.file), scenario.start,
                                                      cohorts, pool, f"initial_census[{i}]")
        else:
            if entry.mix:
                names = list(entry.mix)
                weights = np.array([entry.mix[n] for n in names], dtype=float)
                chosen = [next(c for c in cohorts if c.name == n) for n in names]
            else:
                chosen = [c for c in cohorts if stage_for_pool(c, pool) is not None]
                weights = np.array([expected_bed_days(c, pool) for c in chosen])
            counts = _apportion(entry.count, weights / weights.sum())
            cohort = np.repeat([c.index for c in chosen], counts).astype(np.int32)
            stage = np.repeat([stage_for_pool(c, pool) for c in chosen], counts).astype(np.int32)
            elapsed = np.full(entry.count, np.nan)
        groups.append(InitialPatients(pool, cohort, stage, elapsed, key))
    return tuple(groups)


def _apportion(total: int, shares: np.ndarray) -> np.ndarray:
    """Whole counts summing to ``total`` in the given shares (largest remainders)."""
    raw = total * shares
    counts = np.floor(raw).astype(int)
    for k in np.argsort(-(raw - counts), kind="stable")[: total - counts.sum()]:
        counts[k] += 1
    return counts


def initial_patients(network, seed: int, replication: int):
    """Census-start patients as (cohort index, CohortPatients) parts for demand.merge, at time 0.

    Each patient's first visit is in its census pool with the residual stay; later stages of its
    pathway follow the ordinary routing. Candidates are negative (never an arrival's identity) and
    marks are NaN, so interventions on new admissions never pick them.
    """
    from sim.demand import CohortPatients

    parts = []
    identity = 0  # initial patients are numbered -1, -2, ... across all groups
    for g in network.initial:
        n = g.cohort.size
        if n == 0:
            continue
        rng = stream(seed, replication, g.key, "los")
        u, v = rng.random(n), rng.random(n)
        routing = stream(seed, replication, g.key, "routing").random((n, 64))
        later = stream(seed, replication, g.key, "marks").random((n, 32))
        for ci in np.unique(g.cohort):
            sel = np.flatnonzero(g.cohort == ci)
            c = network.cohorts[ci]
            pools, stays, stages, counts, exits = [], [], [], [], []
            for p in sel:
                j = int(g.stage[p])
                dist = c.stages[j].los
                if np.isnan(g.elapsed[p]):
                    first = float(equilibrium_residual(dist, u[p:p + 1], v[p:p + 1])[0])
                else:
                    first = float(conditional_residual(dist, g.elapsed[p:p + 1], u[p:p + 1])[0])
                visit_pool, visit_los, visit_stage = [g.pool], [first], [c.stage_offset + j]
                step, code = 0, -1
                while True:
                    st = c.stages[j]
                    k = int(np.searchsorted(st.next_cum, routing[p, 2 * step + 1], side="right"))
                    nxt = int(st.next_target[min(k, len(st.next_target) - 1)])
                    if nxt < 0:
                        code = nxt
                        break
                    j, step = nxt, step + 1
                    st = c.stages[j]
                    k = int(np.searchsorted(st.pool_cum, routing[p, 2 * step], side="right"))
                    visit_pool.append(int(st.pool_index[min(k, len(st.pool_index) - 1)]))
                    visit_los.append(float(st.los.ppf(np.array([later[p, step]]))[0]))
                    visit_stage.append(c.stage_offset + j)
                pools += visit_pool
                stays += visit_los
                stages += visit_stage
                counts.append(len(visit_pool))
                exits.append(code)
            candidate = -np.arange(identity + 1, identity + sel.size + 1, dtype=np.int64)
            identity += sel.size
            parts.append((int(ci), CohortPatients(
                arrival=np.zeros(sel.size), candidate=candidate,
                mark=None, exit=np.array(exits, np.int8),
                counts=np.array(counts, np.int64), visit_pool=np.array(pools, np.int32),
                visit_los=np.array(stays), visit_stage=np.array(stages, np.int32))))
    return parts
