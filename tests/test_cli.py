"""The `bedflow` command: run folders, --json output, validate, schema, and bad input.

Bad scenarios must give exit code 2 and a message naming the YAML path of each problem, never a
traceback. Every broken case runs in-process through ``sim.cli.main`` for `validate` and `run`;
a few also run as real processes here, and all of them do under ``-m slow``.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from sim.cli import main
from sim.scenario import set_path

ROOT = Path(__file__).resolve().parents[1]
SINGLE_WARD = ROOT / "configs" / "examples" / "single_ward.yaml"
SHIPPED = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "configs").rglob("*.yaml"))

BASE: dict[str, Any] = {
    "name": "broken-test", "start": "2020-01-01", "warmup_days": 10, "run_days": 50,
    "pools": {"acute": {"capacity": 10, "when_full": "queue"}, "rehab": {"capacity": None}},
    "cohorts": {"emergencies": {
        "arrivals": {"per_year": 1000},
        "pathway": [
            {"stage": "acute", "pool": "acute", "los": {"dist": "lognormal", "mean": 4.0, "cv": 1.0},
             "next": {"rehab": 0.3, "home": 0.7}},
            {"stage": "rehab", "pool": "rehab", "los": {"dist": "gamma", "mean": 10.0, "cv": 0.8}},
        ]}},
}
C = "cohorts.emergencies"

#: id -> (edits as {dotted path: value}, text the error output must contain).
BROKEN: dict[str, tuple[dict[str, Any], str]] = {
    "negative_rate": ({f"{C}.arrivals.per_year": -5}, f"{C}.arrivals.per_year: must be > 0"),
    "zero_rate": ({f"{C}.arrivals.per_year": 0}, f"{C}.arrivals.per_year: must be > 0"),
    "los_mean_zero": ({f"{C}.pathway[0].los.mean": 0}, f"{C}.pathway[0].los.mean"),
    "los_mean_negative": ({f"{C}.pathway[1].los.mean": -2.5}, f"{C}.pathway[1].los.mean"),
    "cv_negative": ({f"{C}.pathway[0].los.cv": -0.5}, f"{C}.pathway[0].los.cv: must be >= 0"),
    "next_not_summing_to_1": ({f"{C}.pathway[0].next": {"rehab": 0.3, "home": 0.6}},
                              f"{C}.pathway[0].next: probabilities must sum to 1"),
    "pool_split_not_summing_to_1": ({f"{C}.pathway[0].pool": {"acute": 0.5, "rehab": 0.6}},
                                    f"{C}.pathway[0].pool: probabilities must sum to 1"),
    "unknown_pool": ({f"{C}.pathway[1].pool": "ward9"}, f"{C}.pathway[1].pool: unknown pool"),
    "unknown_stage": ({f"{C}.pathway[0].next": {"rehabb": 0.3, "home": 0.7}},
                      f"{C}.pathway[0].next.rehabb: unknown stage"),
    "cycle_without_exit": ({f"{C}.pathway[0].next": {"rehab": 1.0},
                            f"{C}.pathway[1].next": {"acute": 1.0}}, f"{C}.pathway: pathway has a cycle"),
    "negative_capacity": ({"pools.acute.capacity": -3}, "pools.acute.capacity: must be >= 0"),
    "nan_rate": ({f"{C}.arrivals.per_year": float("nan")},
                 f"{C}.arrivals.per_year: must not be NaN or infinite"),
    "nan_los_mean": ({f"{C}.pathway[0].los.mean": float("nan")},
                     f"{C}.pathway[0].los.mean: must not be NaN or infinite"),
    "infinite_capacity": ({"pools.acute.capacity": float("inf")},
                          "pools.acute.capacity: must not be NaN or infinite"),
    "unknown_top_key": ({"run_dayz": 30}, "run_dayz: unknown key"),
    "unknown_pool_key": ({"pools.acute.capcity": 12}, "pools.acute.capcity: unknown key"),
    "unknown_arrivals_key": ({f"{C}.arrivals.per_yr": 12}, f"{C}.arrivals.per_yr: unknown key"),
    "bad_when_full": ({"pools.acute.when_full": "wait"}, "pools.acute.when_full"),
    "unknown_overflow_pool": ({"pools.acute.when_full": "overflow:nowhere"},
                              "pools.acute.when_full: unknown overflow pool"),
    "overflow_loop": ({"pools.acute.when_full": "overflow:rehab",
                       "pools.rehab.when_full": "overflow:acute"}, "overflow chain loops back"),
    "empty_cohorts": ({"cohorts": {}}, "cohorts: must not be empty"),
    "missing_run_days": ({"run_days": None}, "run_days: required"),
}
#: Cases also run as real processes in the fast set (all of them run so under -m slow).
SUBPROCESS_SAMPLE = ("nan_rate", "cycle_without_exit")


def write_broken(tmp_path: Path, case: str) -> Path:
    doc = copy.deepcopy(BASE)
    edits, _ = BROKEN[case]
    for dotted, value in edits.items():
        set_path(doc, dotted, value)
    if case == "missing_run_days":
        del doc["run_days"]
    path = tmp_path / f"{case}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Call the CLI in-process: (exit code, stdout, stderr). Any other exception fails the test."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sim", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def flat(text: str) -> str:
    """Whitespace collapsed, so a wrapped line cannot hide a match."""
    return " ".join(text.split())


def assert_config_error(code: int, out: str, err: str, path: Path, expected: str) -> None:
    assert code == 2, f"exit code {code}\nstdout:\n{out}\nstderr:\n{err}"
    assert "Traceback" not in out + err
    assert str(path.name) in err, err
    assert expected in flat(err), f"{expected!r} not in stderr:\n{err}"


# --------------------------------------------------------------------------- broken scenarios


def test_base_scenario_is_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The broken cases below differ from a valid scenario only by their edits."""
    path = tmp_path / "base.yaml"
    path.write_text(yaml.safe_dump(BASE, sort_keys=False))
    code, out, err = run_main(["validate", str(path)], capsys)
    assert code == 0, err
    assert "ok" in out


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_scenario_exits_2(case: str, command: str, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    path = write_broken(tmp_path, case)
    argv = [command, str(path)] + (["-n", "1", "--jobs", "1", "--quiet"] if command == "run" else [])
    code, out, err = run_main(argv, capsys)
    assert_config_error(code, out, err, path, BROKEN[case][1])
    assert out == ""  # nothing half-reported on stdout


def _subprocess_case(case: str, command: str, tmp_path: Path) -> None:
    path = write_broken(tmp_path, case)
    extra = ["-n", "1", "--jobs", "1"] if command == "run" else []
    proc = run_cli(command, str(path), *extra)
    assert_config_error(proc.returncode, proc.stdout, proc.stderr, path, BROKEN[case][1])


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize("case", SUBPROCESS_SAMPLE)
def test_broken_scenario_exits_2_subprocess(case: str, command: str, tmp_path: Path) -> None:
    _subprocess_case(case, command, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize("case", [c for c in BROKEN if c not in SUBPROCESS_SAMPLE])
def test_broken_scenario_exits_2_subprocess_all(case: str, command: str, tmp_path: Path) -> None:
    _subprocess_case(case, command, tmp_path)


@pytest.mark.parametrize("command", ["validate", "run"])
def test_unreadable_files_exit_2(command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A YAML syntax error and a missing file: exit 2, the file named, no traceback."""
    bad = tmp_path / "syntax.yaml"
    bad.write_text("name: x\npools: [unclosed\n")
    missing = tmp_path / "missing.yaml"
    for path, expected in ((bad, "YAML error at line"), (missing, "file not found")):
        argv = [command, str(path)] + (["-n", "1", "--jobs", "1"] if command == "run" else [])
        code, out, err = run_main(argv, capsys)
        assert_config_error(code, out, err, path, expected)


def test_every_problem_reported_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = copy.deepcopy(BASE)
    for case in ("negative_rate", "cv_negative", "unknown_pool", "negative_capacity"):
        for dotted, value in BROKEN[case][0].items():
            set_path(doc, dotted, value)
    path = tmp_path / "many.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    code, out, err = run_main(["validate", str(path)], capsys)
    assert code == 2
    for case in ("negative_rate", "cv_negative", "unknown_pool", "negative_capacity"):
        assert BROKEN[case][1] in flat(err)


def test_validate_reports_each_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """One bad file among good ones: exit 2, the good ones still reported ok."""
    bad = write_broken(tmp_path, "negative_capacity")
    code, out, err = run_main(["validate", str(SINGLE_WARD), str(bad)], capsys)
    assert code == 2
    assert "negative_capacity.yaml" in err and "pools.acute.capacity" in err
    assert "Traceback" not in out + err


@pytest.mark.parametrize("option", [["-n", "0"], ["--replications", "-3"], ["--seed", "-1"],
                                    ["--seed", "1.5"]])
def test_bad_run_options_exit_2(option: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """Nonsense replications or seeds are usage errors (exit 2), not tracebacks from a worker."""
    code, out, err = run_main(["run", str(SINGLE_WARD), "--jobs", "1", *option], capsys)
    assert code == 2
    assert option[0] in err and "Traceback" not in out + err


# --------------------------------------------------------------------------- shipped configs


def test_validate_shipped_configs() -> None:
    assert SHIPPED, "no configs found"
    proc = run_cli("validate", *SHIPPED)
    assert proc.returncode == 0, proc.stderr
    for path in SHIPPED:
        assert f"{path}: ok" in proc.stdout


# --------------------------------------------------------------------------- run outputs

ESTIMATE_KEYS = ("mean_occupancy", "census_p95", "p_full_time", "p_full_arrival",
                 "mean_wait_days", "lost")


def check_summary_shape(doc: dict[str, Any], scenario: str, replications: int, seed: int) -> None:
    """The keys DESIGN.md promises in summary.json."""
    assert {"scenario", "replications", "seed", "engine", "pools", "admissions"} <= set(doc)
    assert (doc["scenario"], doc["replications"], doc["seed"], doc["engine"]) == \
        (scenario, replications, seed, "numba")
    for pool in doc["pools"].values():
        assert "capacity" in pool
        for key in ESTIMATE_KEYS:
            est = pool[key]
            assert isinstance(est["mean"], float | int) and len(est["ci95"]) == 2
        assert {"stp_rule", "risk_rule", "target_occupancy", "epsilon"} <= set(pool["beds_needed"])
        assert set(pool["bed_day_share_by_stay"]) >= {"ge_7", "ge_14", "ge_21", "ge_30"}
    for est in doc["admissions"].values():
        assert est["mean"] > 0 and len(est["ci95"]) == 2


def test_run_out_writes_run_folder(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = run_cli("run", str(SINGLE_WARD), "-n", "3", "--seed", "7", "--jobs", "1",
                   "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    printed = json.loads(proc.stdout)  # --json: stdout is one JSON document and nothing else
    check_summary_shape(printed, "single-ward-example", 3, 7)
    for name in ("manifest.json", "summary.json", "summary.csv", "replications.csv", "census.csv"):
        assert (out / name).is_file(), name
    assert json.loads((out / "summary.json").read_text()) == printed
    manifest = json.loads((out / "manifest.json").read_text())
    assert {"scenario", "seed", "replications", "engine", "bedflow_version", "timings"} <= set(manifest)
    assert (manifest["seed"], manifest["replications"], manifest["engine"]) == (7, 3, "numba")
    assert manifest["scenario"]["pools"]["ward"]["capacity"] == 30
    import pandas as pd

    census = pd.read_csv(out / "census.csv")
    assert {"replication", "pool", "day", "census"} <= set(census.columns)
    assert len(census) == 3 * 1 * 365 and census["census"].between(0, 30).all()
    reps = pd.read_csv(out / "replications.csv")
    assert set(reps["replication"]) == {0, 1, 2}
    summary = pd.read_csv(out / "summary.csv")
    assert {"pool", "metric", "mean"} <= set(summary.columns)
    pngs = sorted(out.glob("*.png"))
    assert pngs, "no plots written"
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    assert not list(out.glob(".*.tmp")), "temporary files left behind"


def test_run_prints_table() -> None:
    proc = run_cli("run", str(SINGLE_WARD), "-n", "2", "--jobs", "1", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "mean occupied beds" in proc.stdout and "ward" in proc.stdout
    with pytest.raises(json.JSONDecodeError):
        json.loads(proc.stdout)


def test_schema_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(["schema"], capsys)
    assert code == 0
    schema = json.loads(out)
    assert {"pools", "cohorts", "start", "run_days"} <= set(schema["properties"])


@pytest.mark.parametrize("pool_name", ["ward", 'ward "A", east'])
def test_census_csv_is_pandas_bytes(pool_name: str, tmp_path: Path) -> None:
    """census.csv comes from pyarrow where no value needs quoting, else from pandas: the same
    bytes as the pandas table either way; the run folder reads back exactly."""
    import dataclasses

    import numpy as np

    from sim.experiment import run
    from sim.results import Results
    from sim.scenario import load_scenario

    results = run(load_scenario(SINGLE_WARD), replications=2, seed=3, jobs=1)
    named = dataclasses.replace(results, pool_names=[pool_name])
    assert named.census_csv() == named.census().to_csv(index=False).encode()
    back = Results.load(results.save(tmp_path / "run"))
    assert (tmp_path / "run" / "census.csv").read_bytes() == results.census_csv()
    for name in ("pool_values", "cohort_admissions", "census_days", "unconstrained_census"):
        a, b = getattr(results, name), getattr(back, name)
        assert a.dtype == b.dtype and np.array_equal(a, b), name
