"""Matplotlib figures for planners: census fans, occupancy, risk curves, waterfalls, tornados.

Every function returns a Figure (Agg backend, no display needed); ``write_run_plots`` saves the
per-pool figures of a run as PNGs, atomically, into its run folder.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import matplotlib

if "ipykernel" not in sys.modules:  # headless everywhere but a notebook's inline backend
    matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from sim.results import write_atomic  # noqa: E402

DPI = 100
#: Figure sizes in inches; a saved PNG is (height * DPI) x (width * DPI) pixels.
SIZES = {
    "census": (10.0, 4.5),
    "occupancy": (7.0, 4.5),
    "risk": (7.0, 4.5),
    "waterfall": (10.0, 5.0),
    "frontier": (8.0, 4.5),
    "tornado": (9.0, 5.0),
    "sobol": (8.0, 4.5),
    "morris": (7.0, 5.0),
}
CAPACITY = "crimson"
STP = "black"
RISK = "darkorange"


def _window_dates(results) -> list[date]:
    """Calendar date of each midnight in the results' census arrays."""
    first = int(np.ceil(results.scenario.warmup_days))
    n_days = results.census_days.shape[2]
    return [results.scenario.start + timedelta(days=first + d) for d in range(n_days)]


def capacity_changes(results) -> dict[str, list[tuple[date, float]]]:
    """Per pool, (date, beds) of each capacity change, from the pool's dated changes and the
    scenario's capacity interventions alike (NaN beds = unlimited). Cached on ``results``."""
    cached = getattr(results, "_bedflow_capacity_changes", None)
    if cached is not None:
        return cached
    from sim.network import UNLIMITED, compile_network

    net = compile_network(results.scenario)
    out: dict[str, list[tuple[date, float]]] = {p: [] for p in results.pool_names}
    for t, k, cap in zip(net.cc_time.tolist(), net.cc_pool.tolist(), net.cc_capacity.tolist(),
                         strict=True):
        when = results.scenario.start + timedelta(days=float(t))
        out[net.pool_names[k]].append((when, np.nan if cap >= UNLIMITED else float(cap)))
    results._bedflow_capacity_changes = out
    return out


def capacity_by_day(results, pool: str) -> np.ndarray:
    """Capacity in force at each midnight of the run window (NaN = unlimited)."""
    spec = results.scenario.pools[pool]
    days = np.array(_window_dates(results), dtype="datetime64[D]")
    cap = np.full(len(days), np.nan if spec.capacity is None else float(spec.capacity))
    for when, value in capacity_changes(results)[pool]:
        cap[days >= np.datetime64(when, "D")] = value
    return cap


def _capacity_label(results, pool: str) -> tuple[float, str] | None:
    """The capacity at the end of the run window and its legend label (None if unlimited)."""
    cap = capacity_by_day(results, pool)
    if not np.isfinite(cap[-1]):
        return None
    changed = np.unique(cap[np.isfinite(cap)]).size > 1 or np.isnan(cap).any()
    label = f"capacity {cap[-1]:.0f}" + (" (at end of window)" if changed else "")
    return float(cap[-1]), label


def census_fan(results, pool: str) -> Figure:
    """Midnight census over the run window: median, 50% and 90% bands, capacity and its changes."""
    k = results.pool_names.index(pool)
    census = results.census_days[:, k, :]
    dates = np.array(_window_dates(results), dtype="datetime64[D]")
    fig, ax = plt.subplots(figsize=SIZES["census"])
    q = np.percentile(census, [5, 25, 50, 75, 95], axis=0)
    ax.fill_between(dates, q[0], q[4], color="tab:blue", alpha=0.2, lw=0,
                    label="90% of replications")
    ax.fill_between(dates, q[1], q[3], color="tab:blue", alpha=0.4, lw=0,
                    label="50% of replications")
    ax.plot(dates, q[2], color="tab:blue", lw=1.4, label="median")
    cap = capacity_by_day(results, pool)
    if np.isfinite(cap).any():
        ax.step(dates, cap, where="post", color=CAPACITY, lw=1.3, ls="--", label="capacity")
    first, last = dates[0], dates[-1]
    for change, beds in capacity_changes(results)[pool]:
        when = np.datetime64(change, "D")
        if first <= when <= last:
            ax.axvline(when, color=CAPACITY, lw=0.8, alpha=0.6)
            text = "unlimited" if np.isnan(beds) else f"{beds:.0f} beds"
            ax.annotate(f"{change:%d %b %Y}: {text}", (when, 1.0),
                        xycoords=("data", "axes fraction"), xytext=(3, -12),
                        textcoords="offset points", fontsize=7, color=CAPACITY)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%b %Y"))
    ax.set_ylabel("beds occupied at midnight")
    ax.set_title(f"{results.scenario.name}: {pool} census ({results.replications} replications)")
    ax.legend(loc="lower left", fontsize=8, ncol=4)
    fig.tight_layout()
    return fig


