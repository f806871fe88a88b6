"""Weekday and hour-of-day discharge patterns: the hold rule, the weekly cycle, seven-day services."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import sim
from sim import demand
from sim.discharges import hold_days
from sim.engines import numba_core
from sim.metrics import last_visits
from sim.network import compile_network
from sim.periods import weekday_means
from sim.scenario import ScenarioError, scenario_from_dict

ROOT = Path(__file__).resolve().parents[1]
FIVE_DAY = np.array([1, 1, 1, 1, 1, 0.5, 0.0])
MON = 0  # 2024-01-01 was a Monday: day d of a scenario starting then is weekday d % 7


def test_hold_rule_on_a_calendar():
    o, c = 8 / 24, 20 / 24
    assert hold_days(2.5, 0.9, MON, FIVE_DAY, o, c) == 0.0  # Wednesday noon: goes
    assert hold_days(2.1, 0.9, MON, FIVE_DAY, o, c) == pytest.approx(o - 0.1)  # 02:24: waits to 08:00
    assert hold_days(2.9, 0.9, MON, FIVE_DAY, o, c) == pytest.approx(1 + o - 0.9)  # 21:36: next day
    # Saturday noon: goes with chance 0.5 (u < 0.5), else waits to Monday 08:00 (Sunday is closed)
    assert hold_days(5.5, 0.2, MON, FIVE_DAY, o, c) == 0.0
    assert hold_days(5.5, 0.7, MON, FIVE_DAY, o, c) == pytest.approx(7 + o - 5.5)
    # Friday 21:00 with u = 0.2: Saturday 08:00 is open to it
    assert hold_days(4 + 21 / 24, 0.2, MON, FIVE_DAY, o, c) == pytest.approx(5 + o - (4 + 21 / 24))
    # the calendar offset: the same day index on a scenario starting on a Saturday
    assert hold_days(0.5, 0.7, 5, FIVE_DAY, o, c) == pytest.approx(2 + o - 0.5)


def _ward(discharges=None, exits=None, run=364):
    pool = {"capacity": None}
    if discharges is not None:
        pool["discharges"] = discharges
    stage = {"stage": "s", "pool": "ward", "los": {"dist": "lognormal", "mean": 5.0, "cv": 0.8}}
    if exits is not None:
        stage["next"] = exits
    return scenario_from_dict({
        "name": "ward", "start": "2024-01-01", "warmup_days": 56, "run_days": run,
        "pools": {"ward": pool},
        "cohorts": {"c": {"arrivals": {"per_year": 365 * 20}, "pathway": [stage]}}})


def test_held_discharges_leave_only_at_permitted_times_and_deaths_are_not_held():
    sc = _ward({"weekday": list(FIVE_DAY), "hours": [8, 20]}, {"home": 0.9, "died": 0.1})
    network = compile_network(sc)
    table = demand.generate(network, 3, 0)
    trace = numba_core.run(network, table)
    last = last_visits(table.visit_start)
    left = last & ~np.isnan(trace.leave)
    due = trace.admit + table.visit_los
    held = left & (trace.leave > due)
    died = np.repeat(table.exit == -3, np.diff(table.visit_start))
    assert held.sum() > 1000
    assert not (held & died).any()  # deaths leave when their stay ends
    t = trace.leave[held]
    hour = (t - np.floor(t)) * 24
    weekday = np.floor(t).astype(int) % 7
    assert np.all((hour >= 8 - 1e-6) & (hour < 20))
    assert not np.any(weekday == 6)  # nobody goes home on a Sunday
    going = left & ~died
    tg = trace.leave[going]
    assert not np.any(np.floor(tg).astype(int) % 7 == 6)
    # a patient held past a permitted time would have gone then: never more than a week
    assert np.all(trace.leave[held] - due[held] < 7)


def test_weekly_cycle_and_beds_freed_by_seven_day_discharges():
    """The Derbyshire weekend-discharge scenario shows the weekly census cycle; discharging
    seven days a week frees acute beds, with a paired CI that excludes zero."""
    five = sim.load_scenario(ROOT / "configs/derbyshire/baseline_weekend_discharges.yaml")
    seven = sim.load_scenario(ROOT / "configs/derbyshire/seven_day_discharges.yaml")
    cmp = sim.compare([five, seven], replications=6, seed=4, jobs=1)
    a, b = cmp.runs
    by_day = weekday_means(a).set_index(["pool", "weekday"])
    rdh = by_day.loc["acute_rdh"]
    # census at the midnight starting each day: highest after the weekend (Sun, Mon), lowest
    # late in the week, and the swing is far beyond the CI of each weekday mean
    assert rdh["mean_census"].idxmax() in ("Sun", "Mon")
    swing = rdh["mean_census"].max() - rdh["mean_census"].min()
    half = (rdh["ci_high"] - rdh["ci_low"]).max() / 2
    assert swing > 10 * half and swing > 20
    flat = weekday_means(b).set_index(["pool", "weekday"]).loc["acute_rdh"]
    assert flat["mean_census"].max() - flat["mean_census"].min() < swing / 3
    diff = cmp.differences().set_index(["pool", "metric"])
    for pool in ("acute_rdh", "acute_crh", "acute_ooa"):
        row = diff.loc[(pool, "mean_occupancy")]
        assert row["ci_high"] < 0  # beds freed, CI excluding zero
        held = a.metric(pool, "discharge_held_pct")
        assert held.mean() > 1.0 and b.metric(pool, "discharge_held_pct").mean() < held.mean()
    summary = a.summary_json()["pools"]["acute_rdh"]
    assert summary["discharge_held_days"]["mean"] > 0
    assert summary["delayed_transfer_days"]["mean"] == 0  # holds are not delayed transfers


def test_no_rules_means_no_holds_and_nothing_changes():
    plain = sim.run(_ward(), replications=2, seed=1, jobs=1)
    open_all = sim.run(_ward({"hours": [0, 24]}), replications=2, seed=1, jobs=1)
    assert np.array_equal(plain.pool_values, open_all.pool_values)
    assert plain.metric("ward", "discharge_held_days").sum() == 0


@pytest.mark.parametrize("bad, where", [
    ({"weekday": [1, 1, 1]}, "pools.ward.discharges.weekday"),
    ({"weekday": [0] * 7}, "pools.ward.discharges.weekday"),
    ({"weekday": [1, 1, 1, 1, 1, -1, 1]}, "pools.ward.discharges.weekday[5]"),
    ({"hours": [20, 8]}, "pools.ward.discharges.hours"),
    ({"hours": [8, 25]}, "pools.ward.discharges.hours[1]"),
    ({"days": [1]}, "pools.ward.discharges.days"),
])
def test_bad_rules_name_their_yaml_path(bad, where):
    with pytest.raises(ScenarioError) as err:
        _ward(bad)
    assert where in str(err.value)
