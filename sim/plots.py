"""Matplotlib figures of a run: census fan chart and occupancy distribution per pool."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sim.results import write_atomic  # noqa: E402


def census_fan(results, pool: str):
    """Midnight census over the run window: median and 50% / 90% bands, with capacity."""
    k = results.pool_names.index(pool)
    census = results.census_days[:, k, :]
    days = np.arange(census.shape[1])
    fig, ax = plt.subplots(figsize=(8, 4))
    q = np.percentile(census, [5, 25, 50, 75, 95], axis=0)
    ax.fill_between(days, q[0], q[4], alpha=0.25, label="90% of replications")
    ax.fill_between(days, q[1], q[3], alpha=0.45, label="50% of replications")
    ax.plot(days, q[2], lw=1.5, label="median")
    cap = results.scenario.pools[pool].capacity
    if cap is not None:
        ax.axhline(cap, color="crimson", lw=1.2, ls="--", label=f"capacity {cap}")
    ax.set_xlabel(f"day of run window (from {results.summary_json()['window']['start']})")
    ax.set_ylabel("beds occupied at midnight")
    ax.set_title(f"{results.scenario.name}: {pool}")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def occupancy_histogram(results, pool: str):
    """Distribution of the midnight census, with capacity and the STP-rule line."""
    k = results.pool_names.index(pool)
    census = results.census_days[:, k, :].ravel()
    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.arange(census.min(), census.max() + 2) - 0.5
    if len(bins) > 80:
        bins = 60
    ax.hist(census, bins=bins, density=True, alpha=0.8)
    cap = results.scenario.pools[pool].capacity
    if cap is not None:
        ax.axvline(cap, color="crimson", ls="--", label=f"capacity {cap}")
    needed = results.beds_needed(pool)
    ax.axvline(needed["stp_rule"], color="k", ls=":", label=f"STP rule {needed['stp_rule']}")
    ax.axvline(needed["risk_rule"], color="darkorange", ls="-.", label=f"risk rule {needed['risk_rule']}")
    ax.set_xlabel("beds occupied at midnight")
    ax.set_ylabel("share of days")
    ax.set_title(f"{results.scenario.name}: {pool}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _save(fig, path: Path) -> None:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    write_atomic(path, buf.getvalue())


def write_run_plots(results, out: Path) -> list[Path]:
    """Write every per-pool figure of a run into its folder; returns the paths."""
    paths = []
    for pool in results.pool_names:
        for name, fn in (("census", census_fan), ("occupancy", occupancy_histogram)):
            path = Path(out) / f"{name}_{pool}.png"
            _save(fn(results, pool), path)
            paths.append(path)
    return paths