def occupancy_histogram(results, pool: str) -> Figure:
    """Distribution of the midnight census, with capacity and the STP-rule and risk-rule lines."""
    k = results.pool_names.index(pool)
    census = results.census_days[:, k, :].ravel()
    fig, ax = plt.subplots(figsize=SIZES["occupancy"])
    lo, hi = int(census.min()), int(census.max())
    bins: Any = np.arange(lo, hi + 2) - 0.5 if hi - lo < 80 else 60
    ax.hist(census, bins=bins, density=True, color="tab:blue", alpha=0.8)
    cap = _capacity_label(results, pool)
    if cap is not None:
        ax.axvline(cap[0], color=CAPACITY, ls="--", label=cap[1])
    needed = results.beds_needed(pool)
    ax.axvline(needed["stp_rule"], color=STP, ls=":",
               label=f"STP rule (mean / {needed['target_occupancy']:.0%}): {needed['stp_rule']}")
    ax.axvline(needed["risk_rule"], color=RISK, ls="-.",
               label=f"risk rule (full on {needed['epsilon']:.0%} of days): {needed['risk_rule']}")
    ax.set_xlabel("beds occupied at midnight")
    ax.set_ylabel("share of days")
    ax.set_title(f"{results.scenario.name}: {pool} occupancy")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def exceedance(census: np.ndarray, beds: np.ndarray) -> np.ndarray:
    """P(census > c) for each c in ``beds``, over all values of ``census``."""
    values = np.sort(np.asarray(census).ravel())
    return 1.0 - np.searchsorted(values, beds, side="right") / values.size


def risk_curve(results, pool: str) -> Figure:
    """Chance that unconstrained demand exceeds c beds, by c, with the STP and risk rules marked."""
    k = results.pool_names.index(pool)
    uc = results.unconstrained_census[:, k, :]
    needed = results.beds_needed(pool)
    cap = _capacity_label(results, pool)
    lo = int(np.percentile(uc, 1))
    hi = max(int(uc.max()), needed["stp_rule"], needed["risk_rule"], int(cap[0]) if cap else 0) + 2
    beds = np.arange(max(lo, 0), hi + 1)
    fig, ax = plt.subplots(figsize=SIZES["risk"])
    per_rep = np.array([exceedance(row, beds) for row in uc])
    if per_rep.shape[0] > 1:
        band = np.percentile(per_rep, [5, 95], axis=0)
        ax.fill_between(beds, band[0], band[1], step="post", color="tab:blue", alpha=0.25, lw=0,
                        label="90% of replications")
    p = exceedance(uc, beds)
    ax.step(beds, p, where="post", color="tab:blue", lw=1.5, label="all replications")
    eps = needed["epsilon"]
    ax.axhline(eps, color=RISK, lw=0.8, ls=":")
    ax.axvline(needed["risk_rule"], color=RISK, ls="-.",
               label=f"risk rule: {needed['risk_rule']} beds (full on <= {eps:.0%} of days)")
    p_stp = float(exceedance(uc, np.array([needed["stp_rule"]]))[0])
    ax.axvline(needed["stp_rule"], color=STP, ls=":",
               label=f"STP rule ({needed['target_occupancy']:.0%} occupancy): "
                     f"{needed['stp_rule']} beds, full on {p_stp:.0%} of days")
    if cap is not None:
        ax.axvline(cap[0], color=CAPACITY, ls="--", label=cap[1])
    ax.set_xlabel("beds (c)")
    ax.set_ylabel("chance of being full: P(demand > c) on a day")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{results.scenario.name}: {pool} risk of running out of beds")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- comparisons


