"""Batch experiments: schema errors, variants, the run store, resume after SIGINT and SIGKILL."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from sim import batch
from sim.cli import main
from sim.metrics import POOL_METRICS
from sim.scenario import ScenarioError

REPO = Path(__file__).resolve().parents[1]
BASELINE = REPO / "configs" / "derbyshire" / "baseline_2015_16.yaml"


def ward_scenario(tmp_path: Path) -> Path:
    doc = {
        "name": "ward", "start": "2020-01-01", "warmup_days": 30, "run_days": 200,
        "pools": {"ward": {"capacity": 30, "when_full": "queue", "ward_size": 5},
                  "rehab": {"capacity": None}},
        "cohorts": {"patients": {"arrivals": {"per_year": 2000}, "pathway": [
            {"stage": "acute", "pool": "ward", "los": {"dist": "lognormal", "mean": 4.0, "cv": 1.0},
             "next": {"rehab": 0.2, "home": 0.8}},
            {"stage": "rehab", "pool": "rehab", "los": {"dist": "exponential", "mean": 10.0}}]}},
        "interventions": [{"name": "close_one", "type": "capacity", "pool": "ward", "beds": 0,
                           "start": "2020-03-01"}],
    }
    path = tmp_path / "ward.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def write_experiment(tmp_path: Path, name: str = "exp.yaml", **changes) -> Path:
    ward_scenario(tmp_path)
    doc = {"name": "grid", "base": "ward.yaml", "replications": 4, "seed": 5, "block_size": 2,
           "vary": {"grid": {"pools.ward.capacity": [30, 25, 20],
                             "cohorts.patients.arrivals.per_year": [2000, 2200]}},
           **changes}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        exp = batch.load_experiment(path)
        batch.variants(exp)
    return [str(p) for p in info.value.problems]


# --------------------------------------------------------------------------- schema


def test_experiment_errors_carry_yaml_paths(tmp_path: Path) -> None:
    got = problems(write_experiment(tmp_path, replications=1, replicatons=3, block_size=0))
    assert any(p.startswith("replications: ") and "got 1" in p for p in got)
    assert any(p.startswith("replicatons: ") for p in got)
    assert any(p.startswith("block_size: ") for p in got)

    got = problems(write_experiment(tmp_path, vary={"grid": {"pools.ward.capacity": [30]},
                                                    "list": [{"name": "a"}]}))
    assert any(p.startswith("vary: ") and "exactly one of 'grid' or 'list'" in p for p in got)
    got = problems(write_experiment(tmp_path, vary=None))
    assert any("needs 'vary'" in p for p in got)
    got = problems(write_experiment(tmp_path, base="missing.yaml"))
    assert got == ["base: scenario file not found, got 'missing.yaml'"]


def test_variant_problems_name_the_variant_and_the_path(tmp_path: Path) -> None:
    got = problems(write_experiment(tmp_path, vary={"grid": {"pools.ward.capacity": [30, -5]}}))
    assert got == ["vary.grid (pools.ward.capacity=-5): pools.ward.capacity: must be >= 0, got -5"]
    got = problems(write_experiment(tmp_path, vary={"grid": {"pools.nowhere.capacity": [1]}}))
    assert got == ["vary.grid (pools.nowhere.capacity=1): pools.nowhere.capacity: "
                   "unknown key 'pools.nowhere' in override path"]
    got = problems(write_experiment(tmp_path, vary={"list": [
        {"name": "ok", "overrides": {"pools.ward.capacity": 20}},
        {"name": "ok", "overrides": {}},
        {"name": "bad name", "overrides": {}}]}))
    assert "vary.list[1].name: duplicate variant name, got 'ok'" in got
    assert any(p.startswith("vary.list[2].name: use letters") for p in got)


def test_cli_experiment_config_errors_exit_2(tmp_path: Path, capsys) -> None:
    path = write_experiment(tmp_path, seed=-1)
    assert main(["experiment", str(path), "--out", str(tmp_path / "out"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "is not a valid experiment" in err and "seed: " in err and "Traceback" not in err


def test_grid_and_list_variants(tmp_path: Path) -> None:
    exp = batch.load_experiment(write_experiment(tmp_path))
    vs = batch.variants(exp)
    assert [v.id for v in vs] == [f"v{i:03d}" for i in range(6)]
    assert [(v.scenario.pools["ward"].capacity, v.scenario.cohorts["patients"].arrivals.per_year)
            for v in vs] == [(30, 2000), (30, 2200), (25, 2000), (25, 2200), (20, 2000), (20, 2200)]
    assert len({v.sha256 for v in vs}) == 6

    path = write_experiment(tmp_path, overrides={"pools.rehab.capacity": 50}, vary={"list": [
        {"name": "both", "overrides": {"pools.ward.capacity, pools.rehab.capacity": 12}},
        {"name": "named", "overrides": {"interventions[name=close_one].beds": -5}}]})
    vs = batch.variants(batch.load_experiment(path))
    assert [v.id for v in vs] == ["both", "named"]
    assert vs[0].scenario.pools["ward"].capacity == vs[0].scenario.pools["rehab"].capacity == 12
    assert vs[1].scenario.pools["rehab"].capacity == 50  # the experiment-wide override
    assert vs[1].scenario.interventions[0].beds == -5
    axis = write_experiment(tmp_path, vary={"grid": {
        "both_beds": {"paths": ["pools.ward.capacity", "pools.rehab.capacity"], "values": [8, 9]},
        "interventions[name=close_one].beds": [0, -1]}})
    vs = batch.variants(batch.load_experiment(axis))
    assert [(v.columns["both_beds"], v.columns["interventions[name=close_one].beds"])
            for v in vs] == [(8, 0), (8, -1), (9, 0), (9, -1)]
    assert [(v.scenario.pools["rehab"].capacity, v.scenario.interventions[0].beds)
            for v in vs] == [(8, 0), (8, -1), (9, 0), (9, -1)]
    bad = write_experiment(tmp_path, vary={"list": [
        {"overrides": {"interventions[name=nope].beds": -5}}]})
    assert any("no item named 'nope'" in p for p in problems(bad))


# --------------------------------------------------------------------------- run store


def test_results_tables_are_tidy_and_sorted(tmp_path: Path) -> None:
    exp = batch.load_experiment(write_experiment(tmp_path))
    report = batch.run_experiment(exp, tmp_path / "out", jobs=1)
    assert report["files"] == ["results.csv", "summary.csv", "census.parquet"]
    out = tmp_path / "out"
    df = pd.read_csv(out / "results.csv")
    assert list(df.columns) == ["variant", "pools.ward.capacity",
                                "cohorts.patients.arrivals.per_year", "replication", "pool",
                                "metric", "value"]
    assert len(df) == 6 * 4 * 2 * len(POOL_METRICS)
    first = df[(df.variant == "v000")]
    assert list(first.replication.unique()) == [0, 1, 2, 3]
    assert list(first.pool.unique()) == ["ward", "rehab"]
    assert list(first.metric[:len(POOL_METRICS)]) == list(POOL_METRICS)
    summary = pd.read_csv(out / "summary.csv")
    row = summary[(summary.variant == "v004") & (summary.pool == "ward") & (summary.metric == "mean_wait_days")]
    values = df[(df.variant == "v004") & (df.pool == "ward") & (df.metric == "mean_wait_days")].value
    assert row["mean"].iloc[0] == pytest.approx(values.mean(), rel=1e-12)
    census = pd.read_parquet(out / "census.parquet")
    assert len(census) == 6 * 4 * 2 * 200
    assert set(census.columns) == {"variant", "replication", "pool", "day", "census",
                                   "unconstrained_census"}
    assert (census.census[census.pool == "ward"] <= 30).all()
    assert "complete in" in (out / "experiment.log").read_text()
    manifest = yaml.safe_load((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and len(manifest["variants"]) == 6


def test_resume_reuses_valid_blocks_and_redoes_the_rest(tmp_path: Path) -> None:
    path = write_experiment(tmp_path)
    out = tmp_path / "out"
    batch.run_experiment(batch.load_experiment(path), out, jobs=1)
    reference = (out / "results.csv").read_bytes()
    with pytest.raises(batch.RunStoreError):
        batch.run_experiment(batch.load_experiment(path), out, jobs=1)

    blocks = sorted((out / "blocks").rglob("*.npz"))
    assert len(blocks) == 12
    blocks[0].write_bytes(blocks[0].read_bytes()[:1000])  # truncated: must not be trusted
    blocks[1].unlink()
    (blocks[2].parent / f".{blocks[2].name}.x1y2.tmp").write_bytes(b"half written")
    (out / "results.csv").unlink()
    batch.run_experiment(batch.load_experiment(path), out, resume=True, jobs=1)
    assert (out / "results.csv").read_bytes() == reference
    assert not list(out.rglob("*.tmp"))
    log = (out / "experiment.log").read_text()
    assert "reusing 20 stored replications; running 2 blocks" in log
    assert f"ignoring stored {blocks[0].parent.name}/{blocks[0].name}: corrupt" in log

    # A changed definition (here the seed) invalidates every stored block.
    changed = write_experiment(tmp_path, name="exp2.yaml", seed=6)
    batch.run_experiment(batch.load_experiment(changed), out, resume=True, jobs=1)
    assert (out / "results.csv").read_bytes() != reference
    assert "reusing" not in (out / "experiment.log").read_text().split("resuming")[-1]


# --------------------------------------------------------------------------- interruptions


def derbyshire_experiment(tmp_path: Path, variants: int, replications: int, block: int) -> Path:
    rdh = [626 - 6 * i for i in range(variants)]
    doc = {"name": "derbyshire-grid", "base": str(BASELINE), "replications": replications,
           "seed": 3, "block_size": block,
           "vary": {"grid": {"pools.acute_rdh.capacity": rdh}},
           "outputs": {"census": True}}
    path = tmp_path / "derbyshire.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def start(exp: Path, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sim", "experiment", str(exp), "--out", str(out),
                             "-j", "2", "--quiet", *extra], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def interrupt_when(proc: subprocess.Popen, out: Path, at_least: int, sig: int) -> list:
    """Send ``sig`` to the experiment's main process once ``at_least`` blocks are stored."""
    import psutil

    deadline = time.monotonic() + 300
    while len(list((out / "blocks").rglob("*.npz"))) < at_least:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "experiment made no progress"
        time.sleep(0.02)
    workers = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(sig)
    proc.communicate(timeout=120)
    return workers


