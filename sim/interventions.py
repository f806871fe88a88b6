"""Interventions: dated, scalable transformations of the patient table and of pool capacities.

One mechanism for every lever. ``avoid`` removes admissions, ``divert`` replaces a patient's
pathway by a step-up pathway, ``shorten`` cuts a stage's stay and sends the rest to a step-down
service, ``capacity`` opens or closes beds or wards at a date (compiled into the network's
capacity changes). Patient-level interventions select by the patient's uniform ``mark``: on each
cohort they take disjoint lanes of [0, 1) in list order, each lane's width fixed (``lane``,
default twice the full-size fraction), so scaling one intervention never changes who another
picks (common random numbers). New draws (step-up routing and stays, step-down stays) come
from streams keyed by the intervention and cohort names, indexed by the patient's candidate.
Engines are untouched: they replay the transformed table.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numba import njit

from sim.grouping import group_by
from sim.scenario import EXITS as EXIT_NAMES
from sim.scenario import Intervention, Problem, Scenario, Stage

if TYPE_CHECKING:
    from sim.demand import PatientTable
    from sim.los import LosDistribution
    from sim.network import Network, StageNet

__all__ = [
    "CompiledIntervention",
    "Resolved",
    "apply",
    "check_interventions",
    "compile_interventions",
    "cohort_year_volume",
    "resolve",
    "selected",
    "stay_marks",
]

LANE_TOL = 1e-9


# --------------------------------------------------------------------------- resolution


@dataclass
class Resolved:
    """An intervention's sizes in the terms the table transformation uses."""

    spec: Intervention
    fraction: float = 0.0  # full-size share of the eligible admissions of each targeted cohort
    lane: float = 0.0  # width of its slice of [0, 1)
    lane_start: dict[str, float] = field(default_factory=dict)  # per targeted cohort
    max_los: float = math.inf  # avoid/divert eligibility: targeted stay <= max_los
    min_los: float = 0.0  # shorten eligibility: targeted stay >= min_los
    eligible_per_year: float = 0.0  # expected eligible admissions a year (all targeted cohorts)
    selected_per_year: float = 0.0  # full-size picks a year (shorten: some are avoided first)
    delivery: str = "independent"  # or "monthly": each month's number of picks is fixed
    capacity_delta: int = 0  # capacity: beds added (negative: closed)


def _day(scenario: Scenario, d: dt.date) -> float:
    return float((d - scenario.start).days)


def cohort_year_volume(scenario: Scenario, cohort: str) -> float:
    """Expected admissions of a cohort in the last 365 days of the results window (or pro rata)."""
    from sim.network import _day_factors, _normalised

    arr = scenario.cohorts[cohort].arrivals
    horizon = scenario.horizon_days
    lo = max(scenario.warmup_days, horizon - 365.0)
    n_cal = int(np.ceil(horizon)) + 1
    day = _day_factors(scenario.start, n_cal, _normalised(arr.seasonal, 12), _normalised(arr.weekday, 7))
    t = np.arange(math.floor(lo), math.ceil(horizon)) + 0.5
    w = np.clip(np.minimum(t + 0.5, horizon) - np.maximum(t - 0.5, lo), 0.0, 1.0)
    base = arr.base_date or scenario.start
    g = (1.0 + arr.growth) ** ((t + (scenario.start - base).days) / 365.25)
    per_day = arr.per_year / 365.0 * day[t.astype(int)] * g
    return float((per_day * w).sum() * 365.0 / (horizon - lo))


def _stage_index(scenario: Scenario, cohort: str, stage: str | None) -> int | None:
    names = [s.stage for s in scenario.cohorts[cohort].pathway]
    if stage is None:
        return 0
    return names.index(stage) if stage in names else None


def _reach(pathway: list[Stage], j: int) -> float:
    """Probability that a patient of this pathway reaches stage j (the pathway is acyclic)."""
    names = {s.stage: i for i, s in enumerate(pathway)}
    reach = np.zeros(len(pathway))
    for _ in range(len(pathway)):
        new = np.zeros(len(pathway))
        new[0] = 1.0
        for i, st in enumerate(pathway):
            for k, p in (st.next or {}).items():
                if k in names:
                    new[names[k]] += reach[i] * p
        reach = new
    return float(reach[j])


def _los(scenario: Scenario, cohort: str, j: int) -> LosDistribution:
    from sim import los as los_mod

    base_dir = scenario.source_path.parent if scenario.source_path else None
    return los_mod.from_spec(scenario.cohorts[cohort].pathway[j].los, base_dir)


def _partial_below(d: LosDistribution, m: float) -> tuple[float, float]:
    """(P(L <= m), E[L; L <= m])."""
    if math.isinf(m):
        return 1.0, d.mean()
    return float(d.cdf(m)), d.mean() * (1.0 - float(d.bed_day_share(m)))


def _max_los_for_mean(parts: list[tuple[float, LosDistribution]], target: float) -> float | None:
    """Threshold m such that the pooled mean of stays <= m equals target (None if impossible)."""

    def mean_below(m: float) -> float:
        num = den = 0.0
        for w, d in parts:
            p, e = _partial_below(d, m)
            num += w * e
            den += w * p
        return num / den if den > 0 else 0.0

    if mean_below(math.inf) <= target:
        return None
    lo, hi = 1e-6, 1.0
    while mean_below(hi) < target:
        hi *= 2.0
        if hi > 1e6:
            return None
    while mean_below(lo) > target:
        lo /= 10.0
        if lo < 1e-12:
            return None
    from scipy import optimize  # late import: only scenarios with interventions resolve them

    return float(optimize.brentq(lambda m: mean_below(m) - target, lo, hi, xtol=1e-10, rtol=1e-12))


