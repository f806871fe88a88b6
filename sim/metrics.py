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
from sim.engines.trace import FOUND_FULL, LOST, OVERFLOWED, Trace
from sim.network import Network

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
)


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
    """Time-integral of beds in use, time at or over capacity, and midnight census per pool."""
    n_pools = capacity0.shape[0]
    cap = capacity0.copy()
    occ = np.zeros(n_pools, np.int64)
    area = np.zeros(n_pools)
    full_time = np.zeros(n_pools)
    census = np.zeros((n_pools, n_days), np.int32)
    last = warmup
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
        if t > last:
            dt = t - last
            for k in range(n_pools):
                area[k] += occ[k] * dt
                if occ[k] >= cap[k]:
                    full_time[k] += dt
            last = t
        if t >= horizon:
            break
        if t_cc <= t_log:
            cap[cc_pool[ic]] = cc_capacity[ic]
            ic += 1
        else:
            occ[log_pool[i]] += log_delta[i]
            i += 1
    return area, full_time, census


def _midnight_census(pool, start, end, n_pools, first_midnight, n_days):
    """Census at each midnight d (start <= d < end) for stays given as arrays, by bincount."""
    lo = np.clip(np.ceil(start) - first_midnight, 0, n_days).astype(np.int64)
    hi = np.clip(np.ceil(end) - first_midnight, 0, n_days).astype(np.int64)
    width = n_days + 1
    diff = np.bincount(pool * width + lo, minlength=n_pools * width)
    diff -= np.bincount(pool * width + hi, minlength=n_pools * width)
    return np.cumsum(diff.reshape(n_pools, width), axis=1)[:, :n_days].astype(np.int32)


def _overlap(start, end, warmup, horizon):
    return np.clip(np.minimum(end, horizon) - np.maximum(start, warmup), 0.0, None)


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


def replication_metrics(network: Network, table: PatientTable, trace: Trace, replication: int = 0,
                        target_occupancy: float = 0.95, epsilon: float = 0.05) -> ReplicationMetrics:
    """All metrics of one replication from its patient table and engine trace."""
    w, h = network.warmup, network.horizon
    n_pools, n_days = network.n_pools, network.n_days
    first_midnight = float(np.ceil(w))
    area, full_time, census = occupancy_path(
        trace.log_time, trace.log_pool, trace.log_delta, network.capacity,
        network.cc_time, network.cc_pool, network.cc_capacity, w, h, first_midnight, n_days)
    span = h - w
    out = np.zeros((n_pools, len(POOL_METRICS)))
    col = {name: i for i, name in enumerate(POOL_METRICS)}
    out[:, col["mean_occupancy"]] = area / span
    out[:, col["p_full_time"]] = full_time / span
    if n_days:
        q = np.percentile(census, CENSUS_QUANTILES, axis=1, method="inverted_cdf")
        for j, p in enumerate(CENSUS_QUANTILES):
            out[:, col[f"census_p{p}"]] = q[j]
        out[:, col["census_max"]] = census.max(axis=1)

    # Requests: attributed to the pool asked for.
    asked = table.visit_pool
    in_window = (trace.request >= w) & (trace.request < h)
    ask_pool = asked[in_window]
    flags = trace.flags[in_window]
    n_ask = np.bincount(ask_pool, minlength=n_pools).astype(float)
    out[:, col["arrivals"]] = n_ask
    found_full = np.bincount(ask_pool, weights=(flags & FOUND_FULL) > 0, minlength=n_pools)
    out[:, col["p_full_arrival"]] = np.divide(found_full, n_ask, out=np.zeros(n_pools), where=n_ask > 0)
    out[:, col["overflows"]] = np.bincount(ask_pool, weights=(flags & OVERFLOWED) > 0, minlength=n_pools)
    lost = (flags & LOST) > 0
    out[:, col["lost"]] = np.bincount(trace.used_pool[in_window][lost], minlength=n_pools)
    admitted_or_waiting = ~lost
    wait = np.where(np.isnan(trace.admit[in_window]), h, trace.admit[in_window]) - trace.request[in_window]
    wp, wv = ask_pool[admitted_or_waiting], wait[admitted_or_waiting]
    n_wait = np.bincount(wp, minlength=n_pools).astype(float)
    out[:, col["mean_wait_days"]] = np.divide(np.bincount(wp, weights=wv, minlength=n_pools), n_wait,
                                              out=np.zeros(n_pools), where=n_wait > 0)
    out[:, col["waits_over_4h"]] = np.bincount(wp, weights=wv > 4 * HOURS, minlength=n_pools)
    out[:, col["waits_over_12h"]] = np.bincount(wp, weights=wv > 12 * HOURS, minlength=n_pools)
    for k in range(n_pools):
        vals = wv[wp == k]
        if vals.size:
            out[k, col["wait_p95_days"]] = np.percentile(vals, 95)

    # Stays: attributed to the pool the bed was in.
    took = ~np.isnan(trace.admit)
    pool = trace.used_pool[took]
    a = trace.admit[took]
    leave = np.where(np.isnan(trace.leave[took]), np.inf, trace.leave[took])
    out[:, col["admissions"]] = np.bincount(pool[(a >= w) & (a < h)], minlength=n_pools)
    inside = _overlap(a, leave, w, h)
    bed_days = np.bincount(pool, weights=inside, minlength=n_pools)
    out[:, col["bed_days"]] = bed_days
    stay = np.minimum(leave, h) - a
    for x in STAY_THRESHOLDS:
        share = np.bincount(pool, weights=inside * (stay >= x), minlength=n_pools)
        out[:, col[f"ge_{x}"]] = np.divide(share, bed_days, out=np.zeros(n_pools), where=bed_days > 0)
    ready = a + table.visit_los[took]
    delayed = np.bincount(pool, weights=_overlap(ready, leave, w, h), minlength=n_pools)
    out[:, col["delayed_transfer_days"]] = delayed
    out[:, col["delayed_transfer_pct"]] = np.divide(100 * delayed, bed_days, out=np.zeros(n_pools),
                                                    where=bed_days > 0)

    # Unconstrained demand: what the beds-needed rules are computed from.
    uc_start, uc_end = unconstrained_stays(table)
    uc_census = _midnight_census(table.visit_pool.astype(np.int64), uc_start, uc_end, n_pools,
                                 first_midnight, n_days)
    uc_mean = np.bincount(table.visit_pool, weights=_overlap(uc_start, uc_end, w, h),
                          minlength=n_pools) / span
    out[:, col["unconstrained_mean_occupancy"]] = uc_mean
    for k in range(n_pools):
        out[k, col["stp_rule"]] = stp_rule(uc_mean[k], target_occupancy)
        out[k, col["risk_rule"]] = risk_rule(uc_census[k], epsilon)

    arrived = (table.arrival >= w) & (table.arrival < h)
    cohort_adm = np.bincount(table.cohort[arrived], minlength=len(network.cohorts)).astype(float)
    return ReplicationMetrics(replication, out, cohort_adm, census, uc_census)