def waterfall_table(runs, pools: Sequence[str], metric: Any = "stp_rule",
                    labels: Sequence[str] | None = None, total_label: str | None = None
                    ) -> pd.DataFrame:
    """Steps of a waterfall: the first run, each run minus the one before it (paired), the last.

    ``runs`` is a list of Results (or a Comparison) run with the same seed, ordered so that each
    adds one change to the one before (baseline, do nothing, + each lever). ``metric`` is a
    metric name or a :class:`sim.sensitivity.Metric`; it is summed over ``pools``.
    """
    from sim.results import mean_ci
    from sim.sensitivity import Metric

    runs = list(getattr(runs, "runs", runs))
    if len(runs) < 2:
        raise ValueError("a waterfall needs at least two runs")
    m = metric if isinstance(metric, Metric) else Metric(tuple(pools), str(metric))
    labels = list(labels) if labels is not None else [r.scenario.name for r in runs]
    if len(labels) != len(runs):
        raise ValueError(f"{len(labels)} labels for {len(runs)} runs")
    values = [m.values(r) for r in runs]
    rows = []
    mean, lo, hi = mean_ci(values[0])
    rows.append({"label": labels[0], "kind": "total", "value": mean, "ci_low": lo, "ci_high": hi,
                 "bottom": 0.0, "top": mean})
    level = mean
    for i in range(1, len(runs)):
        if values[i].shape != values[i - 1].shape:
            raise ValueError("runs must have the same replications to be paired")
        mean, lo, hi = mean_ci(values[i] - values[i - 1])
        rows.append({"label": labels[i], "kind": "step", "value": mean, "ci_low": lo,
                     "ci_high": hi, "bottom": level, "top": level + mean})
        level += mean
    mean, lo, hi = mean_ci(values[-1])
    rows.append({"label": total_label or f"{labels[-1]} (total)", "kind": "total", "value": mean,
                 "ci_low": lo, "ci_high": hi, "bottom": 0.0, "top": mean})
    return pd.DataFrame(rows)


def waterfall(runs, pools: Sequence[str], metric: Any = "stp_rule",
              labels: Sequence[str] | None = None, total_label: str | None = None,
              title: str | None = None) -> Figure:
    """The STP waterfall: baseline, growth, each lever, do something; 95% CIs as error bars."""
    table = waterfall_table(runs, pools, metric, labels, total_label)
    fig, ax = plt.subplots(figsize=SIZES["waterfall"])
    x = np.arange(len(table))
    colours = ["tab:grey" if k == "total" else ("tab:red" if v > 0 else "tab:green")
               for k, v in zip(table["kind"], table["value"], strict=True)]
    heights = table["top"] - table["bottom"]
    ax.bar(x, heights, bottom=table["bottom"], color=colours, width=0.6)
    centre = np.where(table["kind"] == "total", table["value"], table["top"])
    err = np.vstack([table["value"] - table["ci_low"], table["ci_high"] - table["value"]])
    ax.errorbar(x, centre, yerr=np.nan_to_num(err), fmt="none", ecolor="black", capsize=4, lw=1)
    for xi, (v, kind, top) in enumerate(zip(table["value"], table["kind"], table["top"],
                                             strict=True)):
        text = f"{v:,.0f}" if kind == "total" else f"{v:+,.0f}"
        ax.annotate(text, (xi, max(top, top - v)), xytext=(0, 4), textcoords="offset points",
                    ha="center", fontsize=8)
    for xi in range(len(table) - 1):
        ax.plot([xi + 0.3, xi + 0.7], [table["top"][xi]] * 2, color="grey", lw=0.7)
    ax.set_xticks(x, table["label"], rotation=20, ha="right", fontsize=8)
    name = metric if isinstance(metric, str) else getattr(metric, "label", "metric")
    ax.set_ylabel(f"{name} ({' + '.join(pools)})")
    ax.set_title(title or "scenario comparison (paired differences, 95% CI)")
    lowest = float(np.nanmin(np.r_[table["bottom"][table["kind"] == "step"], table["top"]]))
    ax.set_ylim(bottom=min(0.0, lowest))
    fig.tight_layout()
    return fig


