"""A run folder as one self-contained HTML report (plots inline) that a planner can email.

Besides the results it carries everything needed to reproduce and judge them: the resolved
scenario YAML, seed, replications, engine, versions, and a model description following the
STRESS-DES reporting guideline (Monte et al. 2018), generated from the scenario itself.
"""

from __future__ import annotations

import base64
import html
import json
import platform
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from sim.results import Results, write_atomic
from sim.scenario import Scenario

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Arial,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;margin:.8em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right;vertical-align:top}
th:first-child,td:first-child{text-align:left}th{background:#f3f3f3}
td.text{text-align:left}
pre{background:#f7f7f7;border:1px solid #ddd;padding:.8em;overflow-x:auto;font-size:.85em}
figure{margin:1em 0}img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.85em;color:#555}.meta td{text-align:left}.note{color:#555;font-size:.9em}
"""

#: Rows of the results table: label, summary key, scale, digits.
RESULT_ROWS = (
    ("mean occupied beds", "mean_occupancy", 1, 1),
    ("midnight census p50", "census_p50", 1, 0),
    ("midnight census p95", "census_p95", 1, 0),
    ("% of time full", "p_full_time", 100, 1),
    ("% of arrivals finding it full", "p_full_arrival", 100, 1),
    ("mean wait for a bed (hours)", "mean_wait_days", 24, 2),
    ("waits over 4 h", "waits_over_4h", 1, 0),
    ("waits over 12 h", "waits_over_12h", 1, 0),
    ("overflows", "overflows", 1, 0),
    ("lost (turned away)", "lost", 1, 0),
    ("delayed transfer bed days", "delayed_transfer_days", 1, 0),
    ("delayed transfer % of bed days", "delayed_transfer_pct", 1, 2),
    ("admissions", "admissions", 1, 0),
)

FIGURE_CAPTIONS = {
    "census": "Midnight census over the results window: median and the bands holding 50% and 90% "
              "of replications; dashed: capacity (with dated changes).",
    "occupancy": "Distribution of the midnight census over all days and replications, with the "
                 "capacity and the beds needed by the STP rule and by the risk rule.",
    "risk": "Chance that unconstrained demand exceeds c beds on a day, by c: the risk of being "
            "full with c beds. The STP rule and the risk rule are marked.",
}


def _e(x: Any) -> str:
    return html.escape(str(x))


def _fmt(est: dict[str, Any], scale: float = 1.0, digits: int = 1) -> str:
    """``mean (lo to hi)`` of a summary estimate."""
    mean = est.get("mean")
    if mean is None:
        return "-"
    lo, hi = est.get("ci95", [None, None])
    if lo is None or hi is None:
        return f"{mean * scale:,.{digits}f}"
    return f"{mean * scale:,.{digits}f} ({lo * scale:,.{digits}f} to {hi * scale:,.{digits}f})"


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]], text_cols: int = 1,
           cls: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = "".join(f'<td class="text">{_e(v)}</td>' if i < text_cols else f"<td>{_e(v)}</td>"
                        for i, v in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    attr = f' class="{cls}"' if cls else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def png_size(png: bytes) -> tuple[int, int]:
    """Width and height of a PNG, from its IHDR header."""
    if png[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def _img(png: bytes, alt: str, caption: str) -> str:
    w, h = png_size(png)
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{_e(alt)}" width="{w}" '
            f'height="{h}"><figcaption>{_e(caption)}</figcaption></figure>')


# --------------------------------------------------------------------------- model description


def _los_text(los: Any) -> str:
    d = los.dist
    if d == "mixture":
        parts = ", ".join(f"{c.weight:g} x {_los_text(c)}" for c in los.components or [])
        return f"mixture of {parts}"
    if d == "empirical":
        return f"empirical (observed stays from {los.file})"
    if los.mean is not None:
        return f"{d}, mean {los.mean:g} days" + (f", cv {los.cv:g}" if los.cv is not None else "")
    if los.mu is not None:
        return f"{d}, mu {los.mu:g}, sigma {los.sigma:g} (log days)"
    return f"{d}, shape {los.shape:g}, scale {los.scale:g} days"


def _pool_choice(pool: str | dict[str, float]) -> str:
    if isinstance(pool, str):
        return pool
    return ", ".join(f"{name} {p:.0%}" for name, p in pool.items())


def _next_text(nxt: dict[str, float] | None) -> str:
    if not nxt:
        return "home"
    return ", ".join(f"{k} {p:.0%}" for k, p in nxt.items())


def _policy_text(policy: tuple[str, str | None]) -> str:
    kind, target = policy
    if kind == "queue":
        return "queue (wait first come, first served; a transfer keeps its current bed)"
    if kind == "lose":
        return "lose (turned away and counted)"
    return f"overflow to {target}"


def _iv_target(iv: Any) -> str:
    if iv.type == "capacity":
        return f"pool {iv.pool}"
    stage = f" (stage {iv.stage})" if iv.stage else ""
    return ", ".join(iv.cohorts or []) + stage


def _iv_size(iv: Any) -> str:
    if iv.type == "capacity":
        return f"{iv.wards:+d} wards" if iv.wards is not None else f"{iv.beds:+d} beds"
    size = f"{iv.fraction:.1%} of admissions" if iv.fraction is not None else \
        f"{iv.per_year:,.0f} episodes / yr"
    if iv.mean_los is not None:
        size += f" @ mean stay {iv.mean_los:g} days"
    size += ", a fixed number each month" if iv.delivery_mode == "monthly" else \
        ", each patient picked independently"
    if iv.type == "shorten":
        cut = f"{iv.days_saved:g} days saved" if iv.days_saved is not None else \
            f"keep {iv.keep_fraction:.0%} of the stay"
        size += f"; {cut}; rest to {_pool_choice(iv.step_down.pool)}" if iv.step_down else f"; {cut}"
    if iv.type == "divert" and iv.pathway:
        size += "; to " + " then ".join(_pool_choice(st.pool) for st in iv.pathway)
    return size


def _iv_phasing(iv: Any) -> str:
    if iv.phasing:
        return "; ".join(f"{ph.date}: {ph.level:.0%}" for ph in iv.phasing)
    return f"ramp over {iv.ramp_days:g} days" if iv.ramp_days else "full size at start"


def _reduction_text(reduction: tuple[str, str | None]) -> str:
    kind, target = reduction
    return {"drain": "stay until the census fits", "outlie": "outlie (leave the pool's beds)",
            "move": f"move to {target}"}[kind]


def _discharges_text(d: Any) -> str:
    if d is None or (d.weekday is None and d.hours is None):
        return "any time"
    parts = []
    if d.weekday is not None:
        top = max(d.weekday)
        days = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
        parts.append(", ".join(f"{n} {v / top:.0%}" for n, v in zip(days, d.weekday, strict=True)))
    if d.hours is not None:
        hh = [f"{int(h):02d}:{round(h % 1 * 60):02d}" for h in d.hours]
        parts.append(f"{hh[0]}-{hh[1]}")
    return "; ".join(parts)


def stress_des(scenario: Scenario, manifest: dict[str, Any]) -> str:
    """HTML sections of a STRESS-DES style model description, generated from the scenario."""
    s = scenario
    reps, seed, engine = manifest.get("replications"), manifest.get("seed"), manifest.get("engine")
    target = manifest.get("target_occupancy", 0.95)
    eps = manifest.get("epsilon", 0.05)
    pools = [(name, "unlimited" if p.capacity is None else p.capacity, _policy_text(p.policy),
              p.ward_size or "-",
              "; ".join(f"{c.date}: {'unlimited' if c.capacity is None else c.capacity}"
                        for c in p.capacity_changes) or "-",
              _reduction_text(p.reduction), _discharges_text(p.discharges))
             for name, p in s.pools.items()]
    stages = []
    for cname, c in s.cohorts.items():
        for st in c.pathway:
            stages.append((cname, st.stage, _pool_choice(st.pool), _los_text(st.los),
                           _next_text(st.next)))
    arrivals = []
    for cname, c in s.cohorts.items():
        a = c.arrivals
        profiles = [n for n, v in (("monthly", a.seasonal), ("weekday", a.weekday),
                                   ("hour of day", a.hourly)) if v is not None]
        arrivals.append((cname, f"{a.per_year:,.0f}", f"{a.growth:.1%}",
                         str(a.base_date or s.start), ", ".join(profiles) or "none",
                         f"{a.overdispersion:g}", c.description or "-"))
    interventions = [(iv.name, iv.type, _iv_target(iv), _iv_size(iv), str(iv.start),
                      _iv_phasing(iv), f"{iv.scale:g}", iv.description or "-")
                     for iv in s.interventions]
    versions = manifest.get("bedflow_version", "?")
    timings = manifest.get("timings", {})
    run_s = timings.get("run_seconds")
    return f"""
<h3>1. Objectives</h3>
<p>Purpose: estimate, for every bed pool of <b>{_e(s.name)}</b>, how full it runs, how often it
is full, how long patients wait for a bed, and how many beds it needs by two rules side by side:
the STP rule (mean occupied beds / {target:.0%} target occupancy) and the risk rule (the
smallest number of beds that unconstrained demand exceeds on at most {eps:.0%} of days).
{_e(s.description.strip())}</p>
<p>Outputs: time-weighted mean occupancy; midnight-census percentiles; share of time full and
of arrivals finding the pool full; waits for a bed; delayed-transfer bed days; overflows and
losses; admissions; beds needed. Each is a mean over replications with a 95% confidence
interval. Experimentation aim: estimate these for one scenario; other scenarios are compared
with the same random numbers.</p>
<h3>2. Logic</h3>
<p>Patients arrive by cohort as a non-homogeneous Poisson process (thinning), then follow their
cohort's pathway: at each stage a pool is chosen by probability, a length of stay is drawn, then
the patient moves to the next stage or leaves (home, care home, died). A patient who finds the
pool full follows the pool's policy. Events at equal times: departures before arrivals, then by
patient index. All randomness is drawn into a patient table before the run; the engine replays it
through the capacitated pools, so the beds-needed rules can also use the unconstrained census
(every patient given a bed at once).</p>
<p>Bed pools:</p>
{_table(["pool", "beds", "when full", "ward size", "capacity changes", "patients above a cut",
         "discharges"], pools, text_cols=7)}
<p>Pathways:</p>
{_table(["cohort", "stage", "pool", "length of stay", "then"], stages, text_cols=5)}
<p>Interventions{" (applied in this order; each takes its own slice of every patient's "
                  "uniform mark, so scaling one never changes who another selects):" if interventions
                  else ": none in this scenario."}</p>
{_table(["name", "type", "targets", "size at full scale", "start", "phasing", "scale",
         "description"], interventions, text_cols=8) if interventions else ""}
<h3>3. Data</h3>
<p>All inputs are in the scenario YAML below (with its sources and assumptions in the file's
comments and descriptions). Admissions by cohort:</p>
{_table(["cohort", "admissions / yr", "annual growth", "at date", "profiles", "overdispersion (cv)",
         "description"], arrivals, text_cols=7)}
<h3>4. Experimentation</h3>
<p>Initialisation: the model starts empty on {s.start} and runs a warm-up of
{s.warmup_days:g} days that is discarded; results cover the next {s.run_days:g} days.
Replications: {_e(reps)}, with seed {_e(seed)}. Replication <i>i</i> draws from random streams
keyed by (seed, <i>i</i>, cohort, purpose), so a run is reproducible exactly and scenarios run
with the same seed share their common patients (common random numbers). Estimates: mean across
replications with a two-sided 95% Student-t interval.</p>
<h3>5. Implementation</h3>
<p>Software: bedflow {_e(versions)} (Python; numpy, numba, SimPy). Engine: {_e(engine)}
({"numba-compiled event loop" if engine == "numba" else "SimPy reference model"}; both give
identical traces). Random numbers: numpy SeedSequence with PCG64 streams.
{f"Run time {run_s:.1f} s with {timings.get('jobs', '?')} worker process(es)." if run_s else ""}
Command: <code>{_e(manifest.get("command", "sim.run(...)"))}</code></p>
<h3>6. Code access</h3>
<p>bedflow is open source. To reproduce this run, save the scenario YAML below as
<code>scenario.yaml</code> and run <code>bedflow run scenario.yaml --replications {_e(reps)}
--seed {_e(seed)} --engine {_e(engine)}</code>.</p>
"""


# --------------------------------------------------------------------------- the report


def beds_needed_rows(results: Results) -> list[list[str]]:
    """Per pool: capacity, mean demand, STP rule, risk rule, and the risk at the STP-rule beds."""
    from sim.plots import capacity_by_day, exceedance

    rows = []
    for k, pool in enumerate(results.pool_names):
        b = results.beds_needed(pool)
        uc = results.unconstrained_census[:, k, :]
        p_stp = float(exceedance(uc, np.array([b["stp_rule"]]))[0])
        cap = capacity_by_day(results, pool)[-1]
        rows.append([pool, "unlimited" if np.isnan(cap) else f"{cap:,.0f}",
                     _fmt(b["unconstrained_mean_occupancy"]), f"{b['stp_rule']:,}",
                     f"{b['risk_rule']:,}", _fmt(b["risk_rule_by_replication"], digits=1),
                     f"{p_stp:.1%}"])
    return rows


POOLS_PER_TABLE = 6


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def _result_rows(results: Results, summary: dict[str, Any], pools: list[str]) -> list[list[str]]:
    """Metric x pool rows of the results table for some pools."""
    from sim.plots import capacity_by_day

    caps = [capacity_by_day(results, p)[-1] for p in pools]
    rows = [["beds (end of window)", *("unlimited" if np.isnan(c) else f"{c:,.0f}" for c in caps)]]
    entries = [summary["pools"][p] for p in pools]
    rows += [[label, *(_fmt(e[key], scale, digits) for e in entries)]
             for label, key, scale, digits in RESULT_ROWS]
    rows += [[f"share of bed days in stays >= {x[3:]} days",
              *(_fmt(e["bed_day_share_by_stay"][x], 100, 1) for e in entries)]
             for x in ("ge_7", "ge_14", "ge_21", "ge_30")]
    return rows


def build_report(run_dir: str | Path) -> str:
    """The HTML text of the report of a run folder written by ``bedflow run --out``."""
    from sim import __version__, plots

    run_dir = Path(run_dir)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    results = Results.load(run_dir)
    summary = results.summary_json()
    s = results.scenario
    pools = summary["pools"]
    results_tables = "".join(_table(["", *chunk], _result_rows(results, summary, chunk))
                             for chunk in _chunks(list(pools), POOLS_PER_TABLE))
    adm_rows = [[c, _fmt(est, digits=0)] for c, est in summary["admissions"].items()]
    figures = []
    for name, fig in plots.run_figures(results):
        kind, pool = name.removesuffix(".png").split("_", 1)
        figures.append((pool, _img(plots.png_bytes(fig), f"{kind}: {pool}",
                                   FIGURE_CAPTIONS.get(kind, ""))))
    by_pool = "".join(
        f"<h3>{_e(pool)}</h3>" + "".join(f for p, f in figures if p == pool)
        for pool in results.pool_names)
    scenario_yaml = yaml.safe_dump(manifest["scenario"], sort_keys=False, allow_unicode=True)
    made = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    meta = [["scenario", s.name], ["results window", f"from {summary['window']['start']}, "
                                                     f"{s.run_days:g} days"],
            ["replications", results.replications], ["seed", results.seed],
            ["engine", results.engine], ["bedflow version (run)", manifest.get("bedflow_version")],
            ["bedflow version (report)", __version__],
            ["Python", platform.python_version()], ["report written", made],
            ["run folder", str(run_dir.resolve())]]
    eps, target = results.epsilon, results.target_occupancy
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>bedflow report: {_e(s.name)}</title><style>{CSS}</style></head>
<body>
<h1>bedflow report: {_e(s.name)}</h1>
<p class="note">{_e(s.description.strip())}</p>
{_table(["", ""], meta, text_cols=2, cls="meta")}
<h2>Beds needed</h2>
<p>Two rules side by side. The STP rule divides mean occupied beds by a target occupancy of
{target:.0%}; it says nothing about the risk of running out of beds. The risk rule is the
smallest number of beds that unconstrained demand exceeds on at most {eps:.0%} of days. The last
column is how often demand would exceed the STP-rule beds. Intervals are 95% CIs across
replications.</p>
{_table(["pool", "beds (end of window)", "mean demand (beds)", "STP rule", "risk rule (all days)",
         "risk rule (per replication)", "days demand > STP-rule beds"], beds_needed_rows(results))}
<h2>Results by pool</h2>
<p>Mean across replications (95% CI).</p>
{results_tables}
<h2>Admissions in the results window</h2>
{_table(["cohort", "admissions"], adm_rows)}
<h2>Figures</h2>
{by_pool}
<h2>Model description (STRESS-DES)</h2>
{stress_des(s, manifest)}
<h2>Scenario (resolved YAML)</h2>
<pre>{_e(scenario_yaml)}</pre>
</body></html>
"""


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the HTML report of a run folder (default ``RUN_DIR/report.html``), atomically."""
    run_dir = Path(run_dir)
    if not (run_dir / "manifest.json").is_file() or not (run_dir / "arrays.npz").is_file():
        raise FileNotFoundError(f"{run_dir} is not a run folder (no manifest.json / arrays.npz); "
                                "make one with `bedflow run CONFIG --out DIR`")
    path = Path(out) if out is not None else run_dir / "report.html"
    write_atomic(path, build_report(run_dir))
    return path
