"""Input uncertainty: ranges load as point values, are sampled per replication, and collapse exactly."""

from __future__ import annotations

import numpy as np
import pytest

import sim
from sim import uncertainty
from sim.scenario import ScenarioError, scenario_from_dict


def _doc(per_year, los_mean, capacity=20):
    return {"name": "u", "start": "2020-01-01", "warmup_days": 30, "run_days": 200,
            "pools": {"ward": {"capacity": capacity, "when_full": "queue"}},
            "cohorts": {"c": {"arrivals": {"per_year": per_year},
                              "pathway": [{"stage": "s", "pool": "ward",
                                           "los": {"dist": "lognormal", "mean": los_mean, "cv": 1.0}}]}}}


def test_ranges_load_as_their_mean_and_are_remembered():
    s = scenario_from_dict(_doc({"low": 1800, "high": 2200}, {"dist": "normal", "mean": 4.0, "sd": 0.4},
                                capacity={"low": 18, "high": 22}))
    assert s.cohorts["c"].arrivals.per_year == 2000
    assert s.cohorts["c"].pathway[0].los.mean == 4.0
    assert s.pools["ward"].capacity == 20
    paths = {p.path for p in s.uncertain_parameters}
    assert paths == {"cohorts.c.arrivals.per_year", "cohorts.c.pathway[0].los.mean", "pools.ward.capacity"}
    again = scenario_from_dict(s.to_dict())  # the specs survive a manifest round trip
    assert {p.path for p in again.uncertain_parameters} == paths


def test_bad_ranges_are_reported_with_their_paths():
    with pytest.raises(ScenarioError) as exc:
        scenario_from_dict(_doc({"low": 5, "high": 1}, {"dist": "normal", "mean": 4.0, "sd": -1}))
    text = str(exc.value)
    assert "cohorts.c.arrivals.per_year" in text and "cohorts.c.pathway[0].los.mean.sd" in text


def test_each_replication_draws_its_own_values_reproducibly():
    s = scenario_from_dict(_doc({"low": 1000, "high": 3000}, 4.0, capacity={"low": 10, "high": 30}))
    draws = [uncertainty.sample(s, 1, r) for r in range(40)]
    per_year = np.array([d.cohorts["c"].arrivals.per_year for d in draws])
    caps = np.array([d.pools["ward"].capacity for d in draws])
    assert per_year.min() >= 1000 and per_year.max() <= 3000 and per_year.std() > 300
    assert set(caps) <= set(range(10, 31)) and len(set(caps)) > 5
    assert uncertainty.sample(s, 1, 7).to_dict() == draws[7].to_dict()


def test_collapsed_ranges_equal_the_plain_run_exactly():
    plain = sim.run(scenario_from_dict(_doc(2000, 4.0)), replications=4, seed=3, jobs=1)
    ranged = sim.run(scenario_from_dict(_doc({"low": 2000, "high": 2000},
                                             {"dist": "normal", "mean": 4.0, "sd": 0.0},
                                             capacity={"low": 20, "high": 20})),
                     replications=4, seed=3, jobs=1)
    assert np.array_equal(plain.pool_values, ranged.pool_values)
    assert np.array_equal(plain.census_days, ranged.census_days)


def test_decomposition_attributes_spread_to_parameters():
    wide = scenario_from_dict(_doc({"low": 1000, "high": 3000}, 4.0, capacity=None))
    table = uncertainty.decompose(wide, replications=12, seed=2, jobs=1).table
    row = table[(table.pool == "ward") & (table.metric == "mean_occupancy")].iloc[0]
    # Mean occupancy = per_year/365 * 4: the range gives an sd of ~6.3 beds, noise ~0.5.
    assert row.parameter_share > 0.9
    assert row.noise_sd < row.total_sd
