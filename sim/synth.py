"""Synthetic episode extracts: run any scenario once and write what a hospital system would record.

The extract has the format `sim.fit` reads (one row per ward stay; see its module docstring),
so planners can try ``bedflow fit`` without real data and the tests can check that fitting
recovers the scenario it came from.
"""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import numpy as np
import pandas as pd

from sim import demand
from sim.engines import run_engine
from sim.network import EXIT_NAMES, compile_network
from sim.results import write_atomic
from sim.scenario import Scenario, scenario_from_dict

__all__ = ["synth_episodes", "write_extract"]

#: Columns of a synthetic extract, in order (cohort and pool columns named as in sim.fit).
COLUMNS = ("spell_id", "stay_number", "admitted", "discharged", "pool", "cohort", "destination")
_FMT = "%Y-%m-%d %H:%M:%S"


def _horizon_scenario(scenario: Scenario, years: float | None) -> Scenario:
    """The scenario run from day 0 (no warm-up: the extract starts with an empty hospital)."""
    doc = scenario.to_dict()
    if years is not None:
        if not years > 0:
            raise ValueError(f"years must be > 0, got {years}")
        doc["warmup_days"] = 0
        doc["run_days"] = float(years) * 365.0
    return scenario_from_dict(doc, scenario.source_path)


def synth_episodes(scenario: Scenario, years: float | None = None, seed: int = 1,
                   engine: str = "numba") -> tuple[pd.DataFrame, dt.datetime]:
    """One replication of ``scenario`` as an extract: (one row per ward stay, extract datetime).

    Runs ``years`` years from the scenario start (default: its whole horizon, warm-up included).
    Stays still open at the end of the run have a blank discharge; spells still waiting for
    their first bed at the end are not in the extract (they were never admitted).
    """
    sc = _horizon_scenario(scenario, years)
    net = compile_network(sc)
    table = demand.generate(net, seed, 0)
    trace = run_engine(engine, net, table)
    patient = table.visit_patient()
    took = ~np.isnan(trace.admit)
    # stay number within the spell counts only the stays the patient actually had
    vis = np.flatnonzero(took)
    p = patient[vis]
    first = np.r_[True, p[1:] != p[:-1]]
    group_start = np.maximum.accumulate(np.where(first, np.arange(len(p)), 0))
    stay_number = np.arange(len(p)) - group_start + 1
    last = np.r_[p[1:] != p[:-1], True]
    admit = trace.admit[vis]
    leave = trace.leave[vis]
    open_ = np.isnan(leave) | (leave >= net.horizon)
    # A spell is over when its last stay has ended and every pathway stage was used.
    n_visits = np.diff(table.visit_start)[p]
    done = last & ~open_ & (stay_number == n_visits)
    dest = np.full(len(vis), "", dtype=object)
    exits = table.exit[p]
    for code, name in EXIT_NAMES.items():
        dest[done & (exits == code)] = name
    start = np.datetime64(sc.start, "s")
    to_dt = lambda days: start + np.round(days * 86400.0).astype("timedelta64[s]")  # noqa: E731
    admitted = pd.Series(to_dt(admit)).dt.strftime(_FMT)
    discharged = pd.Series(to_dt(np.where(open_, 0.0, leave))).dt.strftime(_FMT)
    discharged[open_] = ""
    cohort_names = np.array([c.name for c in net.cohorts], dtype=object)
    pool_names = np.array(net.pool_names, dtype=object)
    cand = table.candidate[p]
    coh = table.cohort[p]
    spell_id = pd.Series(cohort_names[coh]).str.cat(pd.Series(cand).astype(str), sep="-")
    df = pd.DataFrame({
        "spell_id": spell_id.to_numpy(), "stay_number": stay_number,
        "admitted": admitted.to_numpy(), "discharged": discharged.to_numpy(),
        "pool": pool_names[trace.used_pool[vis]], "cohort": cohort_names[coh],
        "destination": dest,
    })
    extract = dt.datetime.combine(sc.start, dt.time()) + dt.timedelta(days=net.horizon)
    return df, extract


def write_extract(df: pd.DataFrame, out: str | Path) -> Path:
    """Write an extract as CSV (or Parquet for a ``.parquet`` name), atomically."""
    out = Path(out)
    if out.suffix.lower() == ".parquet":
        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        write_atomic(out, buf.getvalue())
    else:
        write_atomic(out, df.to_csv(index=False, lineterminator="\n"))
    return out