def check_store_whole(exp_path: Path, out: Path) -> int:
    """Every block file in the store is complete and valid; return how many there are."""
    exp = batch.load_experiment(exp_path)
    store = batch.RunStore(out)
    n = 0
    for v in batch.variants(exp):
        for block in batch.split_blocks(exp.spec.replications, exp.spec.block_size):
            if store.block_path(v, block).exists():
                assert store.load_block(v, block) is not None, store.block_path(v, block)
                n += 1
    return n


def run_interrupted(tmp_path: Path, exp: Path, n_blocks: int, sig: int) -> bytes:
    out = tmp_path / f"out-{sig}"
    proc = start(exp, out)
    workers = interrupt_when(proc, out, max(1, n_blocks // 3), sig)
    if sig == signal.SIGINT:
        assert proc.returncode == 130
        assert not list(out.rglob("*.tmp"))  # Ctrl-C finishes or removes every write
        assert "interrupted" in (out / "experiment.log").read_text()
    else:
        assert proc.returncode == -signal.SIGKILL
        import psutil

        _, alive = psutil.wait_procs(workers, timeout=30)  # orphaned workers exit by themselves
        for p in alive:
            p.kill()
        assert not alive
    assert not (out / "results.csv").exists()  # it was stopped before the end
    done = check_store_whole(exp, out)
    assert 1 <= done < n_blocks
    proc = start(exp, out, "--resume")
    proc.communicate(timeout=600)
    assert proc.returncode == 0
    assert check_store_whole(exp, out) == n_blocks
    return (out / "results.csv").read_bytes()


@pytest.fixture(scope="module")
def small_derbyshire(tmp_path_factory) -> tuple[Path, bytes, int]:
    tmp = tmp_path_factory.mktemp("derbyshire")
    exp = derbyshire_experiment(tmp, variants=2, replications=6, block=1)
    batch.run_experiment(batch.load_experiment(exp), tmp / "reference", jobs=1)
    return exp, (tmp / "reference" / "results.csv").read_bytes(), 12


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_killed_and_resumed_equals_uninterrupted(tmp_path: Path, small_derbyshire, sig) -> None:
    exp, reference, n_blocks = small_derbyshire
    assert run_interrupted(tmp_path, exp, n_blocks, sig) == reference


@pytest.mark.slow
def test_40_variants_x_50_replications_interrupted_twice(tmp_path: Path) -> None:
    """Acceptance: 40 x 50 of the Derbyshire baseline; SIGINT, resume, SIGKILL, resume."""
    exp = derbyshire_experiment(tmp_path, variants=40, replications=50, block=10)
    n_blocks = 40 * 5
    ref = start(exp, tmp_path / "reference")
    ref.communicate(timeout=1800)
    assert ref.returncode == 0
    out = tmp_path / "out"
    proc = start(exp, out)
    interrupt_when(proc, out, n_blocks // 3, signal.SIGINT)
    assert proc.returncode == 130
    proc = start(exp, out, "--resume")
    interrupt_when(proc, out, 2 * n_blocks // 3, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    assert check_store_whole(exp, out) < n_blocks
    proc = start(exp, out, "--resume")
    proc.communicate(timeout=1800)
    assert proc.returncode == 0
    for name in ("results.csv", "summary.csv"):
        assert (out / name).read_bytes() == (tmp_path / "reference" / name).read_bytes()
    df = pd.read_csv(out / "results.csv")
    assert df.variant.nunique() == 40 and df.replication.nunique() == 50
    assert np.isfinite(df.value).all()