def resolve(scenario: Scenario, problems: list[Problem] | None = None) -> list[Resolved]:
    """Fractions, lanes and eligibility thresholds of every intervention; problems appended."""
    out: list[Problem] = [] if problems is None else problems
    resolved: list[Resolved] = []
    end = scenario.start + dt.timedelta(days=scenario.horizon_days)
    seen: dict[str, int] = {}
    used: dict[tuple[str, str], list[tuple[int | None, float, float, float]]] = {}
    for i, iv in enumerate(scenario.interventions):
        base = f"interventions[{i}]"
        r = Resolved(spec=iv)
        resolved.append(r)
        if iv.name in seen:
            out.append(Problem(f"{base}.name", f"duplicate name (also interventions[{seen[iv.name]}])",
                               iv.name))
        seen.setdefault(iv.name, i)
        for what, d in [("start", iv.start)] + [(f"phasing[{k}].date", p.date)
                                                for k, p in enumerate(iv.phasing or [])]:
            if not scenario.start <= d <= end:
                out.append(Problem(f"{base}.{what}", f"must be within the horizon "
                                   f"{scenario.start.isoformat()} .. {end.isoformat()}", d))
        dates = [iv.start] + [p.date for p in iv.phasing or []]
        if any(b < a for a, b in zip(dates, dates[1:], strict=False)):
            out.append(Problem(f"{base}.phasing", "dates must be on or after start and increasing"))
        if iv.type == "capacity":
            _resolve_capacity(scenario, iv, r, base, out, i)
            continue
        _check_refs(scenario, iv, base, out)
        cohorts = [c for c in iv.cohorts or [] if c in scenario.cohorts]
        stages = {c: _stage_index(scenario, c, iv.stage) for c in cohorts}
        if any(j is None for j in stages.values()):
            continue
        if not cohorts:
            continue
        parts = []
        for c in cohorts:
            j = stages[c]
            assert j is not None
            parts.append((cohort_year_volume(scenario, c) * _reach(scenario.cohorts[c].pathway, j),
                          _los(scenario, c, j)))
        if iv.mean_los is not None:
            m = _max_los_for_mean(parts, iv.mean_los)
            if m is None:
                mean_all = sum(w * d.mean() for w, d in parts) / sum(w for w, _ in parts)
                out.append(Problem(f"{base}.mean_los", "must be below the mean of the targeted "
                                   f"stays ({mean_all:.4g} days)", iv.mean_los))
                continue
            r.max_los = m
        if iv.type == "shorten":
            r.min_los = max(iv.min_los or 0.0, iv.days_saved or 0.0)
        eligible = sum(w * _partial_below(d, r.max_los)[0] * (float(d.sf(r.min_los)) if r.min_los
                                                                 else 1.0) for w, d in parts)
        eligible_all = eligible
        if iv.type == "shorten":
            # Admission levers (own uniform, independent of the stay mark) take some of these
            # stays first; per_year counts the stays actually shortened.
            for (w, d), c in zip(parts, cohorts, strict=True):
                for a in resolved[:-1]:
                    if a.spec.type in ("avoid", "divert") and c in a.lane_start:
                        j_a = _stage_index(scenario, c, a.spec.stage)
                        if j_a == stages[c]:
                            band = float(d.cdf(a.max_los)) - float(d.cdf(r.min_los)) \
                                if a.max_los > r.min_los else 0.0
                            # full size (scale 1): scaling a lever never moves another's picks
                            eligible -= w * min(a.fraction, a.lane) * band
        r.eligible_per_year = eligible
        if iv.fraction is not None:
            r.fraction = iv.fraction
        else:
            assert iv.per_year is not None
            r.fraction = iv.per_year / eligible if eligible > 0 else math.inf
            if r.fraction > 1:
                out.append(Problem(f"{base}.per_year", "more than the targeted cohorts' expected "
                                   f"eligible admissions ({eligible:.0f} a year)", iv.per_year))
                continue
        r.selected_per_year = r.fraction * eligible_all
        r.delivery = iv.delivery_mode
        r.lane = iv.lane if iv.lane is not None else 2.0 * r.fraction
        if r.fraction * iv.scale > r.lane + LANE_TOL:
            out.append(Problem(f"{base}.scale", f"fraction x scale ({r.fraction * iv.scale:.4g}) "
                               f"exceeds the lane width ({r.lane:.4g}): widen lane", iv.scale))
        lo, hi = r.min_los, r.max_los
        space = "stay" if iv.type == "shorten" else "admission"
        for c0 in cohorts:
            c = (c0, space)
            # Lanes only need to be disjoint from earlier lanes whose stay band overlaps: a
            # patient's stay lies in one band, so disjoint bands never select the same patient.
            j = stages[c0]
            ends = [e for (b_j, b_lo, b_hi, e) in used.get(c, [])
                    if b_j != j or (b_lo <= hi and lo <= b_hi)]
            r.lane_start[c0] = max(ends, default=0.0)
            end_c = r.lane_start[c0] + r.lane
            used.setdefault(c, []).append((j, lo, hi, end_c))
            if end_c > 1.0 + LANE_TOL:
                out.append(Problem(f"{base}.lane", f"{space} lanes of cohort '{c0}' exceed 1 "
                                   f"({end_c:.4g}); set smaller lane widths", r.lane))
    return resolved


