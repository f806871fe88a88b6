"""Automatic warm-up (MSER-5) and replication count (precision rule).

MSER-5 (White 1997; Hoad, Robinson & Davies 2010) batches a series into means of 5 and picks the
truncation that minimises the marginal standard error of what is left. Its documented error is
one batch: the truncation it returns is a multiple of 5 observations, so it can land up to 4 days
after a transient that ends between batch boundaries.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

BATCH = 5


def mser(series: np.ndarray, batch: int = BATCH) -> int:
    """Truncation point (in observations) chosen by MSER-``batch`` on a 1-D series.

    Only truncations in the first half of the series are considered (beyond that the statistic is
    unstable, the standard restriction).
    """
    y = np.asarray(series, dtype=float)
    m = y.size // batch
    if m < 4:
        return 0
    z = y[: m * batch].reshape(m, batch).mean(axis=1)
    # Suffix sums give the mean and sum of squares of z[d:] for every d at once.
    n_left = np.arange(m, 0, -1, dtype=float)
    s1 = np.cumsum(z[::-1])[::-1]
    s2 = np.cumsum((z * z)[::-1])[::-1]
    sse = s2 - s1 * s1 / n_left
    stat = sse / n_left**2
    d = int(np.argmin(stat[: m // 2 + 1]))
    return d * batch


@dataclass
class WarmupChoice:
    """The warm-up chosen for a scenario: days, and the truncation per pool that drove it."""

    days: int
    by_pool: dict[str, int]


def choose_warmup(scenario, replications: int = 5, seed: int = 1, jobs: int | None = 1) -> WarmupChoice:
    """Run pilot replications from an empty system and apply MSER-5 to each pool's mean census."""
    from sim.experiment import run

    pilot = scenario.model_copy(update={"warmup_days": 0.0})
    pilot._source = scenario.source_path  # keep relative file paths resolvable
    results = run(pilot, replications=replications, seed=seed, jobs=jobs)
    mean_census = results.census_days.mean(axis=0)
    by_pool = {p: mser(mean_census[k]) for k, p in enumerate(results.pool_names)}
    return WarmupChoice(days=max(by_pool.values(), default=0), by_pool=by_pool)


def half_width_ok(values: np.ndarray, precision: float) -> bool:
    """Whether the 95% CI half-width of the mean is within ``precision`` x |mean|."""
    from sim.results import mean_ci

    mean, lo, hi = mean_ci(values)
    if not np.isfinite(lo):
        return False
    return (hi - lo) / 2 <= precision * abs(mean)


def first_precise_count(columns: Sequence[np.ndarray], precision: float, minimum: int = 3) -> int | None:
    """Smallest replication count n whose first-n values meet the precision for every column."""
    n_max = min(len(c) for c in columns)
    for n in range(max(minimum, 2), n_max + 1):
        if all(half_width_ok(c[:n], precision) for c in columns):
            return n
    return None


def run_to_precision(run_batch: Callable[[int, int], object], measure: Callable[[object], list[np.ndarray]],
                     precision: float, batch: int = 10, max_replications: int = 1000):
    """Add batches of replications until the chosen metrics' CIs meet the precision target.

    ``run_batch(start, stop)`` runs replications start..stop-1 and returns all results so far;
    ``measure(results)`` gives the per-replication columns to check. Returns (results, n) where n
    is the first replication count meeting the target (results are cut to n), or the maximum.
    """
    done, results = 0, None
    while done < max_replications:
        stop = min(done + batch, max_replications)
        results = run_batch(done, stop)
        done = stop
        n = first_precise_count(measure(results), precision)
        if n is not None:
            return results, n
    return results, done


@dataclass
class PrecisionRun:
    """A run grown until its chosen metrics met the precision target (or the maximum)."""

    results: object  # sim.results.Results, cut to ``replications``
    replications: int
    run: int  # replications actually run (whole batches)
    met: bool
    metrics: list[tuple[str, str]]  # (pool, metric) pairs checked


def run_scenario_to_precision(scenario, precision: float, metrics: Sequence[tuple[str, str]] | None = None,
                              seed: int = 1, engine: str = "numba", jobs: int | None = None,
                              batch: int = 10, max_replications: int = 1000,
                              scheduler: str | None = None,
                              progress: Callable[[int], None] | None = None) -> PrecisionRun:
    """Add batches of replications of a scenario until every chosen (pool, metric) has a 95% CI
    half-width within ``precision`` x its mean; replications are the same ones a fixed-size run
    gives (replication i is always the same), so the result equals ``sim.run(..., n)``.

    ``metrics`` defaults to the mean occupancy of every pool.
    """
    from sim.experiment import run_many
    from sim.results import Results

    chosen = list(metrics) if metrics else [(p, "mean_occupancy") for p in scenario.pools]
    done: list = []

    def as_results(ms):
        return Results.from_metrics(scenario, ms, seed=seed, engine=engine)

    def run_batch(start: int, stop: int):
        done.extend(run_many([scenario], stop - start, seed, engine, jobs, progress,
                             scheduler=scheduler, first=start)[0])
        return as_results(done)

    def measure(results) -> list[np.ndarray]:
        return [results.metric(pool, name) for pool, name in chosen]

    _, n = run_to_precision(run_batch, measure, precision, batch, max_replications)
    met = first_precise_count(measure(as_results(done[:n])), precision) == n
    return PrecisionRun(as_results(done[:n]), n, len(done), met, chosen)
