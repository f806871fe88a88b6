"""Replication metrics: occupancy, midnight census, fullness, waits, delays, beds needed.

All metrics cover the results window [warmup, horizon). Constrained figures come from an engine's
trace; the beds-needed rules use the unconstrained census (every patient gets a bed at once),
which depends only on the patient table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from sim.demand import PatientTable
from sim.discharges import hold_days
from sim.engines.trace import (
    FOUND_FULL,
    LOST,
    MOVED,
    OUTLIED,
    OVERFLOWED,
    TICKS_PER_DAY,
    Trace,
    advance_pool,
)
from sim.network import Network
from sim.unchecked import load, store

STAY_THRESHOLDS = (7, 14, 21, 30)
CENSUS_QUANTILES = (50, 90, 95, 99)
HOURS = 1.0 / 24.0

#: Per-pool metric names, in the column order of ``ReplicationMetrics.pool``.
POOL_METRICS = (
    "mean_occupancy", "p_full_time", "p_full_arrival",
    "census_p50", "census_p90", "census_p95", "census_p99", "census_max",
    "arrivals", "admissions", "mean_wait_days", "wait_p95_days", "waits_over_4h", "waits_over_12h",
    "overflows", "lost", "delayed_transfer_days", "delayed_transfer_pct",
    "bed_days", "ge_7", "ge_14", "ge_21", "ge_30",
    "unconstrained_mean_occupancy", "stp_rule", "risk_rule",
    "discharge_held_days", "discharge_held_pct", "moved_out", "outliers", "outlier_days",
)

# Columns of the per-pool sums computed by ``visit_sums``.
(_ASK, _FOUND_FULL, _OVERFLOWS, _LOST, _N_WAIT, _SUM_WAIT, _OVER_4H, _OVER_12H, _ADMISSIONS,
 _BED_DAYS, _GE_7, _GE_14, _GE_21, _GE_30, _DELAYED, _UC_DAYS, _HELD, _MOVED_OUT, _OUTLIERS,
 _OUTLIER_DAYS) = range(20)
_N_SUMS = 20


@dataclass
class ReplicationMetrics:
    """One replication's metrics: a (pools x POOL_METRICS) matrix, cohort admissions, census."""

    replication: int
    pool: np.ndarray  # float64 [n_pools, len(POOL_METRICS)]
    cohort_admissions: np.ndarray  # float64 [n_cohorts]
    census: np.ndarray  # int32 [n_pools, n_days] constrained midnight census
    unconstrained_census: np.ndarray  # int32 [n_pools, n_days]


@njit(cache=True)
def occupancy_path(log_time, log_pool, log_delta, capacity0, cc_time, cc_pool, cc_capacity,
                   warmup, horizon, first_midnight, n_days):
    """Time at or over capacity, and midnight census, per pool, from an occupancy log.

    A pool's time full is added up to t when its beds change at t (its first log entry at t),
    every pool's at a capacity change and at the horizon, in whole ticks (trace.ticks): the
    numba engine run without a log, which splits the same intervals its own way, gives the same
    sums bit for bit.
    """
    n_pools = capacity0.shape[0]
    cap = capacity0.copy()
    occ = np.zeros(n_pools, np.int64)
    acc = np.zeros((n_pools, 2))  # time full, integrated up to (as the engine)
    acc[:, 1] = warmup
    census = np.zeros((n_pools, n_days), np.int32)
    day = 0
    i = 0
    ic = 0
    n = log_time.shape[0]
    n_cc = cc_time.shape[0]
    while True:
        t_log = log_time[i] if i < n else np.inf
        t_cc = cc_time[ic] if ic < n_cc else np.inf
        t = min(t_log, t_cc, horizon)
        while day < n_days and first_midnight + day < t:
            for k in range(n_pools):
                census[k, day] = occ[k]
            day += 1
        if t >= horizon or t_cc <= t_log:
            for k in range(n_pools):
                advance_pool(k, t, occ, cap, acc)
            if t >= horizon:
                break
            cap[cc_pool[ic]] = cc_capacity[ic]
            ic += 1
        else:
            k = log_pool[i]
            advance_pool(k, t, occ, cap, acc)
            occ[k] += log_delta[i]
            i += 1
    return acc[:, 0] / TICKS_PER_DAY, census


@njit(cache=True, inline="always")
def midnight_index(x, first_midnight, n_days):
    """Least day d in [0, n_days] with ``first_midnight + d >= x`` (n_days if none): exact, as
    the midnights are whole numbers (so ``ceil(x) - first_midnight`` is)."""
    return np.int64(min(max(np.ceil(x) - first_midnight, 0.0), float(n_days)))