def _check_pool_ref(scenario: Scenario, pool: Any, path: str, out: list[Problem]) -> None:
    names = [pool] if isinstance(pool, str) else list(pool or {})
    for p in names:
        if p not in scenario.pools:
            out.append(Problem(path if isinstance(pool, str) else f"{path}.{p}", "unknown pool", p))
    if isinstance(pool, dict) and abs(math.fsum(pool.values()) - 1.0) > 1e-6:
        out.append(Problem(path, "probabilities must sum to 1", math.fsum(pool.values())))


def _check_refs(scenario: Scenario, iv: Intervention, base: str, out: list[Problem]) -> None:
    for k, c in enumerate(iv.cohorts or []):
        if c not in scenario.cohorts:
            known = ", ".join(scenario.cohorts)
            out.append(Problem(f"{base}.cohorts[{k}]", f"unknown cohort (known: {known})", c))
        elif _stage_index(scenario, c, iv.stage) is None:
            out.append(Problem(f"{base}.stage", f"cohort '{c}' has no such stage", iv.stage))
    for j, st in enumerate(iv.pathway or []):
        _check_pool_ref(scenario, st.pool, f"{base}.pathway[{j}].pool", out)
        names = {s.stage for s in iv.pathway or []}
        for k in st.next or {}:
            if k not in names and k not in EXIT_NAMES:
                out.append(Problem(f"{base}.pathway[{j}].next.{k}", "unknown stage or exit", k))
        later = {s.stage for s in (iv.pathway or [])[j + 1:]}
        if any(k in names and k not in later for k in st.next or {}):
            out.append(Problem(f"{base}.pathway[{j}].next", "a step-up pathway may only lead to "
                               "later stages"))
    if iv.step_down is not None:
        _check_pool_ref(scenario, iv.step_down.pool, f"{base}.step_down.pool", out)


def _resolve_capacity(scenario: Scenario, iv: Intervention, r: Resolved, base: str,
                      out: list[Problem], index: int) -> None:
    pool = scenario.pools.get(iv.pool or "")
    if pool is None:
        out.append(Problem(f"{base}.pool", "unknown pool", iv.pool))
        return
    if iv.wards is not None:
        if pool.ward_size is None:
            out.append(Problem(f"{base}.wards", f"pool '{iv.pool}' has no ward_size", iv.wards))
            return
        delta = iv.wards * pool.ward_size
    else:
        delta = iv.beds or 0
    r.capacity_delta = int(round(delta * iv.scale))
    caps = _capacity_at(scenario, iv.pool or "", iv.start, upto=index)
    if caps is None:
        out.append(Problem(f"{base}.pool", "pool has unlimited capacity at that date", iv.pool))
    elif caps + r.capacity_delta < 0:
        out.append(Problem(f"{base}.beds" if iv.beds is not None else f"{base}.wards",
                           f"would leave {caps + r.capacity_delta} beds", delta))


def _capacity_at(scenario: Scenario, pool: str, d: dt.date, upto: int) -> int | None:
    """Capacity of a pool at date d after its own changes and capacity interventions before upto."""
    return _capacity_changes(scenario, pool, upto, d)[1]


def _capacity_changes(scenario: Scenario, pool: str, upto: int,
                      at: dt.date | None = None) -> tuple[list[tuple[dt.date, int | None]], int | None]:
    """The pool's dated capacities with capacity interventions [0, upto) folded in."""
    p = scenario.pools[pool]
    events: list[tuple[dt.date, int, int | None, bool]] = [
        (c.date, 0, c.capacity, False) for c in p.capacity_changes]
    for k, iv in enumerate(scenario.interventions[:upto]):
        if iv.type == "capacity" and iv.pool == pool:
            delta = iv.wards * (p.ward_size or 0) if iv.wards is not None else (iv.beds or 0)
            events.append((iv.start, 1 + k, int(round(delta * iv.scale)), True))
    events.sort(key=lambda e: (e[0], e[1]))
    cap: int | None = p.capacity
    out: list[tuple[dt.date, int | None]] = []
    current_at: int | None = cap
    for d, _, v, relative in events:
        if at is not None and d > at:
            break
        if relative:
            cap = None if cap is None else cap + int(v or 0)
        else:
            cap = v
        out.append((d, cap))
        current_at = cap
    return out, (current_at if at is not None else cap)


def check_interventions(scenario: Scenario) -> list[Problem]:
    """Reference, date, lane and size checks of a scenario's interventions (for load_scenario)."""
    problems: list[Problem] = []
    resolve(scenario, problems)
    return problems


# --------------------------------------------------------------------------- compilation


