"""Compile a validated Scenario into flat numpy arrays that the engines and demand use."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np

from sim import los as los_mod
from sim.census_start import compile_initial
from sim.discharges import DischargeRules
from sim.scenario import Scenario

#: Capacity used for unlimited pools (never reached by any realistic census).
UNLIMITED = np.iinfo(np.int64).max // 4

QUEUE, LOSE, OVERFLOW = 0, 1, 2
POLICY_CODES = {"queue": QUEUE, "lose": LOSE, "overflow": OVERFLOW}

#: What happens to patients above a reduced capacity (``Pool.on_reduction``).
DRAIN, OUTLIE, MOVE = 0, 1, 2
REDUCTION_CODES = {"drain": DRAIN, "outlie": OUTLIE, "move": MOVE}

#: Exit codes stored in the patient table (negative = leaves the system).
EXITS = {"home": -1, "care_home": -2, "died": -3}
EXIT_NAMES = {v: k for k, v in EXITS.items()}


def stable_hash(name: str) -> int:
    """A hash of a name that is the same on every machine and Python run (for seed keys)."""
    return zlib.crc32(name.encode("utf-8"))


@dataclass(frozen=True)
class StageNet:
    """One stage of a cohort's pathway, with its pool choice, LoS and routing as arrays."""

    name: str
    pool_index: np.ndarray  # int32: candidate pools
    pool_cum: np.ndarray  # float64: cumulative probabilities over pool_index
    los: los_mod.LosDistribution
    next_target: np.ndarray  # int32: local stage index (>= 0) or exit code (< 0)
    next_cum: np.ndarray  # float64: cumulative probabilities over next_target


@dataclass(frozen=True)
class CohortNet:
    """A cohort: its arrival intensity inputs and pathway stages (local indices)."""

    name: str
    index: int
    key: int  # stable hash of the name, used to key random streams
    per_year: float
    growth: float
    growth_offset_days: float  # days from the growth base date to day 0
    day_factor: np.ndarray  # float64 per day of the horizon: seasonal x weekday
    hourly: np.ndarray  # float64[24], mean 1
    overdispersion: float
    stages: tuple[StageNet, ...]
    stage_offset: int  # index of this cohort's first stage in the global stage list


@dataclass(frozen=True)
class Network:
    """Everything an engine needs, as plain arrays; built once per scenario."""

    name: str
    start: date
    warmup: float
    horizon: float
    pool_names: tuple[str, ...]
    capacity: np.ndarray  # int64 initial capacity (UNLIMITED when null)
    unlimited: np.ndarray  # bool
    policy: np.ndarray  # int8 QUEUE / LOSE / OVERFLOW
    overflow_to: np.ndarray  # int32, -1 when not overflowing
    ward_size: np.ndarray  # int64, 0 when not given
    cc_time: np.ndarray  # float64 capacity-change times (sorted)
    cc_pool: np.ndarray  # int32
    cc_capacity: np.ndarray  # int64
    cohorts: tuple[CohortNet, ...]
    stage_names: tuple[str, ...] = field(default=())
    interventions: tuple = field(default=())  # sim.interventions.CompiledIntervention
    initial: tuple = field(default=())  # sim.census_start.InitialPatients, one per census entry
    reduction: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))  # DRAIN/OUTLIE/MOVE
    move_to: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))  # -1 unless MOVE
    discharges: DischargeRules = field(default_factory=lambda: DischargeRules.none(0))

    @property
    def n_pools(self) -> int:
        return len(self.pool_names)

    @property
    def n_days(self) -> int:
        """Number of midnights in the results window [warmup, horizon)."""
        return int(np.ceil(self.horizon) - np.ceil(self.warmup))

    @property
    def tracked(self) -> np.ndarray:
        """Pools whose beds in use an engine must count as it runs: a capacity at some time
        (initial or changed), or patients moved in by a cut. Elsewhere beds never run out, so
        a last stay needs no end-of-stay event and the census is counted from the stays."""
        tracked = self.capacity < UNLIMITED
        tracked[self.cc_pool] = True
        tracked[self.move_to[self.move_to >= 0]] = True
        return tracked

    def pool_index(self, name: str) -> int:
        return self.pool_names.index(name)

    def day_to_date(self, day: float) -> date:
        return self.start + timedelta(days=int(np.floor(day)))


def _normalised(values: list[float] | None, n: int) -> np.ndarray:
    if values is None:
        return np.ones(n)
    arr = np.asarray(values, dtype=float)
    return arr / arr.mean()