@njit(cache=True)
def add_stay(diff, row, start, end, first_midnight, n_days):
    """A stay in a bed at the midnights in [start, end), in a pool's census differences
    ``diff[row:row + n_days + 1]`` (+1 at the first midnight in, -1 at the first one out);
    indices in range by construction, so written unchecked. Left to LLVM to inline: numba's
    own inlining made unconstrained_sums 18% slower."""
    i = row + midnight_index(start, first_midnight, n_days)
    store(diff, i, load(diff, i) + 1)
    j = row + midnight_index(end, first_midnight, n_days)
    store(diff, j, load(diff, j) - 1)


@njit(cache=True, inline="always")
def census_from_diff(diff, row, census, k):
    """Pool ``k``'s midnight census (``census[k]``): the running sum of its differences
    ``diff[row:row + n_days]``."""
    run = np.int64(0)
    for d in range(census.shape[1]):
        run += diff[row + d]
        census[k, d] = run


def risk_rule(census: np.ndarray, epsilon: float) -> int:
    """Smallest capacity c with census > c on at most a fraction epsilon of days."""
    values = np.sort(np.asarray(census).ravel())
    if values.size == 0:
        return 0
    allowed = int(np.floor(epsilon * values.size + 1e-9))
    return int(values[values.size - allowed - 1])


def stp_rule(mean_occupancy: float, target: float) -> int:
    """The spreadsheet rule: mean occupied beds / target occupancy, rounded up."""
    return int(np.ceil(mean_occupancy / target - 1e-9))


def unconstrained_stays(table: PatientTable) -> tuple[np.ndarray, np.ndarray]:
    """Start and end of every visit if every bed were free at once (no waits, no blocking)."""
    los = table.visit_los
    before = np.cumsum(los) - los
    counts = np.diff(table.visit_start)
    has = counts > 0
    base = table.arrival[has] - before[table.visit_start[:-1][has]]
    start = np.repeat(base, counts[has]) + before
    return start, start + los


@njit(cache=True)
def visit_sums(visit_pool, used_pool, request, admit, leave, flags, visit_los, warmup, horizon,
               n_pools, hours4, hours12, last, moved_at, move_to):
    """Per-pool request and stay sums in one pass over visits (each sum adds in visit order, as
    ``np.bincount``: equal to the vectorised sums bit for bit).

    Returns a [n_pools, _N_SUMS] matrix, and the positive waits of patients asking in the
    window with the pool asked for (in visit order), for wait percentiles: the other waits of
    the ``_N_WAIT`` counted are zero. Time in a bed past the end of the stay is a delayed
    transfer, or on a ``last`` visit a discharge hold.
    """
    m = visit_pool.shape[0]
    s = np.zeros((n_pools, _N_SUMS))
    waits = np.empty(m)
    wait_pool = np.empty(m, np.int32)
    n_waits = 0
    for v in range(m):
        r = request[v]
        if r >= warmup and r < horizon:
            k = visit_pool[v]
            f = flags[v]
            s[k, _ASK] += 1.0
            s[k, _FOUND_FULL] += 1.0 * ((f & FOUND_FULL) != 0)  # +0.0 is exact: no branch
            s[k, _OVERFLOWS] += 1.0 * ((f & OVERFLOWED) != 0)
            if f & LOST:
                s[used_pool[v], _LOST] += 1.0
            else:
                a = admit[v]
                wt = (horizon if np.isnan(a) else a) - r
                s[k, _N_WAIT] += 1.0
                s[k, _SUM_WAIT] += wt
                s[k, _OVER_4H] += 1.0 * (wt > hours4)
                s[k, _OVER_12H] += 1.0 * (wt > hours12)
                waits[n_waits] = wt
                wait_pool[n_waits] = k
                n_waits += wt > 0.0  # kept only if positive: no branch
        a = admit[v]
        if np.isnan(a):
            continue
        k = used_pool[v]
        lv = leave[v]
        if np.isnan(lv):
            lv = np.inf
        if a >= warmup and a < horizon:
            s[k, _ADMISSIONS] += 1.0
        stay = min(lv, horizon) - a
        end = lv
        f = flags[v]
        mv = moved_at[v]
        if f & (MOVED | OUTLIED):  # split at the capacity cut: before it in k, after it elsewhere
            end = mv
            if mv >= warmup and mv < horizon:
                s[k, _MOVED_OUT if f & MOVED else _OUTLIERS] += 1.0
            after = max(min(lv, horizon) - max(mv, warmup), 0.0)
            if f & MOVED:
                _stay_days(s, move_to[k], after, stay)
            else:
                s[k, _OUTLIER_DAYS] += after
        _stay_days(s, k, max(min(end, horizon) - max(a, warmup), 0.0), stay)
        ready = a + visit_los[v]
        waited = max(min(lv, horizon) - max(ready, warmup), 0.0)
        kb = move_to[k] if f & MOVED else k
        s[kb, _HELD if last[v] else _DELAYED] += waited
    return s, waits[:n_waits], wait_pool[:n_waits]


