"""Per-period results: mean midnight census per pool per financial year (April to March) and
per weekday (the weekly cycle that weekend discharge patterns make)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from sim.results import Results, mean_ci

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _window_dates(results: Results) -> np.ndarray:
    """Calendar date of every midnight census of the results window."""
    sc = results.scenario
    first = sc.start + dt.timedelta(days=int(np.ceil(sc.warmup_days)))
    return np.datetime64(first, "D") + np.arange(results.census_days.shape[2])


def weekday_means(results: Results) -> pd.DataFrame:
    """One row per pool x weekday: mean midnight census (the midnight that starts that day),
    with its 95% CI over replications, and its difference from the pool's all-week mean."""
    weekday = (_window_dates(results).astype(int) + 3) % 7  # 1970-01-01 was a Thursday
    rows = []
    for k, pool in enumerate(results.pool_names):
        census = results.census_days[:, k, :].astype(float)
        overall = census.mean(axis=1)
        for d, name in enumerate(WEEKDAYS):
            sel = weekday == d
            if not sel.any():
                continue
            per_rep = census[:, sel].mean(axis=1)
            mean, lo, hi = mean_ci(per_rep)
            diff, d_lo, d_hi = mean_ci(per_rep - overall)
            rows.append({"pool": pool, "weekday": name, "days": int(sel.sum()),
                         "mean_census": mean, "ci_low": lo, "ci_high": hi,
                         "vs_week": diff, "vs_week_ci_low": d_lo, "vs_week_ci_high": d_hi})
    return pd.DataFrame(rows)


def financial_year_means(results: Results) -> pd.DataFrame:
    """One row per financial year x pool: mean midnight census (beds in use) and mean unconstrained
    census (bed demand), each with its 95% CI over replications."""
    years = _window_dates(results).astype("datetime64[M]").astype(int)
    fy = (years // 12 + 1970) - ((years % 12) < 3)  # April..March belongs to the year it starts
    rows = []
    for y in np.unique(fy):
        sel = fy == y
        for k, pool in enumerate(results.pool_names):
            per_rep = results.census_days[:, k, sel].mean(axis=1)
            mean, lo, hi = mean_ci(per_rep.astype(float))
            demand = results.unconstrained_census[:, k, sel].mean(axis=1)
            d_mean, d_lo, d_hi = mean_ci(demand.astype(float))
            rows.append({"financial_year": f"{y}/{(y + 1) % 100:02d}", "days": int(sel.sum()),
                         "pool": pool, "mean_census": mean, "ci_low": lo, "ci_high": hi,
                         "mean_demand": d_mean, "demand_ci_low": d_lo, "demand_ci_high": d_hi})
    return pd.DataFrame(rows)
