"""The numba and SimPy engines replay a patient table into the identical trace."""

from __future__ import annotations

import heapq

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numba import njit

from sim import demand
from sim.demand import PatientTable
from sim.engines import kiefer_wolfowitz, numba_core, simpy_model
from sim.engines.borrowed import borrowed
from sim.engines.radix_queue import new_queue, peek, pop, push
from sim.engines.trace import LOST
from sim.metrics import (
    _BED_DAYS,
    POOL_METRICS,
    last_visits,
    occupancy_path,
    replication_metrics,
    visit_sums,
)
from sim.network import compile_network
from sim.scenario import scenario_from_dict
from tests.helpers import two_stage


@st.composite
def networks(draw, single_visit: bool = False):
    """Random small networks: few beds, every policy, overflow chains, multi-stage pathways
    (``single_visit``: one stage, queue or lose, no capacity changes: the engine's shortcut)."""
    n_pools = draw(st.integers(1, 4))
    pools = {}
    for k in range(n_pools):
        options = ["queue", "lose"] + ([] if single_visit else
                                       [f"overflow:p{j}" for j in range(k + 1, n_pools)])
        pool = {"capacity": draw(st.one_of(st.integers(0, 4), st.none())),  # None: unlimited
                "when_full": draw(st.sampled_from(options))}
        if not single_visit and draw(st.booleans()):
            pool["capacity_changes"] = [{"date": f"2020-01-{draw(st.integers(2, 28)):02d}",
                                         "capacity": draw(st.integers(0, 5))}]
        pool["on_reduction"] = draw(st.sampled_from(
            ["drain", "outlie"] + ([] if single_visit else
                                   [f"move:p{j}" for j in range(n_pools) if j != k])))
        if draw(st.booleans()):
            pool["discharges"] = {
                "weekday": draw(st.lists(st.sampled_from([0.0, 0.5, 1.0]), min_size=7,
                                         max_size=7).filter(lambda w: max(w) > 0)),
                "hours": draw(st.sampled_from([[0, 24], [8, 20], [12, 18]]))}
        pools[f"p{k}"] = pool
    n_stages = 1 if single_visit else draw(st.integers(1, 3))
    stages = []
    for s in range(n_stages):
        stage = {"stage": f"s{s}", "pool": f"p{draw(st.integers(0, n_pools - 1))}",
                 "los": {"dist": "exponential", "mean": 1.0}}
        if s + 1 < n_stages:
            stage["next"] = {f"s{s + 1}": 0.7, "home": 0.3}
        stages.append(stage)
    doc = {"name": "random", "start": "2020-01-01", "warmup_days": 5, "run_days": 40,
           "pools": pools,
           "cohorts": {"c": {"arrivals": {"per_year": 365 * 3}, "pathway": stages}}}
    return compile_network(scenario_from_dict(doc))


@st.composite
def tied_tables(draw, network):
    """Patient tables on a coarse time grid, so many events happen at exactly the same time
    (some arrivals after the horizon)."""
    n = draw(st.integers(1, 60))
    arrival = np.sort(np.array(draw(st.lists(st.integers(0, 96), min_size=n, max_size=n)))) / 2.0
    stages = network.cohorts[0].stages
    counts = np.array(draw(st.lists(st.integers(1, len(stages)), min_size=n, max_size=n)))
    m = int(counts.sum())
    pools = np.array(draw(st.lists(st.integers(0, network.n_pools - 1), min_size=m, max_size=m)),
                     dtype=np.int32)
    los = np.array(draw(st.lists(st.integers(0, 8), min_size=m, max_size=m))) / 2.0
    visit_start = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=visit_start[1:])
    hold_u = np.full(m, np.nan)
    last = visit_start[1:] - 1
    hold_u[last] = draw(st.lists(st.sampled_from([0.0, 0.25, 0.75, np.nan]), min_size=n,
                                 max_size=n))
    return PatientTable(arrival=arrival, cohort=np.zeros(n, np.int32),
                        candidate=np.arange(n, dtype=np.int64), mark=np.zeros(n),
                        exit=np.full(n, -1, np.int8), visit_start=visit_start, visit_pool=pools,
                        visit_los=los, visit_stage=np.zeros(m, np.int32), visit_hold_u=hold_u)


