"""`bedflow bench --quick` runs end to end and records a well-formed report (never timings);
the exact shortcuts behind the speed-ups equal the plain numpy computations they replace."""

from __future__ import annotations

import importlib.util
import re

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sim import bench, demand
from sim.cli import main
from sim.metrics import percentile_nonnegative, percentile_with_zeros

SECTIONS = (
    "Derbyshire baseline: numba vs SimPy engine",
    "Phased STP scenario 2016-2021",
    "Scaling: admissions and beds scaled alike",
    "Parallel replications and end-to-end commands",
    "Memory",
    "Single-pool workload: numba vs plain SimPy vs Ciw",
    "Profile: Derbyshire baseline replication",
)


def _table_rows(text: str, first_header: str) -> list[list[str]]:
    """Rows (cells) of the markdown table whose header starts with ``first_header``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


def _number(cell: str) -> float:
    return float(cell.replace(",", ""))


def test_quick_bench_appends_a_complete_report(tmp_path, capsys):
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\nearlier run\n")
    assert main(["bench", "--quick", "--results", str(results)]) == 0
    printed = capsys.readouterr().out
    text = results.read_text()
    assert text.startswith("# Benchmark results\n\nearlier run\n")  # appended, not replaced
    report = text.split("earlier run\n", 1)[1]
    assert re.search(r"^## \d{4}-\d\d-\d\d \d\d:\d\d UTC \(quick run\)$", report, re.M)
    for field in ("- machine: ", "- commit: ", "numba ", "SimPy ", "load average"):
        assert field in report
    for title in SECTIONS:
        assert f"### {title}" in report
        assert f"### {title}" in printed

    stages = _table_rows(report, "stage")
    assert [r[0] for r in stages] == [f"{e}: {s}" for e in ("numba", "simpy")
                                      for s in ("generate", "engine", "metrics", "total")]
    for row in stages:
        reps, adm, s_rep, rate = (_number(c) for c in row[1:])
        assert reps >= 1 and adm > 0 and s_rep > 0
        assert np.isclose(rate, adm / s_rep, rtol=2e-3)  # admissions/s = admissions / (s/rep)
    assert "traces identical: yes" in report
    ratios = dict(_table_rows(report, "ratio (same tables)"))
    assert set(ratios) == {"SimPy engine s/rep / numba engine s/rep",
                           "SimPy pipeline s/rep / numba pipeline s/rep"}

    scaling = _table_rows(report, "scale")
    assert [r[0] for r in scaling] == ["1x", "2x", "4x"]
    assert _number(scaling[0][3]) == 1.0
    assert [round(_number(r[3])) for r in scaling] == [1, 2, 4]  # admissions scale with volume
    assert "| event loop time ratio |" in report and all(_number(r[6]) > 0 for r in scaling)

    parallel = _table_rows(report, "what")
    assert [r[0].split(",")[0] for r in parallel[:2]] == ["sim.run(jobs=1)", "sim.run(jobs=2)"]
    assert "results identical: yes" in report
    assert len(_table_rows(report, "replications")) == 2  # memory rows

    references = ["simpy", "ciw"] if importlib.util.find_spec("ciw") else ["simpy"]
    if len(references) == 1:
        assert "Ciw not installed" in report
    agreement = _table_rows(report, "model")
    assert [r[0] for r in agreement[:len(references) + 1]] == ["numba", *references]
    assert [r[0] for r in _table_rows(report, "throughput ratio (admissions/s)")] == [
        f"numba {what} / {ref}" for ref in references
        for what in ("pipeline", "engine", "event loop")]
    assert len(_table_rows(report, "function")) == 10
    assert "configs/derbyshire/stp_phased_2016_2021.yaml" in report or \
        "Phased STP scenario 2016-2021: numba vs SimPy engine" in report


def test_unknown_benchmark_exits_2(tmp_path):
    assert main(["bench", "--only", "nope", "--results", str(tmp_path / "R.md")]) == 2
    assert not (tmp_path / "R.md").exists()


def test_scaled_scenario_multiplies_volumes_and_capacities():
    base = bench._baseline(quick=True)
    big = bench.scaled(base, 10)
    for name, cohort in base.cohorts.items():
        assert big.cohorts[name].arrivals.per_year == 10 * cohort.arrivals.per_year
    for name, pool in base.pools.items():
        expected = None if pool.capacity is None else 10 * pool.capacity
        assert big.pools[name].capacity == expected


def test_erlang_c_wait_matches_textbook_value():
    # M/M/2 with a = 1 (rho = 0.5): P(wait) = 1/3, Wq = P(wait) / (c*mu - lambda) = 1/3.
    assert np.isclose(bench.erlang_c_wait(2, 1.0, 1.0), 1 / 3)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.just(0.0), st.floats(0, 50, allow_subnormal=False)),
                min_size=1, max_size=60),
       st.sampled_from([0, 5, 50, 90, 95, 99, 100]))
def test_percentile_nonnegative_is_numpy_percentile_bit_for_bit(values, q):
    arr = np.array(values)
    assert percentile_nonnegative(arr, q) == np.percentile(arr, q)
    # as the metrics keep waits: the positive ones, in any order, and how many there are
    positive = np.random.default_rng(len(values)).permutation(arr[arr > 0.0])
    assert percentile_with_zeros(positive, arr.size, q) == np.percentile(arr, q)


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_merge_orders_like_lexsort_of_time_cohort_candidate(data):
    """Stable sort of the cohort-major concatenation = lexsort by (arrival, cohort, candidate)."""
    parts = []
    for ci in range(data.draw(st.integers(1, 4))):
        n = data.draw(st.integers(0, 12))
        arrival = np.sort(np.array(data.draw(st.lists(st.integers(0, 6), min_size=n,
                                                      max_size=n)), dtype=float))
        counts = np.array(data.draw(st.lists(st.integers(1, 3), min_size=n, max_size=n)),
                          dtype=np.int64)
        m = int(counts.sum())
        parts.append((ci, demand.CohortPatients(
            arrival=arrival, candidate=np.arange(n, dtype=np.int64) * 3,
            mark=np.arange(n) / 100.0, exit=np.full(n, -1, np.int8), counts=counts,
            visit_pool=np.arange(m, dtype=np.int32) + 1000 * ci,
            visit_los=np.arange(m, dtype=float), visit_stage=np.full(m, ci, np.int32))))
    table = demand.merge(parts)
    arrival = np.concatenate([p.arrival for _, p in parts])
    cohort = np.concatenate([np.full(len(p.arrival), ci) for ci, p in parts])
    candidate = np.concatenate([p.candidate for _, p in parts])
    order = np.lexsort((candidate, cohort, arrival))
    assert np.array_equal(table.arrival, arrival[order])
    assert np.array_equal(table.cohort, cohort[order])
    assert np.array_equal(table.candidate, candidate[order])
    # each patient keeps its own visits, in order
    visits = np.split(np.concatenate([p.visit_pool for _, p in parts]),
                      np.cumsum(np.concatenate([p.counts for _, p in parts]))[:-1])
    for p, src in enumerate(order):
        assert np.array_equal(table.visit_pool[table.visit_start[p]:table.visit_start[p + 1]],
                              visits[src])


_NANS = [float(np.array([b], np.int64).view(np.float64)[0])
         for b in (0x7FF8000000000001, 0x7FF0000000000001, 0x7FF8000000000000)]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.one_of(st.floats(allow_nan=True), st.sampled_from(
    [0.0, -0.0, np.inf, 5e-324, 1.0, *_NANS])), max_size=8), min_size=1, max_size=4))
def test_merge_orders_any_times_as_a_stable_sort_of_floats(times):
    """The merge sorts by the times' bits when they allow it (+0.0 to +inf): the order is that
    of a stable float sort whatever the values (negative zero, NaNs of any payload, negatives,
    subnormals)."""
    parts = [(ci, demand.CohortPatients(
        arrival=np.array(t, dtype=float), candidate=np.arange(len(t), dtype=np.int64),
        mark=np.full(len(t), np.nan), exit=np.full(len(t), -1, np.int8),
        counts=np.ones(len(t), np.int64), visit_pool=np.full(len(t), ci, np.int32),
        visit_los=np.arange(len(t), dtype=float), visit_stage=np.zeros(len(t), np.int32)))
        for ci, t in enumerate(times)]
    table = demand.merge(parts)
    arrival = np.concatenate([p.arrival for _, p in parts])
    order = np.argsort(arrival, kind="stable")
    assert np.array_equal(table.arrival.view(np.int64), arrival[order].view(np.int64))
    assert np.array_equal(table.cohort, np.concatenate([p.visit_pool for _, p in parts])[order])
    assert np.array_equal(table.candidate, np.concatenate([p.candidate for _, p in parts])[order])