def _day_factors(start: date, n_days: int, seasonal: np.ndarray, weekday: np.ndarray) -> np.ndarray:
    days = np.arange(n_days)
    dates = np.datetime64(start, "D") + days
    months = dates.astype("datetime64[M]").astype(int) % 12
    weekdays = (dates.astype(int) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    return seasonal[months] * weekday[weekdays]


def compile_network(scenario: Scenario) -> Network:
    """Turn a Scenario into a Network of arrays (pools, cohorts, stages, LoS objects)."""
    pool_names = tuple(scenario.pools)
    index = {name: i for i, name in enumerate(pool_names)}
    n = len(pool_names)
    capacity = np.empty(n, dtype=np.int64)
    unlimited = np.zeros(n, dtype=bool)
    policy = np.empty(n, dtype=np.int8)
    overflow_to = np.full(n, -1, dtype=np.int32)
    ward_size = np.zeros(n, dtype=np.int64)
    reduction = np.zeros(n, dtype=np.int8)
    move_to = np.full(n, -1, dtype=np.int32)
    cc: list[tuple[float, int, int]] = []
    for i, pool in enumerate(scenario.pools.values()):
        r_kind, r_target = pool.reduction
        reduction[i] = REDUCTION_CODES[r_kind]
        if r_target is not None:
            move_to[i] = index[r_target]
        unlimited[i] = pool.capacity is None
        capacity[i] = UNLIMITED if pool.capacity is None else pool.capacity
        kind, target = pool.policy
        policy[i] = POLICY_CODES[kind]
        if target is not None:
            overflow_to[i] = index[target]
        ward_size[i] = pool.ward_size or 0
        for change in pool.capacity_changes:
            t = float((change.date - scenario.start).days)
            cap = UNLIMITED if change.capacity is None else change.capacity
            cc.append((t, i, cap))
    cc.sort(key=lambda x: (x[0], x[1]))

    horizon = float(scenario.warmup_days + scenario.run_days)
    n_cal_days = int(np.ceil(horizon)) + 1
    base_dir = scenario.source_path.parent if scenario.source_path else None
    cohorts = []
    stage_names: list[str] = []
    for ci, (cname, cohort) in enumerate(scenario.cohorts.items()):
        arr = cohort.arrivals
        seasonal = _normalised(arr.seasonal, 12)
        weekday = _normalised(arr.weekday, 7)
        hourly = _normalised(arr.hourly, 24)
        base_date = arr.base_date or scenario.start
        local = {st.stage: j for j, st in enumerate(cohort.pathway)}
        stages = []
        for st in cohort.pathway:
            choices = {st.pool: 1.0} if isinstance(st.pool, str) else dict(st.pool)
            pidx = np.array([index[p] for p in choices], dtype=np.int32)
            pcum = np.cumsum(np.array(list(choices.values()), dtype=float))
            pcum /= pcum[-1]
            nxt = st.next or {"home": 1.0}
            tgt = np.array([local[k] if k in local else EXITS[k] for k in nxt], dtype=np.int32)
            ncum = np.cumsum(np.array(list(nxt.values()), dtype=float))
            ncum /= ncum[-1]
            stages.append(
                StageNet(
                    name=st.stage,
                    pool_index=pidx,
                    pool_cum=pcum,
                    los=los_mod.from_spec(st.los, base_dir),
                    next_target=tgt,
                    next_cum=ncum,
                )
            )
            stage_names.append(f"{cname}.{st.stage}")
        cohorts.append(
            CohortNet(
                name=cname,
                index=ci,
                key=stable_hash(cname),
                per_year=float(arr.per_year),
                growth=float(arr.growth),
                growth_offset_days=float((scenario.start - base_date).days),
                day_factor=_day_factors(scenario.start, n_cal_days, seasonal, weekday),
                hourly=hourly,
                overdispersion=float(arr.overdispersion),
                stages=tuple(stages),
                stage_offset=len(stage_names) - len(stages),
            )
        )
    from sim.interventions import compile_interventions

    network = Network(
        name=scenario.name,
        start=scenario.start,
        warmup=float(scenario.warmup_days),
        horizon=horizon,
        pool_names=pool_names,
        capacity=capacity,
        unlimited=unlimited,
        policy=policy,
        overflow_to=overflow_to,
        ward_size=ward_size,
        cc_time=np.array([c[0] for c in cc], dtype=np.float64),
        cc_pool=np.array([c[1] for c in cc], dtype=np.int32),
        cc_capacity=np.array([c[2] for c in cc], dtype=np.int64),
        cohorts=tuple(cohorts),
        stage_names=tuple(stage_names),
        initial=compile_initial(scenario, list(pool_names), cohorts),
        reduction=reduction,
        move_to=move_to,
        discharges=DischargeRules.compile(scenario),
    )
    return compile_interventions(scenario, network)