def log_area(trace, network) -> np.ndarray:
    """Time-integral of beds in use over the results window, per pool, from the log."""
    w, h = network.warmup, network.horizon
    area = np.zeros(network.n_pools)
    for k in range(network.n_pools):
        sel = trace.log_pool == k
        t = trace.log_time[sel]
        occ = np.cumsum(trace.log_delta[sel].astype(np.int64))
        ends = np.append(t[1:], h)
        area[k] = np.sum(occ * np.maximum(np.minimum(ends, h) - np.maximum(t, w), 0.0))
    return area


def assert_same(network, table):
    """Both engines give the identical trace; the numba engine run without a log gives the same
    visits and, bit for bit, the occupancy path that metrics compute from the log; and the
    in-window bed days, which metrics report as mean occupancy, are the time-integral of the
    log."""
    a = numba_core.run(network, table)
    b = simpy_model.run(network, table)
    assert a.equals(b), a.differences(b)
    streamed = numba_core.run(network, table, log=False)
    assert len(streamed.log_time) == 0 and streamed.path is not None
    for f in ("used_pool", "request", "admit", "leave", "flags", "moved_at"):
        assert np.array_equal(getattr(a, f), getattr(streamed, f), equal_nan=True), f
    looped = numba_core.run(network, table, log=False, event_loop=True)
    for f in ("used_pool", "request", "admit", "leave", "flags", "moved_at"):
        assert np.array_equal(getattr(looped, f), getattr(streamed, f), equal_nan=True), f
    expected = occupancy_path(a.log_time, a.log_pool, a.log_delta, network.capacity,
                              network.cc_time, network.cc_pool, network.cc_capacity,
                              network.warmup, network.horizon, float(np.ceil(network.warmup)),
                              network.n_days)
    for trace in (streamed, looped):  # the recursion (if it applies) and the event loop
        got = (trace.path.full_time, trace.path.census)  # untracked pools' from their stays
        for name, x, y in zip(("full_time", "census"), expected, got, strict=True):
            assert x.dtype == y.dtype and np.array_equal(x, y), name
    sums, _, _ = visit_sums(
        table.visit_pool, a.used_pool, a.request, a.admit, a.leave, a.flags, table.visit_los,
        network.warmup, network.horizon, network.n_pools, 1 / 6, 1 / 2,
        last_visits(table.visit_start), a.moved_at, network.move_to)
    np.testing.assert_allclose(sums[:, _BED_DAYS], log_area(a, network), rtol=1e-12, atol=1e-9)
    return a


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_identical_traces_with_simultaneous_events(data):
    network = data.draw(networks())
    table = data.draw(tied_tables(network))
    assert_same(network, table)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(network=networks(), seed=st.integers(0, 2**32 - 1))
def test_identical_traces_on_generated_tables(network, seed):
    table = demand.generate(network, seed, 0)
    assert_same(network, table)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_recursion_replays_single_visit_networks_exactly(data):
    """The Kiefer-Wolfowitz shortcut gives the event loops' trace and path, ties included."""
    network = data.draw(networks(single_visit=True))
    table = data.draw(tied_tables(network))
    assert kiefer_wolfowitz.applies(network, table)
    assert_same(network, table)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(network=networks(single_visit=True), seed=st.integers(0, 2**32 - 1))
def test_recursion_replays_generated_single_visit_tables_exactly(network, seed):
    table = demand.generate(network, seed, 0)
    assert kiefer_wolfowitz.applies(network, table)
    assert_same(network, table)


def test_recursion_replays_a_busy_queue_and_a_loss_system_exactly():
    """Long runs near capacity (many patients find the pool full) on both policies."""
    for when_full in ("queue", "lose"):
        doc = {"name": "busy", "start": "2020-01-01", "warmup_days": 30, "run_days": 2000,
               "pools": {"ward": {"capacity": 37, "when_full": when_full}},
               "cohorts": {"c": {"arrivals": {"per_year": 365 * 7.2}, "pathway": [
                   {"stage": "s", "pool": "ward", "los": {"dist": "lognormal", "mean": 5.0,
                                                          "cv": 0.8}}]}}}
        network = compile_network(scenario_from_dict(doc))
        table = demand.generate(network, 7, 0)
        assert kiefer_wolfowitz.applies(network, table)
        trace = assert_same(network, table)
        found_full = (trace.flags & 1).mean()
        assert 0.05 < found_full < 0.95, found_full


