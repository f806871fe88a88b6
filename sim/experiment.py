"""Replications: seeding, running them locally in worker processes, collecting metrics.

Replication i always uses the streams keyed by (seed, i, cohort, purpose), so results do not
depend on how replications are split across workers or executors.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context

from sim import demand
from sim.engines import run_engine
from sim.metrics import ReplicationMetrics, replication_metrics
from sim.network import Network, compile_network
from sim.scenario import Scenario

Progress = Callable[[int], None]


def run_replication(network: Network, seed: int, replication: int, engine: str = "numba",
                    target_occupancy: float = 0.95, epsilon: float = 0.05) -> ReplicationMetrics:
    """Generate the patient table, replay it through the engine and measure it."""
    table = demand.generate(network, seed, replication)
    trace = run_engine(engine, network, table)
    return replication_metrics(network, table, trace, replication, target_occupancy, epsilon)


def run_block(scenario: Scenario, seed: int, replications: Sequence[int], engine: str,
              target_occupancy: float, epsilon: float) -> list[ReplicationMetrics]:
    """Run a block of replications in one process (compiling the network once)."""
    network = compile_network(scenario)
    return [run_replication(network, seed, r, engine, target_occupancy, epsilon)
            for r in replications]


def default_jobs() -> int:
    """Worker processes to use when not told: every core this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def blocks(replications: int, jobs: int) -> list[list[int]]:
    """Split replication indices into contiguous blocks, a few per worker for load balance."""
    n_blocks = min(replications, max(1, jobs * 4))
    size = -(-replications // n_blocks)
    return [list(range(i, min(i + size, replications))) for i in range(0, replications, size)]


def run_replications(scenario: Scenario, replications: int, seed: int, engine: str = "numba",
                     jobs: int | None = None, progress: Progress | None = None,
                     target_occupancy: float = 0.95, epsilon: float = 0.05
                     ) -> list[ReplicationMetrics]:
    """Run replications 0..n-1, locally, in ``jobs`` processes; results in replication order."""
    jobs = default_jobs() if jobs is None else max(1, jobs)
    args = (engine, target_occupancy, epsilon)
    results: list[ReplicationMetrics] = []
    if jobs == 1 or replications == 1:
        network = compile_network(scenario)
        for r in range(replications):
            results.append(run_replication(network, seed, r, *args))
            if progress:
                progress(1)
    else:
        with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(run_block, scenario, seed, block, *args)
                       for block in blocks(replications, jobs)]
            for future in as_completed(futures):
                done = future.result()
                results.extend(done)
                if progress:
                    progress(len(done))
    return sorted(results, key=lambda m: m.replication)


def run(scenario: Scenario, replications: int = 100, seed: int = 1, engine: str = "numba",
        jobs: int | None = None, progress: Progress | None = None,
        target_occupancy: float = 0.95, epsilon: float = 0.05):
    """Run a scenario's replications and return :class:`sim.results.Results`."""
    from sim.results import Results

    if replications < 1:
        raise ValueError("replications must be at least 1")
    t0 = time.perf_counter()
    metrics = run_replications(scenario, replications, seed, engine, jobs, progress,
                               target_occupancy, epsilon)
    elapsed = time.perf_counter() - t0
    return Results.from_metrics(scenario, metrics, seed=seed, engine=engine,
                                target_occupancy=target_occupancy, epsilon=epsilon,
                                timings={"run_seconds": elapsed,
                                         "jobs": jobs if jobs else default_jobs()})


def compare(scenarios: Iterable[Scenario], replications: int = 100, seed: int = 1,
            engine: str = "numba", jobs: int | None = None):
    """Run scenarios with the same seed (common random numbers) and pair their differences."""
    from sim.results import Comparison

    runs = [run(s, replications, seed, engine, jobs) for s in scenarios]
    return Comparison(runs)
