"""Sensitivity analysis: Sobol on Ishigami, exact Morris and OAT results, scenario parameters."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sim import sensitivity as sa
from sim.cli import main
from sim.scenario import ScenarioError, scenario_from_dict
from tests.helpers import single_pool
from tests.test_plots import check_png

PI = math.pi


def test_sobol_on_ishigami_matches_the_analytic_indices_within_salibs_cis():
    """The same code path as the simulator (a pluggable model), on a function with known indices."""
    params = [sa.Parameter(f"x{i}", -PI, PI) for i in (1, 2, 3)]
    table = sa.sobol(sa.ishigami, params, n=1024, seed=11)
    exact = sa.ishigami_indices()
    assert table.attrs["runs"] == 1024 * (3 + 2)
    for kind in ("S1", "ST"):
        est, conf, truth = table[kind].to_numpy(), table[f"{kind}_conf"].to_numpy(), exact[kind].to_numpy()
        assert np.all(conf < 0.1), conf  # the intervals are informative, so the check can fail
        assert np.all(np.abs(est - truth) <= conf), (kind, est, truth, conf)
    # the ordering a planner would read off: x2 matters most alone, x3 only through x1
    assert table["S1"][1] > table["S1"][0] > table["S1"][2]
    assert table["ST"][2] > 0.15 > abs(table["S1"][2])


def test_ishigami_indices_are_the_published_values():
    exact = sa.ishigami_indices()  # Saltelli et al. (2008), a = 7, b = 0.1
    np.testing.assert_allclose(exact["S1"], [0.3139, 0.4424, 0.0], atol=5e-5)
    np.testing.assert_allclose(exact["ST"], [0.5576, 0.4424, 0.2437], atol=5e-5)


def test_morris_elementary_effects_of_a_linear_model_are_its_coefficients():
    coef = np.array([2.0, -3.0, 0.0])
    params = [sa.Parameter(f"x{i}", 0.0, 1.0) for i in (1, 2, 3)]
    table = sa.morris(lambda X: X @ coef, params, trajectories=8, levels=4, seed=3)
    assert table.attrs["runs"] == 8 * 4
    np.testing.assert_allclose(table["mu"], coef, atol=1e-9)
    np.testing.assert_allclose(table["mu_star"], np.abs(coef), atol=1e-9)
    np.testing.assert_allclose(table["sigma"], 0.0, atol=1e-9)


def test_one_at_a_time_with_a_plain_function():
    params = [sa.Parameter("a", 0.0, 2.0), sa.Parameter("b", -1.0, 3.0)]
    table = sa.one_at_a_time(lambda X: X[:, 0] + 2 * X[:, 1] ** 2, params)
    row = table.set_index("parameter")
    # base is the middle of each range: a = 1, b = 1 -> 3
    assert row.loc["a", "base"] == 3.0
    assert (row.loc["a", "result_low"], row.loc["a", "result_high"]) == (2.0, 4.0)
    assert (row.loc["b", "result_low"], row.loc["b", "result_high"]) == (3.0, 19.0)
    assert list(table["parameter"]) == ["b", "a"]  # widest swing first


# --------------------------------------------------------------------------- scenario parameters


def small(per_year=3650.0, los=None, capacity=None, interventions=None):
    doc = {"name": "small", "start": "2020-01-01", "warmup_days": 100, "run_days": 1000,
           "pools": {"ward": {"capacity": capacity, "ward_size": 10}},
           "cohorts": {"p": {"arrivals": {"per_year": per_year},
                             "pathway": [{"stage": "s", "pool": "ward",
                                          "los": los or {"dist": "lognormal", "mean": 5.0, "cv": 1.0}}]}},
           "interventions": interventions or []}
    return scenario_from_dict(doc)


@pytest.mark.parametrize("los, mean", [
    ({"dist": "lognormal", "mean": 5.0, "cv": 1.0}, lambda d: d["mean"]),
    ({"dist": "lognormal", "mu": 1.2, "sigma": 0.8}, lambda d: math.exp(d["mu"] + d["sigma"] ** 2 / 2)),
    ({"dist": "gamma", "shape": 2.0, "scale": 3.0}, lambda d: d["shape"] * d["scale"]),
    ({"dist": "weibull", "mean": 4.0, "cv": 0.5}, lambda d: d["mean"]),
    ({"dist": "mixture", "components": [{"dist": "exponential", "mean": 2.0, "weight": 0.7},
                                        {"dist": "gamma", "shape": 2.0, "scale": 10.0, "weight": 0.3}]},
     lambda d: sum(c["weight"] * (c["mean"] if c.get("mean") else c["shape"] * c["scale"])
                   for c in d["components"])),
])
def test_a_los_factor_scales_the_mean_stay_and_keeps_the_shape(los, mean):
    model = sa.ScenarioModel(small(los=los), [sa.Parameter("los", 0.5, 1.5, ("cohorts.p.pathway[0].los",), True)],
                             sa.Metric(("ward",), "mean_occupancy"), replications=1)
    base = model.scenario.to_dict()["cohorts"]["p"]["pathway"][0]["los"]
    scaled = model.scenario_at([1.3]).to_dict()["cohorts"]["p"]["pathway"][0]["los"]
    assert mean(scaled) == pytest.approx(1.3 * mean(base))
    assert scaled["dist"] == base["dist"] and scaled.get("cv") == base.get("cv")
    assert scaled.get("sigma") == base.get("sigma") and scaled.get("shape") == base.get("shape")


def test_paths_wildcards_names_and_integer_values():
    ivs = [{"name": "falls", "type": "avoid", "cohorts": ["p"], "fraction": 0.1, "start": "2020-01-01"},
           {"name": "close", "type": "capacity", "pool": "ward", "wards": -1, "start": "2020-06-01"}]
    params = [sa.Parameter("falls size", 0.5, 1.5, ("interventions[name=falls].scale",)),
              sa.Parameter("beds", 0.8, 1.2, ("pools.*.capacity",), relative=True),
              sa.Parameter("growth", 0.0, 0.04, ("cohorts.*.arrivals.growth",))]
    model = sa.ScenarioModel(small(capacity=37, interventions=ivs), params,
                             sa.Metric(("ward",), "mean_occupancy"), replications=1)
    np.testing.assert_array_equal(model.base(), [1.0, 1.0, 0.0])
    s = model.scenario_at([1.5, 1.1, 0.03])
    # a wildcard sets the values that are given and skips the unset ones
    frac = sa.ScenarioModel(model.scenario, [sa.Parameter("f", 0.5, 2, ("interventions[*].fraction",), True)],
                            model.metric).scenario_at([2.0])
    assert frac.interventions[0].fraction == pytest.approx(0.2) and frac.interventions[1].fraction is None
    assert s.interventions[0].scale == 1.5 and s.interventions[1].scale == 1.0
    assert s.pools["ward"].capacity == 41 and isinstance(s.pools["ward"].capacity, int)  # 40.7
    assert s.cohorts["p"].arrivals.growth == 0.03
    assert model.scenario.pools["ward"].capacity == 37  # the base is never changed
    with pytest.raises(ScenarioError, match="matches nothing"):
        sa.ScenarioModel(model.scenario, [sa.Parameter("x", 0, 1, ("interventions[name=nope].scale",))],
                         model.metric)
    with pytest.raises(ScenarioError, match=r"\[at falls size = -1, beds = 1, growth = 0\] interventions\[0\]\.scale"):
        model.scenario_at([-1.0, 1.0, 0.0])  # a negative size is not a scenario
    with pytest.raises(ScenarioError, match="cannot scale a empirical"):
        sa.scale_los({"dist": "empirical", "file": "x.csv"}, 1.1, "cohorts.p.pathway[0].los")
    with pytest.raises(ValueError, match="low < high"):
        sa.Parameter("bad", 1.0, 1.0)


def test_metric_over_several_pools_plans_them_together():
    from sim.experiment import run
    from sim.metrics import risk_rule

    s = scenario_from_dict({
        "name": "two", "start": "2020-01-01", "warmup_days": 50, "run_days": 300,
        "pools": {"a": {"capacity": None}, "b": {"capacity": None}},
        "cohorts": {"p": {"arrivals": {"per_year": 3000},
                          "pathway": [{"stage": "s", "pool": {"a": 0.5, "b": 0.5},
                                       "los": {"dist": "exponential", "mean": 4.0}}]}}})
    r = run(s, replications=3, seed=2, jobs=1)
    both = sa.Metric(("a", "b"), "risk_rule").values(r)
    total = r.unconstrained_census.sum(axis=1)
    np.testing.assert_array_equal(both, [risk_rule(c, 0.05) for c in total])
    # pooling beds needs fewer than planning each pool for the same risk
    assert np.all(both <= sa.Metric(("a",)).values(r) + sa.Metric(("b",)).values(r))
    occ = sa.Metric(("a", "b"), "mean_occupancy").values(r)
    np.testing.assert_allclose(occ, r.metric("a", "mean_occupancy") + r.metric("b", "mean_occupancy"))
    with pytest.raises(ValueError, match="cannot be summed"):
        sa.Metric(("a", "b"), "census_p95")


def test_one_at_a_time_on_the_simulator_uses_common_random_numbers():
    """Stays 10% longer add 10% of lambda * E[LoS] = 5 beds; CRN makes that change precise."""
    params = [sa.Parameter("los", 0.9, 1.1, ("cohorts.p.pathway[0].los",), True),
              sa.Parameter("unused capacity", 50, 60, ("pools.ward.ward_size",))]
    model = sa.ScenarioModel(small(), params, sa.Metric(("ward",), "mean_occupancy"),
                             replications=6, seed=4)
    table = sa.one_at_a_time(model, params).set_index("parameter")
    n = model.replications
    t = stats.t.ppf(0.975, n - 1)
    for side, expect in (("high", 5.0), ("low", -5.0)):
        half = (table.loc["los", f"change_{side}_ci_high"] - table.loc["los", f"change_{side}_ci_low"]) / 2
        se = half / t
        assert abs(table.loc["los", f"change_{side}"] - expect) <= 4 * se, (side, table.loc["los"])
        result_half = (table.loc["los", f"result_{side}_ci_high"] - table.loc["los", f"result_{side}_ci_low"]) / 2
        assert half < 0.3 * result_half  # paired differences are far narrower than the results
    # a parameter that changes nothing gives exactly the base results
    assert table.loc["unused capacity", "change_low"] == table.loc["unused capacity", "change_high"] == 0.0


# --------------------------------------------------------------------------- experiment files


def write_spec(tmp_path, **changes):
    s = small()
    (tmp_path / "scenario.yaml").write_text(json.dumps(s.to_dict()))
    spec = {"name": "small-sens", "scenario": "scenario.yaml",
            "metric": {"pools": ["ward"], "name": "risk_rule"}, "replications": 2, "seed": 3,
            "parameters": [
                {"name": "stay", "paths": ["cohorts.p.pathway[0].los"], "scale": [0.9, 1.1]},
                {"name": "volume", "paths": ["cohorts.p.arrivals.per_year"], "scale": [0.95, 1.05]}],
            "methods": {"oat": {}, "sobol": {"n": 4}, "morris": {"trajectories": 2}}}
    spec.update(changes)
    path = tmp_path / "sens.yaml"
    path.write_text(json.dumps(spec))
    return path


def test_bedflow_sensitivity_writes_tables_and_charts(tmp_path, capsys):
    path = write_spec(tmp_path)
    out = tmp_path / "out"
    assert main(["sensitivity", str(path), "--out", str(out), "--quiet"]) == 0
    oat = pd.read_csv(out / "oat.csv")
    assert set(oat["parameter"]) == {"stay", "volume"}
    assert (oat["result_high"] > oat["result_low"]).all()  # more stays or patients need more beds
    sobol = pd.read_csv(out / "sobol.csv")
    assert list(sobol.columns) == ["parameter", "S1", "S1_conf", "ST", "ST_conf"]
    morris = pd.read_csv(out / "morris.csv")
    assert (morris["mu_star"] > 0).all()
    for name, kind in (("tornado", "tornado"), ("sobol", "sobol"), ("morris", "morris")):
        check_png(out / f"{name}.png", kind)
    manifest = json.loads((out / "sensitivity.json").read_text())
    assert manifest["runs"] == {"oat": 5, "sobol": 4 * (2 + 2), "morris": 2 * 3}
    assert manifest["metric"] == "risk_rule (ward)"
    assert "stay" in capsys.readouterr().out


def test_bad_sensitivity_files_exit_2_with_yaml_paths(tmp_path, capsys):
    path = write_spec(tmp_path, metric={"pools": ["nowhere"]}, parameters=[
        {"name": "a", "paths": ["cohorts.q.arrivals.per_year"], "scale": [0.9, 1.1]},
        {"name": "b", "paths": ["cohorts.p.arrivals.per_year"], "scale": [1.1, 0.9]}])
    with pytest.raises(ScenarioError) as exc:
        sa.load_spec(path)
    assert [p.path for p in exc.value.problems] == ["parameters[1]"]
    path = write_spec(tmp_path, metric={"pools": ["nowhere"]}, parameters=[
        {"name": "a", "paths": ["cohorts.q.arrivals.per_year"], "scale": [0.9, 1.1]}])
    with pytest.raises(ScenarioError) as exc:
        sa.load_spec(path)
    paths = [p.path for p in exc.value.problems]
    assert paths == ["metric.pools[0]", "parameters[0].paths: cohorts.q.arrivals.per_year"]
    assert main(["sensitivity", str(path)]) == 2
    err = capsys.readouterr().err
    assert "metric.pools[0]" in err and "Traceback" not in err
    assert main(["sensitivity", str(write_spec(tmp_path)), "--methods", "sobol,nope"]) == 2


@pytest.mark.slow
def test_worker_processes_give_the_same_outputs():
    params = [sa.Parameter("los", 0.9, 1.1, ("cohorts.p.pathway[0].los",), True)]
    metric = sa.Metric(("ward",), "risk_rule")
    X = np.array([[0.9], [1.0], [1.1]])
    one = sa.ScenarioModel(small(), params, metric, replications=2, jobs=1).replicate(X)
    two = sa.ScenarioModel(small(), params, metric, replications=2, jobs=2).replicate(X)
    np.testing.assert_array_equal(one, two)


def test_single_pool_helper_is_compatible():
    # the shared helper's scenarios plug in too
    model = sa.ScenarioModel(single_pool(365, {"dist": "exponential", "mean": 3.0}, run=200),
                             [sa.Parameter("mean", 2.0, 4.0, ("cohorts.patients.pathway[0].los.mean",))],
                             sa.Metric(("ward",), "mean_occupancy"), replications=1)
    assert model.scenario_at([4.0]).cohorts["patients"].pathway[0].los.mean == 4.0


def test_the_example_experiment_file_loads_with_feasible_corners():
    root = Path(__file__).resolve().parents[1]
    if not (root / "configs" / "derbyshire" / "stp_2020_21.yaml").exists():
        pytest.skip("the STP scenario is not in configs/derbyshire yet")
    spec, model = sa.load_spec(root / "experiments" / "sensitivity_acute_beds.yaml")
    assert model.metric.pools == ("acute_rdh", "acute_crh", "acute_ooa")
    assert len(model.parameters) == 6 and spec.methods.sobol.n == 32
    for corner in itertools.product(*[(p.low, p.high) for p in model.parameters]):
        model.scenario_at(corner)  # raises ScenarioError if the ranges make a lever infeasible


def test_sobol_n_override_must_be_a_power_of_two():
    from sim.cli import main

    exp = Path(__file__).resolve().parents[1] / "experiments/sensitivity_acute_beds.yaml"
    assert main(["sensitivity", str(exp), "--methods", "sobol", "--sobol-n", "3", "--quiet"]) == 2