@pytest.mark.parametrize("beds", [1, 2, 3, 4, 5, 15, 16, 17, 63, 64, 65, 257])
def test_recursion_replays_every_tree_shape_exactly(beds):
    """Near capacity on both policies, with beds at and either side of the 4-ary trees' powers
    of four (one leaf; one, two, three and four levels; leaves without a bed)."""
    for when_full in ("queue", "lose"):
        doc = {"name": "shape", "start": "2020-01-01", "warmup_days": 0, "run_days": 150,
               "pools": {"ward": {"capacity": beds, "when_full": when_full}},
               "cohorts": {"c": {"arrivals": {"per_year": 365 * beds / 2.0 * 0.97}, "pathway": [
                   {"stage": "s", "pool": "ward", "los": {"dist": "lognormal", "mean": 2.0,
                                                          "cv": 1.0}}]}}}
        network = compile_network(scenario_from_dict(doc))
        table = demand.generate(network, beds, 0)
        assert kiefer_wolfowitz.applies(network, table)
        trace = assert_same(network, table)
        assert (trace.flags & 1).any()  # some find the pool full: the tree is full too


def test_recursion_is_left_to_the_event_loop_when_its_trees_outgrow_the_cache():
    for beds, expected in ((626, True), (65_000, True), (66_000, False)):  # 0.7, 2.8 MiB
        doc = {"name": "big", "start": "2020-01-01", "warmup_days": 0, "run_days": 5,
               "pools": {"ward": {"capacity": beds, "when_full": "queue"}},
               "cohorts": {"c": {"arrivals": {"per_year": 3650}, "pathway": [
                   {"stage": "s", "pool": "ward", "los": {"dist": "exponential", "mean": 1}}]}}}
        network = compile_network(scenario_from_dict(doc))
        assert kiefer_wolfowitz.applies(network, demand.generate(network, 1, 0)) is expected


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(network=networks(), seed=st.integers(0, 2**32 - 1))
def test_wait_percentiles_are_numpys_of_the_traced_waits(network, seed):
    """A pool's 95th-percentile wait is ``np.percentile`` of the waits of visits asking for it
    in the window and not turned away (never admitted: waiting to the horizon)."""
    table = demand.generate(network, seed, 0)
    trace = numba_core.run(network, table, log=False)
    got = replication_metrics(network, table, trace).pool[:, POOL_METRICS.index("wait_p95_days")]
    r = trace.request
    asked = (r >= network.warmup) & (r < network.horizon) & ((trace.flags & LOST) == 0)
    waits = np.where(np.isnan(trace.admit), network.horizon, trace.admit) - r
    for k in range(network.n_pools):
        mine = waits[asked & (table.visit_pool == k)]
        assert got[k] == (np.percentile(mine, 95) if mine.size else 0.0), k


def test_untracked_pools_census_is_counted_from_their_stays_with_blocking():
    """A pool without a capacity whose patients wait in their beds for a full one (and one
    that such a pool feeds): the engine without a log gives the census of the log, and
    metrics of the same trace twice are the same."""
    for capacities in ((None, 12), (40, None)):
        network = compile_network(two_stage(capacities=capacities, p_next=0.6, run=200))
        assert not network.tracked.all()
        table = demand.generate(network, 3, 0)
        logged = numba_core.run(network, table)
        expected = occupancy_path(logged.log_time, logged.log_pool, logged.log_delta,
                                  network.capacity, network.cc_time, network.cc_pool,
                                  network.cc_capacity, network.warmup, network.horizon,
                                  float(np.ceil(network.warmup)), network.n_days)[1]
        trace = numba_core.run(network, table, log=False)
        np.testing.assert_array_equal(trace.path.census, expected)
        assert expected[~network.tracked].any()
        if capacities[0] is None:  # transfers to the 12 rehab beds are delayed in acute beds
            assert (trace.leave > table.visit_los + trace.admit + 1e-9).any()
        first, second = (replication_metrics(network, table, trace) for _ in range(2))
        np.testing.assert_array_equal(first.census, second.census)
        np.testing.assert_array_equal(first.pool, second.pool)


