"""Starting from today's census: residual stays, and agreement with a long warm-up."""

from __future__ import annotations

import numpy as np
import pytest

import sim
from sim import census_start, demand
from sim.engines import numba_core, simpy_model
from sim.los import Lognormal
from sim.network import compile_network
from sim.scenario import ScenarioError, scenario_from_dict

HEAVY = {"dist": "lognormal", "mean": 8.0, "cv": 2.5}  # heavy tail: long stays dominate bed days


def _doc(warmup, initial=None, los=HEAVY, per_year=3650.0, run=60):
    doc = {"name": "census", "start": "2021-01-01", "warmup_days": warmup, "run_days": run,
           "pools": {"ward": {"capacity": None}},
           "cohorts": {"c": {"arrivals": {"per_year": per_year},
                             "pathway": [{"stage": "s", "pool": "ward", "los": los}]}}}
    if initial is not None:
        doc["initial_census"] = initial
    return doc


def test_equilibrium_residual_has_the_stationary_excess_distribution():
    """In steady state the remaining stay has density sf(r)/E[L], with mean E[L^2]/(2E[L])."""
    dist = Lognormal(8.0, 1.5)
    rng = np.random.default_rng(1)
    r = census_start.equilibrium_residual(dist, rng.random(200_000), rng.random(200_000))
    expected = (dist.var() + dist.mean() ** 2) / (2 * dist.mean())
    # The excess distribution has a heavy tail; compare robustly via P(R > x) at a few points.
    for x in (1.0, 5.0, 20.0):
        grid = np.linspace(x, 2000.0, 200_001)
        sf_excess = np.trapezoid(dist.sf(grid), grid) / dist.mean()
        se = np.sqrt(sf_excess * (1 - sf_excess) / r.size)
        assert abs((r > x).mean() - sf_excess) < 5 * se
    assert np.median(r) < expected  # right-skewed, sanity


def test_conditional_residual_is_memoryless_for_exponential_and_not_otherwise():
    from sim.los import Exponential

    u = np.random.default_rng(2).random(100_000)
    exp = census_start.conditional_residual(Exponential(5.0), np.full(u.size, 12.0), u)
    assert abs(exp.mean() - 5.0) < 4 * 5.0 / np.sqrt(u.size)
    heavy = census_start.conditional_residual(Lognormal(8.0, 2.5), np.full(u.size, 12.0), u)
    assert heavy.mean() > 10.0  # long stays so far predict long stays to come


def _first_60_days(initial_residual, monkeypatch, reps=40):
    """Mean and SE of the census start's first 60 days, with a given residual-stay sampler."""
    monkeypatch.setattr(census_start, "equilibrium_residual", initial_residual)
    steady = 3650.0 / 365 * 8.0
    run = sim.run(scenario_from_dict(_doc(0, [{"pool": "ward", "count": round(steady)}])),
                  replications=reps, seed=6, jobs=1)
    census = run.census_days[:, 0, :60].astype(float)
    return census.mean(axis=0), census.var(axis=0, ddof=1) / reps


def test_census_start_matches_a_long_warmup_every_day(monkeypatch):
    """Mean census over the first 60 days: census start vs 365-day warm-up, within MC error."""
    reps = 40
    warm = sim.run(scenario_from_dict(_doc(365)), replications=reps, seed=5, jobs=1)
    a = warm.census_days[:, 0, :60].astype(float)
    a_mean, a_var = a.mean(axis=0), a.var(axis=0, ddof=1) / reps

    b_mean, b_var = _first_60_days(census_start.equilibrium_residual, monkeypatch, reps)
    z = (a_mean - b_mean) / np.sqrt(a_var + b_var)
    assert np.all(np.abs(z) < 4.0), z  # 60 days at once: a Bonferroni-sized bound

    def uniform_share_of_a_fresh_stay(dist, u, v):
        return (1.0 - v) * dist.ppf(u)

    n_mean, n_var = _first_60_days(uniform_share_of_a_fresh_stay, monkeypatch, reps)
    z_naive = (a_mean - n_mean) / np.sqrt(a_var + n_var)
    assert np.max(np.abs(z_naive)) > 8.0  # the naive draw empties the ward visibly too fast


def test_census_patients_are_first_and_replayed_identically():
    doc = _doc(0, [{"pool": "ward", "count": 30}], per_year=365.0)
    doc["pools"]["ward"]["capacity"] = 28
    net = compile_network(scenario_from_dict(doc))
    table = demand.generate(net, 3, 0)
    assert (table.candidate[:30] < 0).all() and (table.arrival[:30] == 0).all()
    a, b = numba_core.run(net, table), simpy_model.run(net, table)
    assert a.equals(b), a.differences(b)
    results = sim.run(scenario_from_dict(_doc(0, [{"pool": "ward", "count": 30}], per_year=365.0)),
                      replications=2, seed=1, jobs=1)
    assert results.admissions("c").mean() < 400  # census patients are not counted as admissions


def test_inpatient_file_with_admission_dates(tmp_path):
    csv = tmp_path / "inpatients.csv"
    csv.write_text("cohort,admitted\nc,2020-12-01\nc,2020-12-30\nc,2020-06-01\n")
    yaml_path = tmp_path / "s.yaml"
    import yaml

    yaml_path.write_text(yaml.safe_dump(_doc(0, [{"pool": "ward", "file": "inpatients.csv"}])))
    net = compile_network(sim.load_scenario(yaml_path))
    assert np.allclose(net.initial[0].elapsed, [31.0, 2.0, 214.0])
    table = demand.generate(net, 1, 0)
    assert (table.candidate < 0).sum() == 3


@pytest.mark.parametrize("entry, fragment", [
    ({"pool": "nowhere", "count": 3}, "initial_census[0].pool"),
    ({"pool": "ward", "count": 3, "mix": {"zz": 1.0}}, "initial_census[0].mix.zz"),
    ({"pool": "ward", "count": 3, "file": "x.csv"}, "initial_census[0]"),
    ({"pool": "ward", "count": -1}, "initial_census[0].count"),
])
def test_bad_census_entries_name_their_path(entry, fragment):
    with pytest.raises(ScenarioError) as exc:
        scenario_from_dict(_doc(0, [entry]))
    assert fragment in str(exc.value)