def _most_closable(table: pd.DataFrame, column: str, limit: float) -> int | None:
    """Largest wards_closed whose value, and every smaller one's, is within the limit."""
    best = None
    for k, value in zip(table["wards_closed"], table[column], strict=True):
        if not value <= limit:
            break
        best = int(k)
    return best


def frontier(table: pd.DataFrame, metric_label: str = "risk", limit: float | None = None,
             title: str | None = None) -> Figure:
    """Wards closed against a risk metric with 95% CIs, and the planner's limit if given.

    ``table`` has columns ``wards_closed``, ``mean``, ``ci_low``, ``ci_high`` (as produced by the
    ward-closure search).
    """
    missing = {"wards_closed", "mean", "ci_low", "ci_high"} - set(table.columns)
    if missing:
        raise ValueError(f"frontier table lacks columns {sorted(missing)}")
    t = table.sort_values("wards_closed")
    fig, ax = plt.subplots(figsize=SIZES["frontier"])
    ax.fill_between(t["wards_closed"], t["ci_low"], t["ci_high"], color="tab:blue", alpha=0.25,
                    lw=0, label="95% CI")
    ax.plot(t["wards_closed"], t["mean"], "o-", color="tab:blue", label="mean")
    if limit is not None:
        ax.axhline(limit, color=CAPACITY, ls="--", label=f"limit {limit:g}")
        for col, style, what in (("mean", "-.", "mean"), ("ci_high", ":", "upper 95% bound")):
            best = _most_closable(t, col, limit)
            if best is not None:
                ax.axvline(best, color="grey", ls=style,
                           label=f"most wards closable ({what} within limit): {best}")
    ax.set_xlabel("wards closed")
    ax.set_ylabel(metric_label)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_title(title or "wards closed vs risk")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def tornado(table: pd.DataFrame, metric_label: str = "beds needed", title: str | None = None
            ) -> Figure:
    """One-at-a-time sensitivity: each parameter's low and high result around the base value.

    ``table`` is :func:`sim.sensitivity.one_at_a_time` output (columns ``parameter``, ``base``,
    ``result_low``, ``result_high`` and optionally ``low``/``high`` inputs); widest swing on top.
    """
    t = table.assign(swing=(table["result_high"] - table["result_low"]).abs())
    t = t.sort_values("swing").reset_index(drop=True)
    base = float(t["base"].iloc[0])
    fig, ax = plt.subplots(figsize=SIZES["tornado"])
    y = np.arange(len(t))
    ax.barh(y, t["result_low"] - base, left=base, color="tab:blue", height=0.6,
            label="parameter at low")
    ax.barh(y, t["result_high"] - base, left=base, color="tab:orange", height=0.6, alpha=0.85,
            label="parameter at high")
    for yi, row in t.iterrows():
        for key in ("result_low", "result_high"):
            if row[key] == base:
                continue
            ax.annotate(f"{row[key]:,.0f}", (row[key], yi), xytext=(3 if row[key] >= base else -3, 0),
                        textcoords="offset points", va="center", fontsize=7,
                        ha="left" if row[key] >= base else "right")
    names = [str(p) for p in t["parameter"]]
    if {"low", "high"} <= set(t.columns):
        names = [f"{p} [{lo:g}, {hi:g}]" for p, lo, hi in zip(names, t["low"], t["high"], strict=True)]
    ax.set_yticks(y, names, fontsize=8)
    ax.axvline(base, color="black", lw=1)
    ax.set_xlabel(f"{metric_label} (base {base:,.0f})")
    ax.set_title(title or "one-at-a-time sensitivity")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def sobol_chart(table: pd.DataFrame, title: str | None = None) -> Figure:
    """First-order and total Sobol indices per parameter with their 95% CIs."""
    t = table.reset_index(drop=True)
    fig, ax = plt.subplots(figsize=SIZES["sobol"])
    x = np.arange(len(t))
    w = 0.38
    ax.bar(x - w / 2, t["S1"], w, yerr=t["S1_conf"], capsize=3, label="first order (S1)")
    ax.bar(x + w / 2, t["ST"], w, yerr=t["ST_conf"], capsize=3, label="total (ST)")
    ax.set_xticks(x, t["parameter"], rotation=20, ha="right", fontsize=8)
    ax.axhline(0, color="black", lw=0.6)
    ax.set_ylabel("Sobol index (share of output variance)")
    ax.set_title(title or "global sensitivity: Sobol indices (95% CI)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def morris_chart(table: pd.DataFrame, title: str | None = None) -> Figure:
    """Morris screening: mean absolute elementary effect (mu*) against their spread (sigma)."""
    fig, ax = plt.subplots(figsize=SIZES["morris"])
    ax.errorbar(table["mu_star"], table["sigma"], xerr=table["mu_star_conf"], fmt="o", capsize=3)
    for _, row in table.iterrows():
        ax.annotate(str(row["parameter"]), (row["mu_star"], row["sigma"]), xytext=(4, 4),
                    textcoords="offset points", fontsize=8)
    ax.set_xlabel("mu* (mean |elementary effect|)")
    ax.set_ylabel("sigma (interaction / non-linearity)")
    ax.set_title(title or "Morris screening")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- saving

#: The per-pool figures of a run: file prefix -> figure function.
RUN_PLOTS = {"census": census_fan, "occupancy": occupancy_histogram, "risk": risk_curve}


def png_bytes(fig: Figure) -> bytes:
    """Render a figure to PNG bytes at the fixed DPI and close it."""
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=DPI)
    finally:
        plt.close(fig)
    return buf.getvalue()


