"""`bedflow check-fit` compares a run's census with an observed series."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import sim
from sim import checkfit
from tests.helpers import single_pool


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    scenario = single_pool(3650, {"dist": "exponential", "mean": 5.0}, warmup=60, run=365)
    sim.run(scenario, replications=6, seed=4, jobs=1).save(out)
    return out


def _observed(path, values, pool="ward"):
    dates = pd.date_range("2020-03-01", periods=len(values), freq="D").strftime("%Y-%m-%d")
    pd.DataFrame({"date": dates, "pool": pool, "occupied": values}).to_csv(path, index=False)
    return path


def test_a_matching_series_fits_and_a_shifted_one_does_not(run_dir, tmp_path):
    rng = np.random.default_rng(0)
    results = sim.results.Results.load(run_dir)
    good = checkfit.check_fit(results, checkfit.read_observed(_observed(tmp_path / "g.csv", rng.poisson(50, 365))))
    bad = checkfit.check_fit(results, checkfit.read_observed(_observed(tmp_path / "b.csv", rng.poisson(65, 365))))
    g, b = good.table.iloc[0], bad.table.iloc[0]
    assert abs(g.mean_difference_pct) < 3 and g.share_observed_in_simulated_90pct > 0.8
    assert b.mean_difference_pct < -15 and b.share_observed_in_simulated_90pct < 0.5
    assert g.wasserstein_beds < b.wasserstein_beds and g.ks_pvalue > b.ks_pvalue


def test_cli_writes_table_and_plot(run_dir, tmp_path):
    obs = _observed(tmp_path / "obs.csv", np.random.default_rng(1).poisson(50, 100))
    proc = subprocess.run([sys.executable, "-m", "sim", "check-fit", str(run_dir), str(obs),
                           "--out", str(tmp_path / "fit")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "fit" / "check_fit.csv").exists()
    assert (tmp_path / "fit" / "check_fit_ward.png").stat().st_size > 1000


@pytest.mark.parametrize("content, fragment", [
    ("date,pool\n2020-01-01,ward\n", "missing column(s) occupied"),
    ("date,pool,occupied\n2020-01-01,ward,3\n01/02/2020,ward,4\n", "row 3, column date"),
    ("date,pool,occupied\n2020-01-01,ward,-3\n", "row 2, column occupied"),
    ("date,pool,occupied\n2020-01-01,icu,3\n", "not in the scenario"),
    ("", "empty"),
])
def test_bad_observed_files_exit_2_with_a_clear_message(run_dir, tmp_path, content, fragment):
    path = tmp_path / "obs.csv"
    path.write_text(content)
    proc = subprocess.run([sys.executable, "-m", "sim", "check-fit", str(run_dir), str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert fragment in proc.stderr and "Traceback" not in proc.stderr
