"""Closing beds that have patients in them: drain, outlie and move conserve every patient."""

from __future__ import annotations

import numpy as np
import pytest

import sim
from sim import demand
from sim.engines import numba_core, simpy_model
from sim.engines.trace import LOST, MOVED, OUTLIED
from sim.network import compile_network
from sim.scenario import ScenarioError, scenario_from_dict

CUT_DAY = 120.0  # 2020-04-30


def _doc(on_reduction: str) -> dict:
    """Acute (30 beds, cut to 18 on day 120) then rehab for some; a spare ward to move into."""
    return {
        "name": f"cut-{on_reduction}", "start": "2020-01-01", "warmup_days": 30, "run_days": 270,
        "pools": {
            "acute": {"capacity": 30, "when_full": "queue", "on_reduction": on_reduction,
                      "capacity_changes": [{"date": "2020-04-30", "capacity": 18}]},
            "spare": {"capacity": 4, "when_full": "lose"},
            "rehab": {"capacity": 20, "when_full": "queue"}},
        "cohorts": {"c": {"arrivals": {"per_year": 365 * 7}, "pathway": [
            {"stage": "acute", "pool": "acute", "los": {"dist": "gamma", "mean": 3.5, "cv": 1.2},
             "next": {"rehab": 0.25, "home": 0.7, "died": 0.05}},
            {"stage": "rehab", "pool": "rehab",
             "los": {"dist": "lognormal", "mean": 9.0, "cv": 1.0}}]}}}


def _occupancy_at(trace, pool: int, t: float) -> int:
    """Beds of ``pool`` in use just after every event at time ``t``."""
    sel = (trace.log_pool == pool) & (trace.log_time <= t)
    return int(trace.log_delta[sel].astype(int).sum())


@pytest.mark.parametrize("policy", ["drain", "outlie", "move:spare"])
def test_every_patient_is_conserved_through_a_cut(policy):
    network = compile_network(scenario_from_dict(_doc(policy)))
    table = demand.generate(network, 9, 0)
    trace = numba_core.run(network, table)
    assert trace.equals(simpy_model.run(network, table))

    first = table.visit_start[:-1]
    last = table.visit_start[1:] - 1
    arrived = ~np.isnan(trace.request[first])
    admitted = arrived & ~np.isnan(trace.admit[first])
    lost_visit = (trace.flags & LOST) > 0
    # each visit index -> its patient, to find where each admitted patient is at the horizon
    patient = np.repeat(np.arange(table.n_patients), np.diff(table.visit_start))
    in_bed_v = ~np.isnan(trace.admit) & np.isnan(trace.leave)
    in_bed = np.bincount(patient[in_bed_v], minlength=table.n_patients) > 0
    lost = np.bincount(patient[lost_visit], minlength=table.n_patients) > 0
    discharged = ~np.isnan(trace.leave[last])
    left_on_loss = lost & ~discharged
    waiting_first = arrived & ~admitted & ~lost_visit[first]
    # admitted = discharged + in beds (outliers included) + waiting (in a bed, for a transfer),
    # with the patients turned away mid-pathway leaving through the loss
    assert np.all(in_bed_v.sum() == in_bed.sum())  # one bed per patient at most
    assert (in_bed.astype(int) + discharged + left_on_loss == admitted).all()
    assert not (waiting_first & (in_bed | discharged)).any()
    assert admitted.sum() == discharged.sum() + in_bed.sum() + left_on_loss.sum()

    # beds by the occupancy log, plus outliers, equal the patients still in beds
    occ = np.bincount(trace.log_pool, weights=trace.log_delta, minlength=network.n_pools)
    outlying = (in_bed_v & ((trace.flags & OUTLIED) > 0)).sum()
    assert occ.sum() + outlying == in_bed.sum()

    acute, spare = network.pool_index("acute"), network.pool_index("spare")
    before = _occupancy_at(trace, acute, CUT_DAY - 1e-9)
    after = _occupancy_at(trace, acute, CUT_DAY)
    assert before > 18 + 5  # the cut really leaves patients above the new capacity
    taken = np.flatnonzero(trace.moved_at == CUT_DAY)
    if policy == "drain":
        assert after == before and taken.size == 0
        # no admission to acute until it is back within 18 beds
        sel = (trace.log_pool == acute) & (trace.log_time >= CUT_DAY)
        path = before + np.cumsum(trace.log_delta[sel].astype(int))
        first_in = np.flatnonzero(trace.log_delta[sel] > 0)[0]
        assert path[first_in] <= 18 and path[:first_in].min() >= 17
    else:
        assert after == 18 and taken.size == before - 18
        flag = OUTLIED if policy == "outlie" else MOVED
        assert np.all(trace.flags[taken] & flag)
        # the ones taken out are those due to stay longest (no holds here: due = admit + LoS)
        due = trace.admit + table.visit_los
        in_service = (trace.used_pool == acute) & (trace.admit < CUT_DAY) & (due >= CUT_DAY)
        kept = in_service & np.isnan(trace.moved_at)
        assert due[taken].min() >= due[kept].max()
        if policy == "move:spare":
            assert _occupancy_at(trace, spare, CUT_DAY) - _occupancy_at(
                trace, spare, CUT_DAY - 1e-9) == taken.size


def test_cut_metrics_in_the_summary():
    results = sim.run(scenario_from_dict(_doc("move:spare")), replications=3, seed=2, jobs=1)
    pools = results.summary_json()["pools"]
    assert results.metric("acute", "moved_out").min() > 0
    assert pools["acute"]["moved_out"]["mean"] > 0
    assert pools["acute"]["outliers"]["mean"] == 0
    out = sim.run(scenario_from_dict(_doc("outlie")), replications=3, seed=2, jobs=1)
    acute = out.summary_json()["pools"]["acute"]
    assert out.metric("acute", "outliers").min() > 0 and acute["outlier_days"]["mean"] > 1
    # outliers leave acute's beds at once: its occupancy falls below the drained run's
    drained = sim.run(scenario_from_dict(_doc("drain")), replications=3, seed=2, jobs=1)
    assert out.metric("acute", "bed_days").mean() < drained.metric("acute", "bed_days").mean()


@pytest.mark.parametrize("value, message", [
    ("move:nowhere", "unknown pool 'nowhere'"),
    ("move:acute", "moves patients to itself"),
    ("evict", "must be 'drain', 'outlie' or 'move:<pool>'"),
])
def test_bad_reduction_policies_name_their_yaml_path(value, message):
    with pytest.raises(ScenarioError) as err:
        scenario_from_dict(_doc(value))
    text = str(err.value)
    assert "pools.acute.on_reduction" in text and message in text