@dataclass(frozen=True)
class CompiledIntervention:
    """An intervention as arrays: per targeted cohort its lane, stage and stream key."""

    name: str
    kind: str
    cohorts: np.ndarray  # int32 cohort indices
    cohort_names: tuple[str, ...]
    stage: np.ndarray  # int32 global stage index targeted, per cohort
    lane_start: np.ndarray  # float64 per cohort
    keys: tuple[int, ...]  # stream key per cohort
    fraction: float
    lane: float
    scale: float
    level_t: np.ndarray  # float64 days
    level_v: np.ndarray  # float64 levels in [0, 1]
    start_day: float
    max_los: float
    min_los: float
    days_saved: float
    keep_fraction: float
    stages: tuple[StageNet, ...] = ()  # divert: step-up stages (local next indices)
    stage_offset: int = 0  # global index of the first intervention stage
    step_down: StageNet | None = None  # shorten: the step-down stage (los None = days cut)
    delivery: str = "independent"  # "monthly": period_k picks in each period
    period_t: np.ndarray = field(default_factory=lambda: np.zeros(0))  # boundaries, days
    period_k: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # picks each

    def level(self, t: np.ndarray) -> np.ndarray:
        """Share of full size at times t (days since day 0)."""
        v = np.interp(t, self.level_t, self.level_v)
        return np.where(t < self.start_day, 0.0, v)

    def share(self, t: np.ndarray) -> np.ndarray:
        """Selected share of eligible patients arriving at t (never wider than the lane)."""
        return np.minimum(self.fraction * self.scale * self.level(t), self.lane)


def _stage_net(st: Any, local: dict[str, int], pool_index: dict[str, int], base_dir: Any,
               name: str) -> StageNet:
    from sim import los as los_mod
    from sim.network import EXITS, StageNet

    choices = {st.pool: 1.0} if isinstance(st.pool, str) else dict(st.pool)
    pidx = np.array([pool_index[p] for p in choices], dtype=np.int32)
    pcum = np.cumsum(np.array(list(choices.values()), dtype=float))
    pcum /= pcum[-1]
    nxt = getattr(st, "next", None) or {"home": 1.0}
    tgt = np.array([local[k] if k in local else EXITS[k] for k in nxt], dtype=np.int32)
    ncum = np.cumsum(np.array(list(nxt.values()), dtype=float))
    ncum /= ncum[-1]
    los = los_mod.from_spec(st.los, base_dir) if st.los is not None else None
    return StageNet(name=name, pool_index=pidx, pool_cum=pcum, los=los,  # type: ignore[arg-type]
                    next_target=tgt, next_cum=ncum)


def compile_interventions(scenario: Scenario, network: Network) -> Network:
    """The network with interventions compiled: patient-level ones listed, capacity ones as
    dated capacity changes (cc_*)."""
    import dataclasses

    from sim.network import UNLIMITED, stable_hash

    if not scenario.interventions:
        return network
    problems: list[Problem] = []
    resolved = resolve(scenario, problems)
    if problems:
        from sim.scenario import ScenarioError

        raise ScenarioError(problems, scenario.source_path)
    pool_index = {p: i for i, p in enumerate(network.pool_names)}
    cohort_index = {c.name: c.index for c in network.cohorts}
    base_dir = scenario.source_path.parent if scenario.source_path else None
    stage_names = list(network.stage_names)
    compiled = []
    for r in resolved:
        iv = r.spec
        if iv.type == "capacity":
            continue
        names = tuple(iv.cohorts or [])
        cidx = np.array([cohort_index[c] for c in names], dtype=np.int32)
        stage = np.array([network.cohorts[cohort_index[c]].stage_offset
                          + (_stage_index(scenario, c, iv.stage) or 0) for c in names], np.int32)
        s0 = _day(scenario, iv.start)
        if iv.phasing:
            pts = [(s0, 0.0)] if iv.phasing[0].date > iv.start else []
            pts += [(_day(scenario, p.date), p.level) for p in iv.phasing]
        elif iv.ramp_days > 0:
            pts = [(s0, 0.0), (s0 + iv.ramp_days, 1.0)]
        else:
            pts = [(s0, 1.0)]
        offset = len(stage_names)
        stages: tuple[StageNet, ...] = ()
        step_down = None
        if iv.type == "divert":
            local = {st.stage: j for j, st in enumerate(iv.pathway or [])}
            stages = tuple(_stage_net(st, local, pool_index, base_dir, st.stage)
                           for st in iv.pathway or [])
            stage_names += [f"{iv.name}.{st.stage}" for st in iv.pathway or []]
        elif iv.type == "shorten":
            assert iv.step_down is not None
            step_down = _stage_net(iv.step_down, {}, pool_index, base_dir, iv.step_down.stage)
            stage_names.append(f"{iv.name}.{iv.step_down.stage}")
        period_t, period_k = _monthly_counts(scenario, r, pts) if r.delivery == "monthly" else \
            (np.zeros(0), np.zeros(0, np.int64))
        compiled.append(CompiledIntervention(
            name=iv.name, kind=iv.type, cohorts=cidx, cohort_names=names, stage=stage,
            lane_start=np.array([r.lane_start[c] for c in names]),
            keys=tuple(stable_hash(f"{iv.name}:{c}") for c in names),
            fraction=r.fraction, lane=r.lane, scale=iv.scale,
            level_t=np.array([p[0] for p in pts]), level_v=np.array([p[1] for p in pts]),
            start_day=s0, max_los=r.max_los, min_los=r.min_los,
            days_saved=iv.days_saved or 0.0, keep_fraction=iv.keep_fraction or 0.0,
            stages=stages, stage_offset=offset, step_down=step_down, delivery=r.delivery,
            period_t=period_t, period_k=period_k))
    # Capacity: rebuild the dated changes of every pool a capacity intervention touches.
    touched = {iv.pool for iv in scenario.interventions if iv.type == "capacity"}
    cc = [(t, p, c) for t, p, c in zip(network.cc_time.tolist(), network.cc_pool.tolist(),
                                       network.cc_capacity.tolist(), strict=True)
          if network.pool_names[p] not in touched]
    for name in touched:
        assert name is not None
        changes, _ = _capacity_changes(scenario, name, len(scenario.interventions))
        for d, cap in changes:
            cc.append((_day(scenario, d), pool_index[name], UNLIMITED if cap is None else cap))
    cc.sort(key=lambda x: (x[0], x[1]))
    return dataclasses.replace(
        network, interventions=tuple(compiled), stage_names=tuple(stage_names),
        cc_time=np.array([c[0] for c in cc], dtype=np.float64),
        cc_pool=np.array([c[1] for c in cc], dtype=np.int32),
        cc_capacity=np.array([c[2] for c in cc], dtype=np.int64))


