"""Check a simulated baseline against observed occupancy (bed returns or a daily extract).

A planner should show that the baseline reproduces the ward before changing it: this compares each
pool's simulated midnight census with an observed series of (date, pool, occupied beds).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

REQUIRED = ("date", "pool", "occupied")


class ObservedDataError(ValueError):
    """The observed occupancy file cannot be used; the message names the row and column."""


def read_observed(path: str | Path, pools: list[str] | None = None) -> pd.DataFrame:
    """Read and check an observed census CSV with columns date, pool, occupied."""
    path = Path(path)
    try:
        df = pd.read_csv(path, dtype={"pool": str}, encoding="utf-8")
    except FileNotFoundError:
        raise ObservedDataError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise ObservedDataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except pd.errors.EmptyDataError:
        raise ObservedDataError(f"{path}: the file is empty") from None
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ObservedDataError(f"{path}: missing column(s) {', '.join(missing)}; "
                                f"expected {', '.join(REQUIRED)}, found {', '.join(map(str, df.columns))}")
    if df.empty:
        raise ObservedDataError(f"{path}: no rows")
    dates = pd.to_datetime(df["date"], format="%Y-%m-%d", errors="coerce")
    occupied = pd.to_numeric(df["occupied"], errors="coerce")
    for column, bad in (("date", dates.isna()), ("occupied", occupied.isna() | (occupied < 0))):
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise ObservedDataError(f"{path}: row {row + 2}, column {column}: cannot use "
                                    f"{df[column].iloc[row]!r} (dates as YYYY-MM-DD, beds >= 0)")
    out = pd.DataFrame({"date": dates.dt.date, "pool": df["pool"], "occupied": occupied})
    if pools is not None:
        unknown = sorted(set(out["pool"]) - set(pools))
        if unknown:
            raise ObservedDataError(f"{path}: pool(s) {', '.join(unknown)} are not in the scenario "
                                    f"(its pools: {', '.join(pools)})")
    return out


@dataclass
class FitCheck:
    """Per-pool comparison table and the data behind it (for plotting)."""

    table: pd.DataFrame
    simulated: dict[str, np.ndarray]
    observed: dict[str, np.ndarray]


def check_fit(results, observed: pd.DataFrame) -> FitCheck:
    """Compare observed and simulated midnight census per pool: mean, percentiles, distances."""
    rows, sim_by_pool, obs_by_pool = [], {}, {}
    for pool, group in observed.groupby("pool", sort=True):
        k = results.pool_names.index(pool)
        simulated = results.census_days[:, k, :].ravel().astype(float)
        obs = group["occupied"].to_numpy(dtype=float)
        lo, hi = np.percentile(simulated, [5, 95])
        ks = stats.ks_2samp(obs, simulated)
        rows.append({
            "pool": pool, "observed_days": obs.size,
            "observed_mean": obs.mean(), "simulated_mean": simulated.mean(),
            "mean_difference_pct": 100 * (simulated.mean() - obs.mean()) / obs.mean() if obs.mean() else np.nan,
            **{f"observed_p{q}": np.percentile(obs, q) for q in (5, 50, 95)},
            **{f"simulated_p{q}": np.percentile(simulated, q) for q in (5, 50, 95)},
            "share_observed_in_simulated_90pct": float(np.mean((obs >= lo) & (obs <= hi))),
            "wasserstein_beds": stats.wasserstein_distance(obs, simulated),
            "ks_statistic": ks.statistic, "ks_pvalue": ks.pvalue,
        })
        sim_by_pool[pool], obs_by_pool[pool] = simulated, obs
    return FitCheck(pd.DataFrame(rows), sim_by_pool, obs_by_pool)


def plot_fit(check: FitCheck, pool: str):
    """Observed vs simulated census distributions (empirical CDFs) for one pool."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, values in (("simulated", check.simulated[pool]), ("observed", check.observed[pool])):
        x = np.sort(values)
        ax.step(x, np.arange(1, x.size + 1) / x.size, where="post", label=f"{label} (n={x.size})")
    ax.set_xlabel("beds occupied at midnight")
    ax.set_ylabel("share of days at or below")
    ax.set_title(f"observed vs simulated census: {pool}")
    ax.legend()
    fig.tight_layout()
    return fig