@njit(cache=True, inline="always")
def _stay_days(s, k, inside, stay):
    """Add bed days of a stay of length ``stay`` to pool ``k``'s totals and long-stay sums."""
    s[k, _BED_DAYS] += inside
    # inside >= 0, so a sum gains exactly +0.0 where the stay is shorter: no unpredictable branch
    s[k, _GE_7] += inside * (stay >= 7)
    s[k, _GE_14] += inside * (stay >= 14)
    s[k, _GE_21] += inside * (stay >= 21)
    s[k, _GE_30] += inside * (stay >= 30)


@njit(cache=True)
def last_visits(visit_start: np.ndarray) -> np.ndarray:
    """Per visit: is it its patient's last (the one that ends in discharge or death)?"""
    last = np.zeros(visit_start[-1], np.bool_)
    for p in range(visit_start.shape[0] - 1):
        if visit_start[p + 1] > visit_start[p]:
            last[visit_start[p + 1] - 1] = True
    return last


@njit(cache=True)
def unconstrained_sums(arrival, visit_start, visit_pool, visit_los, warmup, horizon, n_pools,
                       first_midnight, n_days, cohort, n_cohorts, hold_u, hold_on, hold_factor,
                       hold_open, hold_close, first_weekday):
    """Unconstrained demand (every bed free at once): bed days in the window and midnight census
    per pool, plus admissions per cohort. Same arithmetic as :func:`unconstrained_stays`, plus
    any discharge hold of a last stay (holds need no spare bed, so they count here too)."""
    n = arrival.shape[0]
    row = n_days + 1  # per pool: +1 at the first midnight in a bed, -1 at the first one out
    diff = np.zeros(n_pools * row, np.int64)
    uc_days = np.zeros(n_pools)
    cohort_adm = np.zeros(n_cohorts)
    any_hold = hold_u.shape[0] > 0
    cs = 0.0  # running cumulative sum of stays over all visits, as np.cumsum
    # Pools, cohorts, visits and midnight indices are in range by construction: read unchecked.
    for p in range(n):
        a = load(arrival, p)
        if a >= warmup and a < horizon:
            c = load(cohort, p)
            store(cohort_adm, c, load(cohort_adm, c) + 1.0)
        base = 0.0
        first, stop = load(visit_start, p), load(visit_start, p + 1)
        for v in range(first, stop):
            los = load(visit_los, v)
            cs += los
            before = cs - los
            if v == first:
                base = a - before
            start = base + before
            end = start + los
            k = load(visit_pool, v)
            if any_hold and hold_on[k] and v == stop - 1 and not np.isnan(hold_u[v]):
                end += hold_days(end, hold_u[v], first_weekday, hold_factor[k], hold_open[k],
                                 hold_close[k])
            add_stay(diff, k * row, start, end, first_midnight, n_days)
            store(uc_days, k, load(uc_days, k) + max(min(end, horizon) - max(start, warmup), 0.0))
    census = np.empty((n_pools, n_days), np.int32)
    for k in range(n_pools):
        census_from_diff(diff, k * row, census, k)
    return uc_days, census, cohort_adm


def percentile_nonnegative(values: np.ndarray, q: float) -> float:
    """``np.percentile(values, q)`` (linear method) of values >= 0, bit for bit, sorting only
    the positive values: in sorted order the zeros come first."""
    return percentile_with_zeros(values[values > 0.0], values.size, q)


def percentile_with_zeros(positive: np.ndarray, n: int, q: float) -> float:
    """:func:`percentile_nonnegative` of ``n`` values: ``positive`` and zeros."""
    zeros = n - positive.size
    virtual = (n - 1) * (q / 100)
    if virtual >= n - 1:
        lo = hi = n - 1
    else:
        lo = int(np.floor(virtual))
        hi = lo + 1
    gamma = virtual - lo if virtual < n - 1 else virtual + 1.0
    need = sorted({i - zeros for i in (lo, hi) if i >= zeros})
    if need:
        positive = np.partition(positive, need)

    def order_stat(i: int) -> float:
        return 0.0 if i < zeros else float(positive[i - zeros])

    a, b = order_stat(lo), order_stat(hi)
    diff = b - a
    return b - diff * (1 - gamma) if gamma >= 0.5 else a + diff * gamma