def test_identical_traces_with_blocking_and_queues():
    """A two-stage pathway where a small rehab unit blocks acute beds (delayed transfers)."""
    network = compile_network(two_stage(capacities=(40, 30), run=300))
    table = demand.generate(network, 7, 0)
    trace = assert_same(network, table)
    second = np.diff(table.visit_start) == 2
    rehab = table.visit_start[:-1][second] + 1
    blocked = trace.admit[rehab] > trace.request[rehab]
    assert blocked.sum() > 10  # the test really exercises blocked transfers


def test_overflow_and_loss_are_exercised():
    doc = {"name": "overflow", "start": "2020-01-01", "warmup_days": 0, "run_days": 200,
           "pools": {"main": {"capacity": 5, "when_full": "overflow:spill"},
                     "spill": {"capacity": 2, "when_full": "lose"}},
           "cohorts": {"c": {"arrivals": {"per_year": 365 * 3},
                             "pathway": [{"stage": "s", "pool": "main",
                                          "los": {"dist": "exponential", "mean": 2.0}}]}}}
    network = compile_network(scenario_from_dict(doc))
    table = demand.generate(network, 3, 0)
    trace = assert_same(network, table)
    from sim.engines.trace import LOST, OVERFLOWED

    assert ((trace.flags & OVERFLOWED) > 0).sum() > 10
    assert ((trace.flags & LOST) > 0).sum() > 10


def test_identical_traces_with_holds_moves_and_outliers():
    """Weekend discharge holds, and capacity cuts that move or outlie patients, on both engines."""
    doc = {"name": "cuts", "start": "2020-01-01", "warmup_days": 10, "run_days": 200,
           "pools": {"acute": {"capacity": 30, "when_full": "queue", "on_reduction": "move:spare",
                               "capacity_changes": [{"date": "2020-03-01", "capacity": 16},
                                                    {"date": "2020-05-01", "capacity": 26}],
                               "discharges": {"weekday": [1, 1, 1, 1, 1, 0.4, 0.3],
                                              "hours": [9, 19]}},
                     "spare": {"capacity": 8, "when_full": "queue", "on_reduction": "outlie",
                               "capacity_changes": [{"date": "2020-02-15", "capacity": 0}]},
                     "rehab": {"capacity": 12, "when_full": "queue"}},
           "cohorts": {"c": {"arrivals": {"per_year": 365 * 7}, "pathway": [
               {"stage": "acute", "pool": {"acute": 0.85, "spare": 0.15},
                "los": {"dist": "lognormal", "mean": 4.0, "cv": 1.0},
                "next": {"rehab": 0.3, "home": 0.6, "died": 0.1}},
               {"stage": "rehab", "pool": "rehab", "los": {"dist": "exponential", "mean": 6.0}}]}}}
    network = compile_network(scenario_from_dict(doc))
    table = demand.generate(network, 5, 0)
    trace = assert_same(network, table)
    from sim.engines.trace import MOVED, OUTLIED

    assert ((trace.flags & MOVED) > 0).sum() >= 5
    assert ((trace.flags & OUTLIED) > 0).sum() >= 3
    last = table.visit_start[1:] - 1
    held = trace.leave[last] - trace.admit[last] - table.visit_los[last]
    assert (held > 1e-9).sum() > 50


def test_conservation_and_capacity():
    """Every bed taken is freed at most once; occupancy never exceeds capacity."""
    network = compile_network(two_stage(capacities=(38, 28), run=300))
    table = demand.generate(network, 11, 0)
    trace = numba_core.run(network, table)
    occ = np.zeros(network.n_pools, dtype=int)
    for k, d in zip(trace.log_pool, trace.log_delta, strict=True):
        occ[k] += d
        assert 0 <= occ[k] <= network.capacity[k]
    admitted = ~np.isnan(trace.admit)
    still_in = admitted & np.isnan(trace.leave)
    assert (occ == np.bincount(trace.used_pool[still_in], minlength=network.n_pools)).all()
    assert np.all(trace.leave[admitted & ~still_in] >= trace.admit[admitted & ~still_in])


