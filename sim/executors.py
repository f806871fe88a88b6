"""Executors: run blocks of replications locally (in-process or worker processes) or on Dask.

A task is (scenario, seed, block of replication indices, engine, target occupancy, epsilon) and
its result is the list of ReplicationMetrics that :func:`sim.experiment.run_block` returns. All
executors share one interface, :meth:`Executor.run`, which yields ``(key, result)`` as each task
finishes, so callers can store results as they arrive. Replication i always uses the streams
keyed by (seed, i, ...), so results are bit-identical whatever the executor or worker count.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Hashable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any

from sim.metrics import ReplicationMetrics
from sim.scenario import Scenario

#: ``--scheduler`` value that starts a Dask LocalCluster on 127.0.0.1.
LOCAL_DASK = "local-dask"


@dataclass(frozen=True)
class Task:
    """One block of replications of one scenario; ``key`` identifies it to the caller."""

    key: Hashable
    scenario: Scenario
    seed: int
    replications: tuple[int, ...]
    engine: str = "numba"
    target_occupancy: float = 0.95
    epsilon: float = 0.05

    def args(self) -> tuple[Any, ...]:
        return (self.scenario, self.seed, list(self.replications), self.engine,
                self.target_occupancy, self.epsilon)


def execute(task_args: tuple[Any, ...]) -> list[ReplicationMetrics]:
    """Run one task's block in this process (the function every executor ships to workers)."""
    from sim.experiment import run_block

    return run_block(*task_args)


def default_jobs() -> int:
    """Worker processes to use when not told: every core this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _watch_parent(parent: int) -> None:
    while True:
        if os.getppid() != parent:
            os._exit(1)
        time.sleep(1.0)


def keep_freed_memory() -> None:
    """glibc malloc in bedflow's own processes (the CLI, workers): keep freed arrays for the
    next replication's (every block from the heap, none from mmap; no trimming), so a
    replication's arrays are not page-faulted afresh every time: about 12 ms of system time a
    replication on the Derbyshire baseline, and most of the time at 100x its admissions, where
    every array is larger than the 32 MiB that malloc could otherwise keep. The process keeps its
    peak memory. Not done on import: a notebook's process keeps its own settings. No-op
    elsewhere than glibc.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-1, -1)  # M_TRIM_THRESHOLD: never give the heap's top back
        libc.mallopt(-4, 0)  # M_MMAP_MAX: no mmap'd blocks (freed ones would be unmapped)
    except (OSError, AttributeError):  # not glibc
        pass


def _worker_init(parent: int) -> None:
    """Workers leave Ctrl-C to the main process, and exit if it dies (e.g. by SIGKILL). A BLAS
    loaded in a worker (numba loads scipy's to check for one) starts no threads of its own:
    there is a worker per core already, and its idle threads spin at start-up."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    keep_freed_memory()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


class ExecutorError(Exception):
    """An executor cannot start (e.g. no Dask scheduler at the address given)."""


class Executor:
    """Runs tasks and yields ``(key, result)`` in completion order; use as a context manager."""

    workers: int = 1

    def run(self, tasks: Iterable[Task]) -> Iterator[tuple[Hashable, list[ReplicationMetrics]]]:
        raise NotImplementedError

    def close(self) -> None:
        """Release workers; unfinished tasks are cancelled."""

    def describe(self) -> str:
        return type(self).__name__

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SerialExecutor(Executor):
    """Every task in this process, one after another (jobs=1: no start-up cost)."""

    def run(self, tasks: Iterable[Task]) -> Iterator[tuple[Hashable, list[ReplicationMetrics]]]:
        for task in tasks:
            yield task.key, execute(task.args())

    def describe(self) -> str:
        return "serial (1 process)"


def start_method() -> str:
    """How worker processes start: forked on Linux from a process with no other thread (each
    worker then skips its interpreter start and imports: 0.8 s of a 2-worker run), else spawned
    (forking a process with threads can deadlock the child on a lock another thread held)."""
    return "fork" if sys.platform.startswith("linux") and threading.active_count() == 1 else "spawn"


class ProcessExecutor(Executor):
    """A pool of worker processes on this machine (see :func:`start_method`)."""

    def __init__(self, jobs: int):
        self.workers = max(1, jobs)
        self._pool: ProcessPoolExecutor | None = None

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=self.workers,
                                             mp_context=get_context(start_method()),
                                             initializer=_worker_init, initargs=(os.getpid(),))
        return self._pool

    def run(self, tasks: Iterable[Task]) -> Iterator[tuple[Hashable, list[ReplicationMetrics]]]:
        pool = self._get_pool()
        pending = {pool.submit(execute, t.args()): t.key for t in tasks}
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in sorted(done, key=lambda f: str(pending[f])):
                    key = pending.pop(future)
                    yield key, future.result()
        finally:
            for future in pending:
                future.cancel()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def describe(self) -> str:
        return f"local processes ({self.workers} workers)"


class DaskExecutor(Executor):
    """Tasks sent to a Dask distributed scheduler, or to a LocalCluster on 127.0.0.1."""

    def __init__(self, scheduler: str, jobs: int | None = None, processes: bool = True):
        from distributed import Client, LocalCluster

        self.scheduler = scheduler
        self._cluster = None
        if scheduler == LOCAL_DASK:
            n = jobs or default_jobs()
            self._cluster = LocalCluster(host="127.0.0.1", n_workers=n, threads_per_worker=1,
                                         processes=processes, protocol="tcp://",
                                         dashboard_address=None,
                                         silence_logs=40)
            self._client = Client(self._cluster)
        else:
            try:
                self._client = Client(scheduler, timeout="30s")
            except (OSError, TimeoutError, ValueError) as exc:
                raise ExecutorError(f"cannot reach the Dask scheduler at {scheduler!r}: {exc}. "
                                    "Give tcp://HOST:PORT of a running scheduler, or "
                                    f"{LOCAL_DASK!r} to start one on this machine") from None
        self.workers = max(1, len(self._client.scheduler_info().get("workers", {})))

    def run(self, tasks: Iterable[Task]) -> Iterator[tuple[Hashable, list[ReplicationMetrics]]]:
        from distributed import as_completed

        tasks = list(tasks)
        if not tasks:
            return
        futures = self._client.map(execute, [t.args() for t in tasks], pure=False)
        keys = {f.key: t.key for f, t in zip(futures, tasks, strict=True)}
        remaining = set(futures)
        try:
            for future in as_completed(futures):
                remaining.discard(future)
                yield keys[future.key], future.result()
        finally:
            if remaining:
                self._client.cancel(list(remaining))

    def close(self) -> None:
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()

    def describe(self) -> str:
        where = "LocalCluster on 127.0.0.1" if self._cluster is not None else self.scheduler
        return f"dask ({where}, {self.workers} workers)"


def make_executor(jobs: int | None = None, scheduler: str | None = None) -> Executor:
    """The executor for ``--jobs`` / ``--scheduler``: Dask if a scheduler is named, else local."""
    if scheduler:
        return DaskExecutor(scheduler, jobs)
    jobs = default_jobs() if jobs is None else max(1, jobs)
    return SerialExecutor() if jobs == 1 else ProcessExecutor(jobs)


def split_blocks(replications: Sequence[int] | int, size: int) -> list[tuple[int, ...]]:
    """Contiguous blocks of replication indices of at most ``size`` each."""
    reps = list(range(replications)) if isinstance(replications, int) else list(replications)
    size = max(1, size)
    return [tuple(reps[i:i + size]) for i in range(0, len(reps), size)]
