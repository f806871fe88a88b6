"""Executors: serial, local processes and Dask give bit-identical results for the same tasks."""

from __future__ import annotations

import numpy as np
import pytest

from sim.executors import (
    DaskExecutor,
    ProcessExecutor,
    SerialExecutor,
    Task,
    make_executor,
    split_blocks,
    start_method,
)
from sim.experiment import blocks, run_replications
from sim.metrics import ReplicationMetrics
from tests.helpers import two_stage

SEED = 11
REPS = 6


def scenario():
    return two_stage(capacities=(12, 6), policies=("queue", "lose"), run=200.0, warmup=30.0)


def tasks(block_size: int) -> list[Task]:
    s = scenario()
    return [Task(i, s, SEED, b) for i, b in enumerate(split_blocks(REPS, block_size))]


def collect(executor, block_size: int) -> list[ReplicationMetrics]:
    out: list[ReplicationMetrics] = []
    with executor:
        for _, metrics in executor.run(tasks(block_size)):
            out.extend(metrics)
    return sorted(out, key=lambda m: m.replication)


def assert_identical(a: list[ReplicationMetrics], b: list[ReplicationMetrics]) -> None:
    assert [m.replication for m in a] == [m.replication for m in b] == list(range(REPS))
    for x, y in zip(a, b, strict=True):
        for name in ("pool", "cohort_admissions", "census", "unconstrained_census"):
            u, v = getattr(x, name), getattr(y, name)
            assert u.dtype == v.dtype and np.array_equal(u, v, equal_nan=True), name


@pytest.fixture(scope="module")
def reference() -> list[ReplicationMetrics]:
    return collect(SerialExecutor(), block_size=REPS)


def test_split_blocks() -> None:
    assert split_blocks(5, 2) == [(0, 1), (2, 3), (4,)]
    assert split_blocks([3, 4, 5], 5) == [(3, 4, 5)]
    assert split_blocks(0, 3) == []


@pytest.mark.parametrize("n, jobs", [(1, 2), (7, 1), (100, 2), (1000, 2), (1000, 8)])
def test_guided_blocks_cover_every_replication_largest_first(n: int, jobs: int) -> None:
    got = blocks(n, jobs)
    assert [r for b in got for r in b] == list(range(n))
    sizes = [len(b) for b in got]
    assert sizes == sorted(sizes, reverse=True)
    assert sizes[0] == -(-n // (4 * jobs))
    assert sizes[-jobs:] == [1] * min(jobs, len(sizes))  # workers end within a replication
    assert len(got) <= 4 * jobs * (1 + int(np.log(n + 1))) + 4 * jobs


def test_block_size_does_not_change_results(reference) -> None:
    assert_identical(reference, collect(SerialExecutor(), block_size=1))
    assert_identical(reference, collect(SerialExecutor(), block_size=4))


def test_run_replications_any_worker_count(reference) -> None:
    # jobs=2 goes through ProcessExecutor: worker processes, one block per replication.
    for jobs in (1, 2):
        assert_identical(reference, run_replications(scenario(), REPS, SEED, jobs=jobs))


def test_dask_local_cluster_equals_local_run(reference) -> None:
    pytest.importorskip("distributed")
    from distributed import LocalCluster

    # A scheduler on loopback with in-process workers, reached by its tcp:// address, exactly
    # as `--scheduler tcp://HOST:PORT` would; then the `local-dask` shortcut.
    with LocalCluster(host="127.0.0.1", n_workers=2, threads_per_worker=1, processes=False, protocol="tcp://",
                      dashboard_address=None) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tcp://127.0.0.1:")
        executor = make_executor(jobs=None, scheduler=address)
        assert isinstance(executor, DaskExecutor) and executor.workers == 2
        assert_identical(reference, collect(executor, block_size=2))
    assert_identical(reference, collect(DaskExecutor("local-dask", jobs=2, processes=False),
                                        block_size=3))


def test_make_executor_defaults() -> None:
    assert isinstance(make_executor(jobs=1), SerialExecutor)
    ex = make_executor(jobs=3)
    assert isinstance(ex, ProcessExecutor) and ex.workers == 3
    ex.close()  # never started: nothing to shut down


def test_workers_are_forked_only_from_a_single_threaded_process(reference) -> None:
    """Fork (no interpreter start in each worker) only while no other thread could hold a lock;
    spawned workers give the same results."""
    import sys
    import threading

    if sys.platform.startswith("linux"):
        assert threading.active_count() > 1 or start_method() == "fork"
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert start_method() == "spawn"
        assert_identical(collect(ProcessExecutor(2), block_size=2), reference)
    finally:
        stop.set()
        other.join()


def _blas_threads_setting() -> str | None:
    import os

    return os.environ.get("OPENBLAS_NUM_THREADS")


def test_workers_start_no_blas_threads_unless_told(monkeypatch) -> None:
    """One worker per core: a BLAS loaded in a worker gets one thread, unless the user set it."""
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    ex = ProcessExecutor(1)
    try:
        assert ex._get_pool().submit(_blas_threads_setting).result() == "1"
    finally:
        ex.close()
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "3")
    ex = ProcessExecutor(1)
    try:
        assert ex._get_pool().submit(_blas_threads_setting).result() == "3"
    finally:
        ex.close()