@njit  # not cached: numba's cache would not notice a change to the inlined queue functions
def _queue_order(gaps, los, ids, pops_after):
    """Push visit ids[i] at (its arrival + los[i]), arrivals ``gaps`` apart, popping up to
    ``pops_after[i]`` ends of stay after each push (time moves to each one popped, so no end is
    scheduled before the last popped, as in the engine); returns the popped visits and times."""
    n = gaps.shape[0]
    q, qs = new_queue(n)
    out = np.empty(n, np.int64)
    times = np.empty(n)
    k = 0
    now = 0.0
    for i in range(n + 1):
        if i < n:
            now += gaps[i]
            qs = push(q, qs, now + los[i], ids[i])
        todo = pops_after[i] if i < n else n
        while todo > 0:
            t, qs = peek(q, qs)
            if t == np.inf:
                break
            now = max(now, t)
            times[k] = t
            out[k], qs = pop(q, qs)
            k += 1
            todo -= 1
    return out[:k], times[:k]


@settings(max_examples=200, deadline=None)
@given(data=st.data(), n=st.integers(1, 400))
def test_event_queue_pops_in_time_then_index_order(data, n):
    """The engine's radix queue pops ends of stay in (time, visit) order, ties included: each
    pop is the least pair still queued, and peek gives its time. Visits are pushed in any
    order (the engine pushes a queued patient's visit when a bed frees)."""
    gaps = np.array(data.draw(st.lists(st.sampled_from([0.0, 0.25, 1.0, 0.1]), min_size=n,
                                       max_size=n)))
    los = np.array(data.draw(st.lists(st.sampled_from([0.0, 0.25, 0.5, 3.0, 0.3, 1e-9, 40.0]),
                                      min_size=n, max_size=n)))
    pops_after = np.array(data.draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)),
                          np.int64)
    ids = np.array(data.draw(st.permutations(range(n))), np.int64)
    got, got_t = _queue_order(gaps, los, ids, pops_after)
    alive: list[tuple[float, int]] = []
    want, want_t = [], []
    now = 0.0
    for i in range(n + 1):
        if i < n:
            now += gaps[i]
            alive.append((now + los[i], int(ids[i])))
        for _ in range(pops_after[i] if i < n else n):
            if not alive:
                break
            alive.sort()
            t, v = alive.pop(0)
            now = max(now, t)
            want.append(v)
            want_t.append(t)
    assert got.tolist() == want
    assert got_t.tolist() == want_t


@njit  # not cached, as _queue_order
def _steady_queue(c, los, ids):
    """Keep ``c`` ends of stay queued in a queue of capacity ``c``: pop one, push the next at
    the time popped + los[i]; many more pushes than the capacity, so the run wraps around."""
    q, qs = new_queue(c)
    n = los.shape[0]
    out = np.empty(n, np.int64)
    times = np.empty(n)
    for i in range(c):
        qs = push(q, qs, los[i], ids[i])
    for i in range(n):
        times[i], qs = peek(q, qs)
        out[i], qs = pop(q, qs)
        if i + c < n:
            qs = push(q, qs, times[i] + los[i + c], ids[i + c])
    return out, times


@settings(max_examples=100, deadline=None)
@given(data=st.data(), c=st.integers(1, 40), n=st.integers(1, 600))
def test_event_queue_at_capacity_pops_in_order(data, c, n):
    """A queue held full for many more pushes than its capacity (as in the engine, whose
    queue holds at most one end of stay per visit in a bed) pops in (time, visit) order."""
    n = max(n, c)
    los = np.array(data.draw(st.lists(st.sampled_from([0.0, 1e-9, 0.01, 0.5, 2.0, 30.0]),
                                      min_size=n, max_size=n)))
    ids = np.array(data.draw(st.permutations(range(n))), np.int64)
    got, got_t = _steady_queue(c, los, ids)
    alive = [(los[i], int(ids[i])) for i in range(c)]
    heapq.heapify(alive)
    want, want_t = [], []
    for i in range(n):
        t, v = heapq.heappop(alive)
        want.append(v)
        want_t.append(t)
        if i + c < n:
            heapq.heappush(alive, (t + los[i + c], int(ids[i + c])))
    assert got.tolist() == want
    assert got_t.tolist() == want_t


@njit
def _write_through_borrowed(a, i, value):
    b = borrowed(a)
    b[i] = value
    return b[i + 1] + b.shape[0], b.strides[0]


def test_borrowed_view_is_the_array_without_its_count() -> None:
    """The engine's borrowed queue, acc and flags: the same memory, shape and strides."""
    a = np.arange(6, dtype=np.int64)
    total, stride = _write_through_borrowed(a, 2, -9)
    assert a.tolist() == [0, 1, -9, 3, 4, 5]
    assert (total, stride) == (3 + 6, 8)
