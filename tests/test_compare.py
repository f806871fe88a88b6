"""`sim.compare` / `bedflow compare`: common random numbers and paired differences with CIs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

import sim
from sim.cli import main
from sim.results import mean_ci
from tests.helpers import single_pool

REPS = 8


def ward(capacity: int, name: str):
    return single_pool(2190, {"dist": "lognormal", "mean": 4.0, "cv": 1.0}, capacity=capacity,
                       when_full="lose", warmup=30, run=400, name=name)


@pytest.fixture(scope="module")
def comparison():
    return sim.compare([ward(30, "thirty"), ward(27, "twenty-seven"), ward(30, "thirty")],
                       replications=REPS, seed=4, jobs=1)


def test_same_seed_means_same_patients(comparison) -> None:
    base, fewer, same = comparison.runs
    # Common random numbers: the same arrivals in every scenario, replication by replication.
    assert np.array_equal(base.metric("ward", "arrivals"), fewer.metric("ward", "arrivals"))
    assert np.array_equal(base.pool_values, same.pool_values)
    assert comparison.labels == ["thirty", "twenty-seven", "thirty#2"]


def test_paired_differences_and_their_cis(comparison) -> None:
    base, fewer, _ = comparison.runs
    diffs = comparison.differences()
    row = diffs[(diffs.scenario == "twenty-seven") & (diffs.metric == "lost")].iloc[0]
    paired = fewer.metric("ward", "lost") - base.metric("ward", "lost")
    mean, lo, hi = mean_ci(paired)
    assert (row.difference, row.ci_low, row.ci_high) == (mean, lo, hi)
    assert lo > 0  # three fewer beds lose more patients, and CRN makes that clear in 8 runs
    # Pairing removes the shared noise: the paired CI is narrower than the unpaired one would be.
    unpaired_se = np.sqrt(fewer.metric("ward", "lost").var(ddof=1) / REPS
                          + base.metric("ward", "lost").var(ddof=1) / REPS)
    assert paired.std(ddof=1) / np.sqrt(REPS) < unpaired_se
    same = diffs[diffs.scenario == "thirty#2"]
    assert (same.difference == 0).all() and (same.ci_low == 0).all() and (same.ci_high == 0).all()


def test_compare_json_document(comparison, tmp_path: Path) -> None:
    doc = comparison.compare_json()
    assert doc["baseline"] == "thirty" and doc["replications"] == REPS and doc["seed"] == 4
    assert set(doc["scenarios"]) == {"thirty", "twenty-seven", "thirty#2"}
    assert "difference" not in doc["scenarios"]["thirty"]
    est = doc["scenarios"]["twenty-seven"]["difference"]["ward"]["p_full_arrival"]
    diffs = comparison.differences()
    row = diffs[(diffs.scenario == "twenty-seven") & (diffs.metric == "p_full_arrival")].iloc[0]
    assert est["mean"] == pytest.approx(row.difference, abs=1e-6)
    assert est["ci95"][0] == pytest.approx(row.ci_low, abs=1e-6)
    assert doc["scenarios"]["twenty-seven"]["capacity"] == {"ward": 27}
    comparison.save(tmp_path)
    assert json.loads((tmp_path / "compare.json").read_text()) == doc
    assert (tmp_path / "compare.csv").read_text().startswith("scenario,baseline,pool,metric")


def test_cli_compare(tmp_path: Path, capsys) -> None:
    for cap in (30, 26):
        s = ward(cap, f"ward-{cap}").to_dict()
        (tmp_path / f"w{cap}.yaml").write_text(yaml.safe_dump(s))
    args = ["compare", str(tmp_path / "w30.yaml"), str(tmp_path / "w26.yaml"), "-n", "4",
            "--seed", "9", "-j", "1", "--out", str(tmp_path / "out")]
    assert main(args + ["--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc == json.loads((tmp_path / "out" / "compare.json").read_text())
    assert doc["scenarios"]["ward-26"]["difference"]["ward"]["lost"]["mean"] > 0
    assert main(args[:-2] + ["--quiet"]) == 0
    shown = capsys.readouterr().out
    assert "ward-26 minus ward-30" in shown and "% of arrivals finding it full" in shown


def test_cli_compare_config_errors_exit_2(tmp_path: Path, capsys) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(ward(30, "good").to_dict()))
    bad = tmp_path / "bad.yaml"
    doc = ward(30, "bad").to_dict()
    doc["pools"]["ward"]["capacity"] = -3
    bad.write_text(yaml.safe_dump(doc))
    with pytest.raises(SystemExit) as info:
        main(["compare", str(good), str(bad), "-n", "2"])
    assert info.value.code == 2
    assert "pools.ward.capacity" in capsys.readouterr().err
    assert main(["compare", str(good), "-n", "2"]) == 2
