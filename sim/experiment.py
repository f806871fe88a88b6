"""Replications: seeding, running them locally in worker processes, collecting metrics.

Replication i always uses the streams keyed by (seed, i, cohort, purpose), so results do not
depend on how replications are split across workers or executors.
"""

from __future__ import annotations

import numbers
import time
from collections.abc import Callable, Iterable, Sequence

from sim import demand
from sim.engines import run_engine
from sim.executors import Task, default_jobs, make_executor
from sim.metrics import ReplicationMetrics, replication_metrics
from sim.network import Network, compile_network
from sim.scenario import Scenario

Progress = Callable[[int], None]


def run_replication(network: Network, seed: int, replication: int, engine: str = "numba",
                    target_occupancy: float = 0.95, epsilon: float = 0.05) -> ReplicationMetrics:
    """Generate the patient table, replay it through the engine and measure it."""
    table = demand.generate(network, seed, replication)
    trace = run_engine(engine, network, table, log=False)
    return replication_metrics(network, table, trace, replication, target_occupancy, epsilon)


def run_block(scenario: Scenario, seed: int, replications: Sequence[int], engine: str,
              target_occupancy: float, epsilon: float) -> list[ReplicationMetrics]:
    """Run a block of replications in one process (compiling the network once)."""
    network = compile_network(scenario)
    return [run_replication(_network_for(scenario, network, seed, r), seed, r, engine,
                            target_occupancy, epsilon)
            for r in replications]


def _network_for(scenario: Scenario, network: Network, seed: int, replication: int) -> Network:
    """The scenario's network, or one with this replication's draw of uncertain parameters."""
    if not scenario.uncertain_parameters:
        return network
    from sim import uncertainty  # late import: only scenarios with uncertain parameters

    return compile_network(uncertainty.sample(scenario, seed, replication))


def blocks(replications: int, jobs: int) -> list[list[int]]:
    """Split replication indices into contiguous blocks, each a quarter of what is left per
    worker (guided scheduling): few large blocks first, for little overhead, then smaller ones,
    so that the workers finish within a replication or two of each other."""
    out = []
    start = 0
    while start < replications:
        size = -(-(replications - start) // (4 * max(1, jobs)))
        out.append(list(range(start, start + size)))
        start += size
    return out


def run_many(scenarios: Sequence[Scenario], replications: int, seed: int, engine: str = "numba",
             jobs: int | None = None, progress: Progress | None = None,
             target_occupancy: float = 0.95, epsilon: float = 0.05,
             scheduler: str | None = None, first: int = 0) -> list[list[ReplicationMetrics]]:
    """Replications first..first+n-1 of each scenario on one executor (sim.executors); each in
    order. Results do not depend on the executor or the worker count (same seed, same streams).
    """
    if scheduler is None and jobs is None and replications * len(scenarios) == 1:
        jobs = 1
    out: list[list[ReplicationMetrics]] = [[] for _ in scenarios]
    with make_executor(jobs, scheduler) as executor:
        chunks = ([[r] for r in range(replications)] if executor.workers == 1
                  else blocks(replications, max(1, executor.workers // len(scenarios))))
        chunks = [[first + r for r in b] for b in chunks]
        # Block by block across scenarios, so that every scenario's small blocks come last.
        tasks = [Task((k, i), s, seed, tuple(b), engine, target_occupancy, epsilon)
                 for i, b in enumerate(chunks) for k, s in enumerate(scenarios)]
        for (k, _), done in executor.run(tasks):
            out[k].extend(done)
            if progress:
                progress(len(done))
    return [sorted(r, key=lambda m: m.replication) for r in out]


def run_replications(scenario: Scenario, replications: int, seed: int, engine: str = "numba",
                     jobs: int | None = None, progress: Progress | None = None,
                     target_occupancy: float = 0.95, epsilon: float = 0.05,
                     scheduler: str | None = None) -> list[ReplicationMetrics]:
    """Run replications 0..n-1 of one scenario; results in replication order."""
    return run_many([scenario], replications, seed, engine, jobs, progress, target_occupancy,
                    epsilon, scheduler)[0]


def run(scenario: Scenario, replications: int = 100, seed: int = 1, engine: str = "numba",
        jobs: int | None = None, progress: Progress | None = None,
        target_occupancy: float = 0.95, epsilon: float = 0.05, scheduler: str | None = None):
    """Run a scenario's replications and return :class:`sim.results.Results`.

    ``scheduler``: None (local processes), ``"local-dask"`` or a Dask address ``tcp://host:port``.
    """
    from sim.results import Results

    if replications < 1:
        raise ValueError("replications must be at least 1")
    if not (isinstance(seed, numbers.Integral) and seed >= 0):
        raise ValueError(f"seed must be a non-negative whole number, got {seed!r}")
    t0 = time.perf_counter()
    metrics = run_replications(scenario, replications, seed, engine, jobs, progress,
                               target_occupancy, epsilon, scheduler)
    elapsed = time.perf_counter() - t0
    return Results.from_metrics(scenario, metrics, seed=seed, engine=engine,
                                target_occupancy=target_occupancy, epsilon=epsilon,
                                timings={"run_seconds": elapsed,
                                         "jobs": jobs if jobs else default_jobs(),
                                         "scheduler": scheduler})


def compare(scenarios: Iterable[Scenario], replications: int = 100, seed: int = 1,
            engine: str = "numba", jobs: int | None = None, progress: Progress | None = None,
            scheduler: str | None = None, target_occupancy: float = 0.95,
            epsilon: float = 0.05):
    """Run scenarios with the same seed (common random numbers) and pair their differences."""
    from sim.results import Comparison, Results

    scenarios = list(scenarios)
    if replications < 2:
        raise ValueError("compare needs at least 2 replications for confidence intervals")
    t0 = time.perf_counter()
    runs = run_many(scenarios, replications, seed, engine, jobs, progress, target_occupancy,
                    epsilon, scheduler)
    timings = {"run_seconds": time.perf_counter() - t0, "scheduler": scheduler}
    return Comparison([Results.from_metrics(s, m, seed=seed, engine=engine,
                                            target_occupancy=target_occupancy, epsilon=epsilon,
                                            timings=timings)
                       for s, m in zip(scenarios, runs, strict=True)])