def save(fig: Figure, path: str | Path) -> Path:
    """Save a figure as a PNG, atomically."""
    path = Path(path)
    write_atomic(path, png_bytes(fig))
    return path


def run_figures(results):
    """Yield (file name, figure) for every per-pool figure of a run."""
    for pool in results.pool_names:
        for name, fn in RUN_PLOTS.items():
            yield f"{name}_{pool}.png", fn(results, pool)


_FORKED_RESULTS = None  # the results a forked renderer inherits (see write_run_plots)


def _render(results, pool: str, name: str) -> bytes:
    return png_bytes(RUN_PLOTS[name](results, pool))


def _render_forked(key: tuple[str, str]) -> bytes:
    return _render(_FORKED_RESULTS, *key)


def write_run_plots(results, out: str | Path, jobs: int | None = None) -> list[Path]:
    """Write every per-pool figure of a run into its folder; returns the paths.

    Matplotlib takes about 0.3 s a figure (three a pool), so with more than one core and a
    process that may fork (sim.executors.start_method), forked processes render them: they
    inherit the results instead of receiving a copy. The files are the same either way.
    """
    from sim.executors import default_jobs, start_method

    global _FORKED_RESULTS
    keys = [(pool, name) for pool in results.pool_names for name in RUN_PLOTS]
    jobs = min(default_jobs() if jobs is None else jobs, len(keys) // 3)
    if jobs > 1 and start_method() == "fork":
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        _FORKED_RESULTS = results
        try:
            with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork")) as ex:
                pngs = list(ex.map(_render_forked, keys))
        finally:
            _FORKED_RESULTS = None
    else:
        pngs = [_render(results, pool, name) for pool, name in keys]
    paths = [Path(out) / f"{name}_{pool}.png" for pool, name in keys]
    for path, png in zip(paths, pngs, strict=True):
        write_atomic(path, png)
    return paths