def replication_metrics(network: Network, table: PatientTable, trace: Trace, replication: int = 0,
                        target_occupancy: float = 0.95, epsilon: float = 0.05) -> ReplicationMetrics:
    """All metrics of one replication from its patient table and engine trace."""
    w, h = network.warmup, network.horizon
    n_pools, n_days = network.n_pools, network.n_days
    first_midnight = float(np.ceil(w))
    if trace.path is not None:  # integrated by the engine, which kept no log
        full_time, census = trace.path.full_time, trace.path.census
    else:
        full_time, census = occupancy_path(
            trace.log_time, trace.log_pool, trace.log_delta, network.capacity,
            network.cc_time, network.cc_pool, network.cc_capacity, w, h, first_midnight, n_days)
    span = h - w
    out = np.zeros((n_pools, len(POOL_METRICS)))
    col = {name: i for i, name in enumerate(POOL_METRICS)}
    out[:, col["p_full_time"]] = full_time / span
    if n_days:
        q = np.percentile(census, CENSUS_QUANTILES, axis=1, method="inverted_cdf")
        for j, p in enumerate(CENSUS_QUANTILES):
            out[:, col[f"census_p{p}"]] = q[j]
        out[:, col["census_max"]] = census.max(axis=1)

    # Requests are attributed to the pool asked for; stays to the pool the bed was in.
    s, waits, wait_pool = visit_sums(
        table.visit_pool, trace.used_pool, trace.request, trace.admit, trace.leave, trace.flags,
        table.visit_los, w, h, n_pools, 4 * HOURS, 12 * HOURS, last_visits(table.visit_start),
        trace.moved_at, network.move_to)
    n_ask = s[:, _ASK]
    out[:, col["arrivals"]] = n_ask
    out[:, col["p_full_arrival"]] = _ratio(s[:, _FOUND_FULL], n_ask)
    out[:, col["overflows"]] = s[:, _OVERFLOWS]
    out[:, col["lost"]] = s[:, _LOST]
    out[:, col["mean_wait_days"]] = _ratio(s[:, _SUM_WAIT], s[:, _N_WAIT])
    out[:, col["waits_over_4h"]] = s[:, _OVER_4H]
    out[:, col["waits_over_12h"]] = s[:, _OVER_12H]
    for k in range(n_pools):
        n_waits = int(s[k, _N_WAIT])
        if n_waits:
            out[k, col["wait_p95_days"]] = percentile_with_zeros(waits[wait_pool == k], n_waits,
                                                                 95)
    out[:, col["admissions"]] = s[:, _ADMISSIONS]
    bed_days = s[:, _BED_DAYS]
    out[:, col["bed_days"]] = bed_days
    out[:, col["mean_occupancy"]] = bed_days / span  # the time-integral of beds in use
    for x, c in zip(STAY_THRESHOLDS, (_GE_7, _GE_14, _GE_21, _GE_30), strict=True):
        out[:, col[f"ge_{x}"]] = _ratio(s[:, c], bed_days)
    delayed = s[:, _DELAYED]
    out[:, col["delayed_transfer_days"]] = delayed
    out[:, col["delayed_transfer_pct"]] = _ratio(100 * delayed, bed_days)
    out[:, col["discharge_held_days"]] = s[:, _HELD]
    out[:, col["discharge_held_pct"]] = _ratio(100 * s[:, _HELD], bed_days)
    out[:, col["moved_out"]] = s[:, _MOVED_OUT]
    out[:, col["outliers"]] = s[:, _OUTLIERS]
    out[:, col["outlier_days"]] = s[:, _OUTLIER_DAYS]

    # Unconstrained demand: what the beds-needed rules are computed from.
    d = network.discharges
    hold_u = table.visit_hold_u if table.visit_hold_u is not None else np.empty(0)
    uc_days, uc_census, cohort_adm = unconstrained_sums(
        table.arrival, table.visit_start, table.visit_pool, table.visit_los, w, h, n_pools,
        first_midnight, n_days, table.cohort, len(network.cohorts),
        hold_u, d.on, d.factor, d.open, d.close, d.first_weekday)
    if network.initial:  # patients already in beds at day 0 are not admissions
        initial = (table.candidate < 0) & (table.arrival >= w) & (table.arrival < h)
        cohort_adm -= np.bincount(table.cohort[initial], minlength=len(network.cohorts))
    uc_mean = uc_days / span
    out[:, col["unconstrained_mean_occupancy"]] = uc_mean
    for k in range(n_pools):
        out[k, col["stp_rule"]] = stp_rule(uc_mean[k], target_occupancy)
        out[k, col["risk_rule"]] = risk_rule(uc_census[k], epsilon)
    return ReplicationMetrics(replication, out, cohort_adm, census, uc_census)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den where den > 0, else 0."""
    return np.divide(num, den, out=np.zeros(len(den)), where=den > 0)
