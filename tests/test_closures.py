"""Ward-closure search: checked against Erlang B on a single loss pool (M/G/c/c)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from sim import batch
from sim.scenario import ScenarioError
from tests.helpers import erlang_b

PER_YEAR, MEAN_LOS = 2190.0, 4.0  # offered load A = 2190 / 365 * 4 = 24 beds
LIMIT = 0.035  # Erlang B: B(30, 24) = 0.0401 > 0.035 >= B(31, 24) = 0.0301
BASE_CAPACITY = 40


def smallest_capacity(a: float, limit: float) -> int:
    c = 0
    while erlang_b(c, a) > limit:
        c += 1
    return c


def write_case(tmp_path: Path, method: str, replications: int = 12, **closures) -> Path:
    scenario = {
        "name": "loss-ward", "start": "2020-01-01", "warmup_days": 50, "run_days": 1000,
        "pools": {"ward": {"capacity": BASE_CAPACITY, "when_full": "lose", "ward_size": 1}},
        "cohorts": {"patients": {"arrivals": {"per_year": PER_YEAR}, "pathway": [
            {"stage": "stay", "pool": "ward",
             "los": {"dist": "lognormal", "mean": MEAN_LOS, "cv": 1.0}}]}},
    }
    (tmp_path / "ward.yaml").write_text(yaml.safe_dump(scenario))
    exp = {"name": f"closures-{method}", "kind": "ward_closures", "base": "ward.yaml",
           "replications": replications, "seed": 7, "block_size": 6,
           "closures": {"pool": "ward", "limit": {"metric": "p_full_arrival", "max": LIMIT},
                        "max_wards": 15, "method": method, **closures},
           "outputs": {"census": False}}
    path = tmp_path / f"closures_{method}.yaml"
    path.write_text(yaml.safe_dump(exp))
    return path


@pytest.mark.parametrize("method", ["scan", "bisection"])
def test_capacity_found_matches_erlang_b(tmp_path: Path, method: str) -> None:
    exp = batch.load_experiment(write_case(tmp_path, method))
    report = batch.run_experiment(exp, tmp_path / "out", jobs=1)
    found = report["closures"]["capacity"]
    expected = smallest_capacity(PER_YEAR / 365 * MEAN_LOS, LIMIT)
    assert expected == 31
    assert abs(found - expected) <= 1
    saved = json.loads((tmp_path / "out" / "closures.json").read_text())
    assert saved["capacity"] == found
    assert (tmp_path / "out" / "frontier.csv").read_text().startswith("wards_closed,capacity,mean")
    if method == "bisection":  # evaluates O(log n) variants, not all 16
        assert len(saved["frontier"]) <= 2 + math.ceil(math.log2(16))


def test_scan_frontier_follows_erlang_b_within_standard_errors(tmp_path: Path) -> None:
    replications = 12
    exp = batch.load_experiment(write_case(tmp_path, "scan", replications))
    report = batch.run_experiment(exp, tmp_path / "out", jobs=1)
    frontier = report["closures"]["frontier"]
    assert [r["wards_closed"] for r in frontier] == list(range(16))
    a = PER_YEAR / 365 * MEAN_LOS
    for row in frontier:
        # The CI half-width is t(0.975, n-1) * SE; allow 2 half-widths (about 4 SE) of error.
        half = (row["ci_high"] - row["ci_low"]) / 2
        assert abs(row["mean"] - erlang_b(row["capacity"], a)) <= 2 * half, row
    means = np.array([r["mean"] for r in frontier])
    assert np.all(np.diff(means) > 0)  # common random numbers: risk rises with every ward closed


def test_bisection_and_scan_agree(tmp_path: Path) -> None:
    scan = batch.run_experiment(batch.load_experiment(write_case(tmp_path, "scan")),
                                tmp_path / "scan", jobs=1)["closures"]
    bis = batch.run_experiment(batch.load_experiment(write_case(tmp_path, "bisection")),
                               tmp_path / "bis", jobs=1)["closures"]
    assert scan["max_wards_closed"] == bis["max_wards_closed"]
    by_k = {r["wards_closed"]: r for r in scan["frontier"]}
    for row in bis["frontier"]:  # same seed, same variant: the very same numbers
        assert row == by_k[row["wards_closed"]]


def test_closure_config_errors_have_yaml_paths(tmp_path: Path) -> None:
    path = write_case(tmp_path, "scan", max_wards=41)
    with pytest.raises(ScenarioError) as info:
        batch.run_experiment(batch.load_experiment(path), tmp_path / "out", jobs=1)
    assert any(p.path == "closures.max_wards" for p in info.value.problems)

    doc = yaml.safe_load(path.read_text())
    doc["closures"]["pool"] = "nowhere"
    doc["closures"]["limit"] = {"metric": "no_such_metric", "max": 0.1}
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ScenarioError) as info:
        batch.load_experiment(path)
    assert any(p.path.startswith("closures.limit") and "unknown metric" in p.message
               for p in info.value.problems)

    doc["closures"]["limit"] = {"metric": "mean_wait_hours", "max": 4}
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ScenarioError) as info:
        batch.run_experiment(batch.load_experiment(path), tmp_path / "out2", jobs=1)
    assert [p.path for p in info.value.problems] == ["closures.pool"]

    scenario = yaml.safe_load((tmp_path / "ward.yaml").read_text())
    scenario["pools"]["ward"].pop("ward_size")
    (tmp_path / "ward.yaml").write_text(yaml.safe_dump(scenario))
    doc["closures"]["pool"] = "ward"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ScenarioError) as info:
        batch.run_experiment(batch.load_experiment(path), tmp_path / "out3", jobs=1)
    assert [p.path for p in info.value.problems] == ["closures.ward_size"]
