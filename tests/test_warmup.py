"""MSER-5 finds known transients; the precision rule stops at the first adequate count."""

from __future__ import annotations

import numpy as np
import pytest

from sim.results import mean_ci
from sim.warmup import BATCH, choose_warmup, first_precise_count, mser, run_to_precision
from tests.helpers import single_pool


@pytest.mark.parametrize("transient", [40, 53, 120])
def test_mser5_finds_a_step_transient(transient):
    rng = np.random.default_rng(transient)
    series = rng.normal(0.0, 1.0, 600)
    series[:transient] += 8.0
    d = mser(series)
    # Documented error: one batch (the truncation is a multiple of 5 observations).
    assert transient <= d < transient + BATCH


def test_mser5_keeps_a_stationary_series():
    series = np.random.default_rng(3).normal(0.0, 1.0, 500)
    assert mser(series) <= 10 * BATCH


def test_choose_warmup_on_an_emptying_start():
    """An M/G/inf ward starting empty fills over a few mean stays; MSER-5 sees that."""
    scenario = single_pool(3650, {"dist": "exponential", "mean": 10.0}, warmup=0, run=400)
    choice = choose_warmup(scenario, replications=5, seed=2)
    assert 10 <= choice.days <= 120
    assert choice.by_pool == {"ward": choice.days}


def test_first_precise_count_is_the_first():
    values = np.random.default_rng(5).normal(100.0, 10.0, 200)
    n = first_precise_count([values], precision=0.02)
    def ok(k):
        m, lo, hi = mean_ci(values[:k])
        return (hi - lo) / 2 <= 0.02 * abs(m)
    assert n is not None and ok(n)
    assert not any(ok(k) for k in range(3, n))


def test_run_to_precision_adds_batches_until_met():
    rng = np.random.default_rng(9)
    pool = rng.normal(50.0, 5.0, 1000)
    calls = []

    def run_batch(start, stop):
        calls.append((start, stop))
        return pool[:stop]

    results, n = run_to_precision(run_batch, lambda r: [r], precision=0.01, batch=7)
    assert n == first_precise_count([pool[: calls[-1][1]]], 0.01)
    assert calls[0] == (0, 7) and all(b[0] == a[1] for a, b in zip(calls, calls[1:], strict=False))
    assert calls[-1][1] - 7 < n <= calls[-1][1]


def test_cli_warmup_auto_and_precision_are_recorded_and_reproducible(tmp_path):
    """`bedflow run --warmup auto --precision`: the manifest says what was chosen, and the
    grown run equals a fixed-size run of the replication count it stopped at."""
    import json

    import yaml

    import sim
    from sim.cli import main
    from sim.results import Results

    scenario = single_pool(3650.0, {"dist": "lognormal", "mean": 4.0, "cv": 1.0}, warmup=0,
                           run=200.0)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(scenario.to_dict()))
    out = tmp_path / "run"
    assert main(["run", str(path), "--warmup", "auto", "--precision", "0.01", "-n", "4",
                 "--seed", "3", "--jobs", "1", "--out", str(out), "--quiet"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    warm, prec = manifest["warmup"], manifest["precision"]
    assert warm["days"] >= 5 and warm["by_pool"]["ward"] == warm["days"]  # the pool fills up
    assert prec["met"] and prec["replications"] <= prec["replications_run"]
    assert prec["replications_run"] - 4 < prec["replications"]
    saved = Results.load(out)
    fixed = sim.run(scenario.model_copy(update={"warmup_days": warm["days"]}),
                    replications=prec["replications"], seed=3, jobs=1)
    assert (saved.pool_values == fixed.pool_values).all()
    values = fixed.metric("ward", "mean_occupancy")
    assert first_precise_count([values], 0.01) == prec["replications"]
