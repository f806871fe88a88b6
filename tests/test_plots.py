"""Figures: every PNG a run writes decodes, is not blank and has the documented size."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

import sim
from sim import plots
from sim.cli import main
from sim.metrics import risk_rule
from sim.results import Comparison
from sim.scenario import scenario_from_dict

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "configs" / "derbyshire" / "baseline_2015_16.yaml"


def check_png(data: bytes | Path, kind: str) -> np.ndarray:
    """Decode a PNG, check its size is SIZES[kind] * DPI and that it is not blank."""
    src = io.BytesIO(data) if isinstance(data, bytes) else data
    img = mpimg.imread(src, format="png")
    width, height = plots.SIZES[kind]
    assert img.shape[:2] == (round(height * plots.DPI), round(width * plots.DPI))
    assert img[..., :3].var() > 1e-4  # axes, text and data, not a blank canvas
    return img


@pytest.fixture(scope="session")
def baseline_run(tmp_path_factory):
    """`bedflow run` of the Derbyshire baseline into a run folder (shared with test_report)."""
    out = tmp_path_factory.mktemp("baseline")
    code = main(["run", str(BASELINE), "--replications", "3", "--jobs", "1", "--seed", "7",
                 "--out", str(out), "--quiet"])
    assert code == 0
    return out


def test_run_writes_every_plot_of_every_pool(baseline_run):
    results = sim.results.Results.load(baseline_run)
    assert len(results.pool_names) == len(results.scenario.pools) >= 6
    for pool in results.pool_names:
        for kind in plots.RUN_PLOTS:
            check_png(baseline_run / f"{kind}_{pool}.png", kind)
    assert not list(baseline_run.glob(".*.tmp")), "no temporary file may be left behind"


def test_forked_renderers_write_the_same_plots(baseline_run, tmp_path):
    """Plots rendered by two forked processes are the files written by one (the run folder's,
    from `--jobs 1`). In a fresh interpreter: this one may have threads (earlier tests), and
    then write_run_plots does not fork."""
    import subprocess
    import sys

    if not sys.platform.startswith("linux"):
        pytest.skip("renderers are forked on Linux only")
    code = ("import sys; from pathlib import Path; import sim.plots, sim.results\n"
            "from sim.executors import start_method\n"
            "assert start_method() == 'fork', start_method()\n"
            "r = sim.results.Results.load(sys.argv[1])\n"
            "sim.plots.write_run_plots(r, Path(sys.argv[2]), jobs=2)\n")
    subprocess.run([sys.executable, "-c", code, str(baseline_run), str(tmp_path)], check=True)
    written = sorted(p.name for p in tmp_path.glob("*.png"))
    assert written == sorted(p.name for p in baseline_run.glob("*.png")) and len(written) >= 18
    for name in written:
        assert (tmp_path / name).read_bytes() == (baseline_run / name).read_bytes(), name


def changing_capacity(capacity: int = 30) -> sim.scenario.Scenario:
    return scenario_from_dict({
        "name": "changes", "start": "2020-01-01", "warmup_days": 30, "run_days": 200,
        "pools": {"ward": {"capacity": capacity, "when_full": "queue",
                           "capacity_changes": [{"date": "2020-03-01", "capacity": 25},
                                                {"date": "2020-05-10", "capacity": None}]}},
        "cohorts": {"p": {"arrivals": {"per_year": 2000},
                          "pathway": [{"stage": "s", "pool": "ward",
                                       "los": {"dist": "exponential", "mean": 4.0}}]}},
    })


def test_capacity_by_day_follows_the_dated_changes():
    results = sim.run(changing_capacity(), replications=2, seed=1, jobs=1)
    cap = plots.capacity_by_day(results, "ward")
    dates = pd.Timestamp("2020-01-31") + pd.to_timedelta(np.arange(cap.size), unit="D")
    assert dates[0].date() == sim.results.Results.census(results)["date"].iloc[0]
    expect = np.where(dates < "2020-03-01", 30.0, np.where(dates < "2020-05-10", 25.0, np.nan))
    np.testing.assert_array_equal(cap, expect)
    fig = plots.census_fan(results, "ward")
    notes = [t.get_text() for t in fig.axes[0].texts]
    assert notes == ["01 Mar 2020: 25 beds", "10 May 2020: unlimited"]
    check_png(plots.png_bytes(fig), "census")


def test_exceedance_and_risk_curve_mark_both_rules():
    rng = np.random.default_rng(3)
    census = rng.poisson(40, size=(4, 500))
    beds = np.arange(20, 70)
    brute = np.array([(census > c).mean() for c in beds])
    np.testing.assert_allclose(plots.exceedance(census, beds), brute)
    # the risk rule is the first c whose exceedance is at most epsilon
    c = risk_rule(census, 0.05)
    assert plots.exceedance(census, np.array([c]))[0] <= 0.05 < plots.exceedance(census, np.array([c - 1]))[0]

    results = sim.run(changing_capacity(), replications=3, seed=1, jobs=1)
    needed = results.beds_needed("ward")
    fig = plots.risk_curve(results, "ward")
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert any(f"risk rule: {needed['risk_rule']} beds" in s for s in labels)
    assert any(f"{needed['stp_rule']} beds, full on" in s for s in labels)
    check_png(plots.png_bytes(fig), "risk")
    check_png(plots.png_bytes(plots.occupancy_histogram(results, "ward")), "occupancy")


def lever_scenarios():
    """Baseline, growth, then two levers, each adding one change (a tiny STP)."""
    def make(name, per_year, los_mean):
        return scenario_from_dict({
            "name": name, "start": "2020-01-01", "warmup_days": 60, "run_days": 365,
            "pools": {"a": {"capacity": None}, "b": {"capacity": None}},
            "cohorts": {
                "old": {"arrivals": {"per_year": per_year},
                        "pathway": [{"stage": "s", "pool": "a",
                                     "los": {"dist": "lognormal", "mean": los_mean, "cv": 1.2}}]},
                "young": {"arrivals": {"per_year": 2000},
                          "pathway": [{"stage": "s", "pool": "b",
                                       "los": {"dist": "exponential", "mean": 2.0}}]}},
        })
    return [make("baseline", 3000, 6.0), make("do nothing", 3300, 6.0),
            make("+ shorter stays", 3300, 5.4), make("+ fewer admissions", 2900, 5.4)]


def test_waterfall_steps_are_paired_differences_that_add_up():
    runs = [sim.run(s, replications=8, seed=5, jobs=1) for s in lever_scenarios()]
    table = plots.waterfall_table(Comparison(runs), ["a", "b"], "mean_occupancy")
    assert list(table["kind"]) == ["total", "step", "step", "step", "total"]
    total = [r.metric("a", "mean_occupancy") + r.metric("b", "mean_occupancy") for r in runs]
    assert table["value"].iloc[0] == pytest.approx(total[0].mean())
    assert table["value"].iloc[-1] == pytest.approx(total[-1].mean())
    assert table["value"].iloc[0] + table["value"].iloc[1:4].sum() == pytest.approx(total[-1].mean())
    for i in range(1, 4):
        assert table["value"].iloc[i] == pytest.approx((total[i] - total[i - 1]).mean())
        assert table["ci_low"].iloc[i] < table["value"].iloc[i] < table["ci_high"].iloc[i]
    # growth adds ~10% of the old cohort's beds, shorter stays remove ~10%, both clearly signed
    assert table["ci_low"].iloc[1] > 0 and table["ci_high"].iloc[2] < 0 and table["ci_high"].iloc[3] < 0
    # common random numbers: the growth step is far more precise than either total
    step_width = table["ci_high"].iloc[1] - table["ci_low"].iloc[1]
    assert step_width < 0.5 * (table["ci_high"].iloc[0] - table["ci_low"].iloc[0])
    fig = plots.waterfall(runs, ["a", "b"], "stp_rule",
                          labels=["baseline", "growth", "step-down", "proactive care"],
                          total_label="do something")
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == [
        "baseline", "growth", "step-down", "proactive care", "do something"]
    check_png(plots.png_bytes(fig), "waterfall")
    with pytest.raises(ValueError, match="at least two"):
        plots.waterfall_table(runs[:1], ["a"])


def test_frontier_tornado_sobol_and_morris_charts():
    frontier = pd.DataFrame({"wards_closed": [0, 1, 2, 3, 4],
                             "mean": [0.01, 0.02, 0.04, 0.08, 0.15],
                             "ci_low": [0.008, 0.017, 0.035, 0.07, 0.13],
                             "ci_high": [0.012, 0.023, 0.045, 0.09, 0.17]})
    fig = plots.frontier(frontier, "share of arrivals finding the ward full", limit=0.05)
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert "most wards closable (upper 95% bound within limit): 2" in labels
    assert "most wards closable (mean within limit): 2" in labels
    # a non-monotone frontier stops at the first k over the limit
    bumpy = frontier.assign(mean=[0.01, 0.06, 0.04, 0.03, 0.15], ci_high=[0.02, 0.07, 0.045, 0.04, 0.2])
    labels = plots.frontier(bumpy, limit=0.05).axes[0].get_legend_handles_labels()[1]
    assert "most wards closable (mean within limit): 0" in labels
    check_png(plots.png_bytes(fig), "frontier")
    with pytest.raises(ValueError, match="ci_high"):
        plots.frontier(frontier.drop(columns="ci_high"))

    tornado = pd.DataFrame({"parameter": ["small", "big", "middle"], "low": [0.9, 0.0, 0.5],
                            "high": [1.1, 0.04, 1.5], "base": 100.0,
                            "result_low": [99.0, 80.0, 95.0], "result_high": [101.0, 130.0, 104.0]})
    fig = plots.tornado(tornado)
    names = [t.get_text().split(" [")[0] for t in fig.axes[0].get_yticklabels()]
    assert names == ["small", "middle", "big"]  # widest swing at the top
    check_png(plots.png_bytes(fig), "tornado")

    sobol = pd.DataFrame({"parameter": ["x1", "x2"], "S1": [0.3, 0.6], "S1_conf": [0.05, 0.05],
                          "ST": [0.35, 0.65], "ST_conf": [0.04, 0.04]})
    check_png(plots.png_bytes(plots.sobol_chart(sobol)), "sobol")
    morris = pd.DataFrame({"parameter": ["x1", "x2"], "mu_star": [1.0, 3.0], "sigma": [0.1, 2.0],
                           "mu_star_conf": [0.2, 0.5]})
    check_png(plots.png_bytes(plots.morris_chart(morris)), "morris")


def test_capacity_interventions_show_on_the_capacity_line():
    doc = changing_capacity().to_dict()
    doc["pools"]["ward"].update(capacity_changes=[], ward_size=10)
    doc["interventions"] = [{"name": "close a ward", "type": "capacity", "pool": "ward",
                             "wards": -1, "start": "2020-04-01"}]
    results = sim.run(scenario_from_dict(doc), replications=2, seed=1, jobs=1)
    cap = plots.capacity_by_day(results, "ward")
    dates = pd.Timestamp("2020-01-31") + pd.to_timedelta(np.arange(cap.size), unit="D")
    np.testing.assert_array_equal(cap, np.where(dates < "2020-04-01", 30.0, 20.0))
    fig = plots.occupancy_histogram(results, "ward")
    assert "capacity 20 (at end of window)" in fig.axes[0].get_legend_handles_labels()[1]
    check_png(plots.png_bytes(fig), "occupancy")
