"""Per-period results: mean midnight census per pool per financial year (April to March)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from sim.results import Results, mean_ci


def financial_year_means(results: Results) -> pd.DataFrame:
    """One row per financial year x pool: mean midnight census (beds in use) and mean unconstrained
    census (bed demand), each with its 95% CI over replications."""
    sc = results.scenario
    first = sc.start + dt.timedelta(days=int(np.ceil(sc.warmup_days)))
    n_days = results.census_days.shape[2]
    dates = np.datetime64(first, "D") + np.arange(n_days)
    years = dates.astype("datetime64[M]").astype(int)
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