def _level_integral(pts: list[tuple[float, float]], t: float) -> float:
    """Integral over [0, t] of the level: 0 before the first point, piecewise linear between
    points, flat after the last."""
    xs = np.array([p[0] for p in pts])
    vs = np.array([p[1] for p in pts])
    if t <= xs[0]:
        return 0.0
    grid = np.concatenate((xs[xs < t], [t]))
    v = np.interp(grid, xs, vs)
    return float(np.sum((v[1:] + v[:-1]) * np.diff(grid)) / 2.0)


def _monthly_counts(scenario: Scenario, r: Resolved,
                    pts: list[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """Period boundaries (start, each 1st of the month after it, horizon) in days, and the
    picks of each period: the size x level integrated over the period, rounded with carry so
    the running total never drifts from the planned one by more than half an episode."""
    def next_month(d: dt.date) -> dt.date:
        return dt.date(d.year + d.month // 12, d.month % 12 + 1, 1)

    s0, horizon = pts[0][0], scenario.horizon_days
    bounds = [s0]
    d = next_month(scenario.start + dt.timedelta(days=math.floor(s0)))
    while _day(scenario, d) < horizon:
        bounds.append(_day(scenario, d))
        d = next_month(d)
    bounds.append(horizon)
    per_day = r.selected_per_year * r.spec.scale / 365.0
    total = np.array([per_day * _level_integral(pts, b) for b in bounds])
    carried = np.floor(total + 0.5).astype(np.int64)
    return np.array(bounds, dtype=np.float64), np.diff(carried)


# --------------------------------------------------------------------------- application


@njit(cache=True)
def _clear_visits(keep_visit, visit_start, patients):
    """``keep_visit[isin(visit_patient, patients)] = False`` through the CSR visit ranges."""
    for p in patients:
        for v in range(visit_start[p], visit_start[p + 1]):
            keep_visit[v] = False


@njit(cache=True)
def _rebuild_visits(keep_patient, keep_visit, visit_start, visit_pool, visit_los, visit_stage,
                    add_p, add_o, add_pool, add_los, add_stage):
    """The visits of the kept patients, renumbered, in CSR layout: the kept visits of the
    table (order key ``2 * position``) and the added ones (``add_*``: patient, order key,
    pool, stay, stage), each patient's sorted by order key, ties in that order (kept visits,
    then added in turn), as ``np.lexsort((key, patient))`` of their concatenation: a stable
    counting sort by patient, then an insertion sort within each patient's few visits."""
    n = keep_patient.shape[0]
    new_index = np.empty(n, np.int64)
    n_new = 0
    for p in range(n):
        new_index[p] = n_new
        n_new += keep_patient[p]
    n_add = add_p.shape[0]
    counts = np.zeros(n_new, np.int64)
    for p in range(n):
        if keep_patient[p]:
            for v in range(visit_start[p], visit_start[p + 1]):
                counts[new_index[p]] += keep_visit[v]
    for i in range(n_add):
        if keep_patient[add_p[i]]:
            counts[new_index[add_p[i]]] += 1
    start = np.zeros(n_new + 1, np.int64)
    for p in range(n_new):
        start[p + 1] = start[p] + counts[p]
    total = start[n_new]
    src = np.empty(total, np.int64)  # visit v, or m + i for added visit i
    key = np.empty(total, np.int64)
    nxt = start[:-1].copy()
    m = visit_pool.shape[0]
    for p in range(n):
        if keep_patient[p]:
            q = new_index[p]
            for v in range(visit_start[p], visit_start[p + 1]):
                if keep_visit[v]:
                    src[nxt[q]] = v
                    key[nxt[q]] = 2 * (v - visit_start[p])
                    nxt[q] += 1
    for i in range(n_add):
        p = add_p[i]
        if keep_patient[p]:
            q = new_index[p]
            src[nxt[q]] = m + i
            key[nxt[q]] = add_o[i]
            nxt[q] += 1
    for q in range(n_new):  # stable insertion sort of each patient's (few) visits by key
        lo = start[q]
        for j in range(lo + 1, start[q + 1]):
            kj, sj = key[j], src[j]
            r = j - 1
            while r >= lo and key[r] > kj:
                key[r + 1] = key[r]
                src[r + 1] = src[r]
                r -= 1
            key[r + 1] = kj
            src[r + 1] = sj
    pool = np.empty(total, np.int32)
    los = np.empty(total)
    stage = np.empty(total, np.int32)
    for j in range(total):
        v = src[j]
        if v < m:
            pool[j], los[j], stage[j] = visit_pool[v], visit_los[v], visit_stage[v]
        else:
            pool[j], los[j], stage[j] = add_pool[v - m], add_los[v - m], add_stage[v - m]
    return start, pool, los, stage


@njit(cache=True)
def _lane_picks(who, marks, lane_start, level, full_share, lane, los, shorten, min_los,
                days_saved, use_days_saved, max_los):
    """Patients ``who[i]`` a lever picks, and their lane positions: ``u = marks[i] - lane_start``
    in ``[0, min(full_share * level, lane))`` and a stay at the stage that is eligible (shorten:
    ``>= min_los`` and ``> days_saved`` if given; else ``<= max_los``). The same comparisons as
    the numpy masks (``u < min(a, b)`` as ``u < a and u < b``, false for NaN). An empty
    ``level`` is 1 for every patient (full_share x 1.0 is full_share exactly)."""
    n = who.shape[0]
    out = np.empty(n, np.int64)
    out_u = np.empty(n)
    k = 0
    flat = level.shape[0] == 0
    for i in range(n):
        p = who[i]
        u = marks[i] - lane_start
        x = los[i]
        share = full_share if flat else full_share * level[i]
        ok = (u >= 0.0) & (u < share) & (u < lane) & (x == x)
        if shorten:
            ok = ok & (x >= min_los)
            if use_days_saved:
                ok = ok & (x > days_saved)
        else:
            ok = ok & (x <= max_los)
        out[k] = p
        out_u[k] = u
        k += ok
    return out[:k], out_u[:k]


@njit(cache=True)
def _cohort_stays(who, hit, visit_patient, visit_los):
    """Per patient ``who[i]`` (increasing): the stay of its visit among ``hit`` (increasing)
    and that visit, NaN and -1 if none (a later visit of a patient wins, as a numpy scatter).
    Both lists are walked in step: no random reads of per-patient arrays."""
    n = who.shape[0]
    los = np.full(n, np.nan)
    where = np.full(n, -1, np.int64)
    j = 0
    for h in hit:
        p = visit_patient[h]
        while j < n and who[j] < p:
            j += 1
        if j < n and who[j] == p:
            los[j] = visit_los[h]
            where[j] = h
    return los, where


class _TableIndex:
    """Patients grouped by cohort and visits by stage, built once per table for the levers
    (every lookup gives the same indices as a full-table mask and ``flatnonzero``)."""

    def __init__(self, network: Network, table: PatientTable) -> None:
        self.table = table
        self.vp = table.visit_patient()
        n_cohorts = len(network.cohorts)
        cohort = table.cohort
        self.cohort_ok = bool(cohort.size == 0 or (cohort.min() >= 0 and cohort.max() < n_cohorts))
        if self.cohort_ok:
            self.by_cohort, self.cohort_start, self.rank = group_by(cohort, n_cohorts)
        stage = table.visit_stage
        self.n_stages = int(stage.max()) + 1 if stage.size else 0
        self.stage_ok = bool(stage.size == 0 or stage.min() >= 0)
        if self.stage_ok:
            self.by_stage, self.stage_start, _ = group_by(stage, self.n_stages)
        self._levels: dict[tuple, np.ndarray] = {}
        self._marks: dict[tuple[str, int], np.ndarray] = {}
        self._stage: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def patients(self, c: int) -> np.ndarray:
        """``flatnonzero(table.cohort == c)``."""
        if not self.cohort_ok or not 0 <= c < len(self.cohort_start) - 1:
            return np.flatnonzero(self.table.cohort == c)
        return self.by_cohort[self.cohort_start[c]:self.cohort_start[c + 1]]

    def positions(self, c: int, p: np.ndarray) -> np.ndarray:
        """Positions in ``patients(c)`` of patients p of cohort c."""
        if not self.cohort_ok or not 0 <= c < len(self.cohort_start) - 1:
            return np.searchsorted(self.patients(c), p)
        return self.rank[p]

    def hits(self, stage: int) -> np.ndarray:
        """``flatnonzero(table.visit_stage == stage)``."""
        if not self.stage_ok:
            return np.flatnonzero(self.table.visit_stage == stage)
        if not 0 <= stage < self.n_stages:
            return np.zeros(0, np.int64)
        return self.by_stage[self.stage_start[stage]:self.stage_start[stage + 1]]

    def stage_los(self, stage: int, c: int) -> tuple[np.ndarray, np.ndarray]:
        """Per patient of cohort ``c`` (as ``patients(c)``): the stay of its visit at a global
        stage (NaN if none) and that visit's index (-1 if none)."""
        key = (stage, c)
        if key not in self._stage:
            self._stage[key] = _cohort_stays(self.patients(c), self.hits(stage), self.vp,
                                             self.table.visit_los)
        return self._stage[key]

    def marks(self, name: str, mark: np.ndarray, c: int) -> np.ndarray:
        """``mark[patients(c)]``, gathered once per cohort for every lever (``name`` keys it)."""
        key = (name, c)
        if key not in self._marks:
            self._marks[key] = mark[self.patients(c)]
        return self._marks[key]

    def level(self, ci: CompiledIntervention, c: int) -> np.ndarray:
        """``ci.level(arrival)`` of ``patients(c)`` (shared by levers with the same phasing)."""
        key = (c, ci.start_day, ci.level_t.tobytes(), ci.level_v.tobytes())
        if key not in self._levels:
            self._levels[key] = ci.level(self.table.arrival[self.patients(c)])
        return self._levels[key]


def stay_marks(network: Network, table: PatientTable, seed: int, replication: int,
               index: _TableIndex | None = None) -> np.ndarray:
    """Per patient: the uniform that stay levers (shorten) select by, independent of ``mark``.

    Drawn per candidate from a stream keyed by the cohort (common across scenarios).
    """
    from sim.network import stable_hash

    index = _TableIndex(network, table) if index is None else index
    out = np.empty(table.n_patients)
    for c in network.cohorts:
        idx = index.patients(c.index)
        if idx.size:
            out[idx] = _uniforms(seed, replication, stable_hash(c.name + "/stay"), "marks",
                                 table.candidate[idx], 1)[:, 0]
    return out


def selected(network: Network, table: PatientTable, seed: int, replication: int,
             index: _TableIndex | None = None) -> dict[str, np.ndarray]:
    """Per patient-level intervention: indices of the patients it selects in this table.

    Admission levers (avoid, divert) take disjoint lanes of ``mark``; stay levers (shorten)
    take disjoint lanes of the independent stay mark. A patient picked by both is avoided or
    diverted (see :func:`apply`); the selected sets themselves never depend on other levers.
    Each lever is evaluated on its cohorts' patients only (the same elementwise arithmetic as
    on the whole table, so the same picks).
    """
    out: dict[str, np.ndarray] = {}
    ivs = getattr(network, "interventions", ())
    if not ivs:
        return out
    index = _TableIndex(network, table) if index is None else index
    stay = (stay_marks(network, table, seed, replication, index)
            if any(ci.kind == "shorten" for ci in ivs) else None)
    for ci in ivs:
        mark, mark_name = (stay, "stay") if ci.kind == "shorten" else (table.mark, "mark")
        assert mark is not None
        monthly = ci.delivery == "monthly"
        picks, lane_u = [], []
        for k, c in enumerate(ci.cohorts):
            who = index.patients(int(c))
            los, _ = index.stage_los(int(ci.stage[k]), int(c))
            # monthly: every eligible patient in the lane is a candidate; the counts pick
            level = np.empty(0) if monthly else index.level(ci, int(c))  # empty: all 1
            share = float(ci.lane) if monthly else ci.fraction * ci.scale
            p, u = _lane_picks(who, index.marks(mark_name, mark, int(c)),
                               float(ci.lane_start[k]), level, share, float(ci.lane), los,
                               ci.kind == "shorten", float(ci.min_los), float(ci.days_saved),
                               bool(ci.days_saved), float(ci.max_los))
            picks.append(p)
            lane_u.append(u)
        if not picks:
            out[ci.name] = np.zeros(0, np.int64)
        elif monthly:
            out[ci.name] = _take_monthly(ci, table.arrival, np.concatenate(picks),
                                         np.concatenate(lane_u))
        else:
            out[ci.name] = np.sort(np.concatenate(picks))
    return out


def _take_monthly(ci: CompiledIntervention, arrival: np.ndarray, cand: np.ndarray,
                  u: np.ndarray) -> np.ndarray:
    """The first ``period_k[m]`` candidates of each period m by lane position (then patient
    index): raising the count only adds patients, and a month whose lane holds fewer eligible
    patients delivers all of them."""
    period = np.searchsorted(ci.period_t, arrival[cand], side="right") - 1
    ok = (period >= 0) & (period < len(ci.period_k))
    return _first_in_lane(period[ok], ci.period_k, cand[ok], u[ok])


@njit(cache=True)
def _first_in_lane(period, period_k, cand, u):
    """Per period m, the ``period_k[m]`` candidates of least (u, cand), all patients sorted:
    the ranks of ``np.lexsort((cand, u, period))`` within each period, without sorting each
    period, only finding its k-th least u (ties at it go by patient index)."""
    order, start, _ = group_by(period, period_k.shape[0])
    lane_u = u[order]  # candidates grouped by period
    lane_c = cand[order]
    out = np.empty(period.shape[0], cand.dtype)
    n_out = 0
    for m in range(period_k.shape[0]):
        lo, hi = start[m], start[m + 1]
        k = period_k[m]
        if k >= hi - lo:
            out[n_out:n_out + hi - lo] = lane_c[lo:hi]
            n_out += hi - lo
            continue
        if k <= 0:
            continue
        kth = np.partition(lane_u[lo:hi], k - 1)[k - 1]
        ties = np.empty(hi - lo, cand.dtype)
        n_tie = 0
        for j in range(lo, hi):
            if lane_u[j] < kth:
                out[n_out] = lane_c[j]
                n_out += 1
                k -= 1
            elif lane_u[j] == kth:
                ties[n_tie] = lane_c[j]
                n_tie += 1
        out[n_out:n_out + k] = np.sort(ties[:n_tie])[:k]  # k <= n_tie: kth is the k-th least
        n_out += k
    return np.sort(out[:n_out])


def _uniforms(seed: int, rep: int, key: int, purpose: str, cand: np.ndarray, width: int) -> np.ndarray:
    """Per-candidate uniforms (rows indexed by candidate) from an intervention's stream: row c
    of ``random((n, width))``, drawn without the rows of candidates not asked for."""
    from sim.pcg64 import stream_rows
    from sim.streams import stream

    return stream_rows(stream(seed, rep, key, purpose), cand, width)


def _pick(cum: np.ndarray, u: np.ndarray) -> np.ndarray:
    return np.minimum(np.searchsorted(cum, u, side="right"), len(cum) - 1)


def _walk(ci: CompiledIntervention, routing: np.ndarray, los_u: np.ndarray):
    """Step-up pathway walk for n patients: (pools, stays, global stages) as [n, K] and exits."""
    n, k_max = routing.shape[0], len(ci.stages)
    cur = np.zeros(n, dtype=np.int64)
    exit_code = np.full(n, -1, dtype=np.int8)
    pool = np.full((n, k_max), -1, dtype=np.int32)
    los = np.zeros((n, k_max))
    stage = np.full((n, k_max), -1, dtype=np.int32)
    for s in range(k_max):
        active = np.flatnonzero(cur >= 0)
        if active.size == 0:
            break
        for j, st in enumerate(ci.stages):
            sel = active[cur[active] == j]
            if sel.size == 0:
                continue
            pool[sel, s] = st.pool_index[_pick(st.pool_cum, routing[sel, 2 * s])]
            los[sel, s] = st.los.ppf(los_u[sel, s])
            stage[sel, s] = ci.stage_offset + j
            nxt = st.next_target[_pick(st.next_cum, routing[sel, 2 * s + 1])]
            exit_code[sel[nxt < 0]] = nxt[nxt < 0]
            cur[sel] = nxt
    return pool, los, stage, exit_code


def apply(network: Network, table: PatientTable, seed: int, replication: int) -> PatientTable:
    """The patient table with every patient-level intervention applied (identity if none)."""
    from sim.demand import PatientTable

    ivs = getattr(network, "interventions", ())
    if not ivs:
        return table
    index = _TableIndex(network, table)
    picks = selected(network, table, seed, replication, index)
    taken = np.zeros(table.n_patients, dtype=bool)
    for ci in ivs:
        if ci.kind != "shorten":
            taken[picks[ci.name]] = True
    n, m = table.n_patients, table.n_visits
    keep_patient = np.ones(n, dtype=bool)
    keep_visit = np.ones(m, dtype=bool)
    visit_los = table.visit_los.copy()
    exit_code = table.exit.copy()
    # Added visits: (patient, order key, pool, los, stage); original visit i has key 2*pos.
    add_p, add_o, add_pool, add_los, add_stage = [], [], [], [], []
    for ci in ivs:
        who = picks[ci.name]
        if who.size == 0:
            continue
        if ci.kind == "avoid":
            keep_patient[who] = False
            continue
        for k, c in enumerate(ci.cohorts):
            p = who[table.cohort[who] == c]
            if p.size == 0:
                continue
            cand = table.candidate[p]
            if ci.kind == "divert":
                _clear_visits(keep_visit, table.visit_start, p)
                width = len(ci.stages)
                pool, los, stage, ex = _walk(
                    ci, _uniforms(seed, replication, ci.keys[k], "routing", cand, 2 * width),
                    _uniforms(seed, replication, ci.keys[k], "los", cand, width))
                valid = pool >= 0
                rows = np.nonzero(valid)
                add_p.append(p[rows[0]])
                add_o.append(2 * rows[1])
                add_pool.append(pool[valid])
                add_los.append(los[valid])
                add_stage.append(stage[valid])
                exit_code[p] = ex
            else:  # shorten (patients avoided or diverted are not shortened)
                p = p[~taken[p]]
                if p.size == 0:
                    continue
                cand = table.candidate[p]
                _, where = index.stage_los(int(ci.stage[k]), int(c))
                v = where[index.positions(int(c), p)]
                old = visit_los[v]
                new = old - ci.days_saved if ci.days_saved else old * ci.keep_fraction
                visit_los[v] = new
                sd = ci.step_down
                assert sd is not None
                u = _uniforms(seed, replication, ci.keys[k], "routing", cand, 1)[:, 0]
                add_p.append(p)
                add_o.append(2 * (v - table.visit_start[index.vp[v]]) + 1)
                add_pool.append(sd.pool_index[_pick(sd.pool_cum, u)])
                if sd.los is None:
                    add_los.append(old - new)
                else:
                    add_los.append(sd.los.ppf(
                        _uniforms(seed, replication, ci.keys[k], "los", cand, 1)[:, 0]))
                add_stage.append(np.full(p.size, ci.stage_offset, dtype=np.int32))

    def added(parts: list, dtype: type) -> np.ndarray:
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)

    visit_start, pool, los, stage = _rebuild_visits(
        keep_patient, keep_visit, table.visit_start, table.visit_pool, visit_los,
        table.visit_stage, added(add_p, np.int64), added(add_o, np.int64),
        added(add_pool, np.int32), added(add_los, np.float64), added(add_stage, np.int32))
    return PatientTable(
        arrival=table.arrival[keep_patient], cohort=table.cohort[keep_patient],
        candidate=table.candidate[keep_patient], mark=table.mark[keep_patient],
        exit=exit_code[keep_patient], visit_start=visit_start, visit_pool=pool,
        visit_los=los, visit_stage=stage)
