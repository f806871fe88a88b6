"""Arrivals: the compiled thinning, routing picks and merge order decide exactly as the plain
formulas."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim import demand
from sim.network import compile_network
from sim.scenario import scenario_from_dict

HOURLY = [0.3] * 6 + [1.2] * 12 + [0.8] * 6


def _cohort(growth: float, hourly: list[float] | None, overdispersion: float = 0.0):
    arrivals = {"per_year": 20000, "growth": growth, "overdispersion": overdispersion,
                "weekday": [1.1, 1.05, 1.0, 1.0, 1.0, 0.9, 0.95],
                "seasonal": [1.1, 1.05, 1.0, 0.95, 0.9, 0.9, 0.95, 0.95, 1.0, 1.0, 1.05, 1.1]}
    if hourly is not None:
        arrivals["hourly"] = hourly
    net = compile_network(scenario_from_dict({
        "name": "arrivals", "start": "2020-01-01", "warmup_days": 0, "run_days": 400,
        "pools": {"ward": {}},
        "cohorts": {"c": {"arrivals": arrivals, "pathway": [
            {"stage": "stay", "pool": "ward", "los": {"dist": "exponential", "mean": 3.0}}]}},
    }))
    return net.cohorts[0], net.horizon


@pytest.mark.parametrize("growth", [0.0, 0.03, -0.2, 4.0])
@pytest.mark.parametrize("hourly", [None, HOURLY])
def test_thinning_accepts_exactly_accept_below_intensity(growth, hourly):
    """The fast thinning (decided on per-day growth bounds, the exact threshold near them) keeps
    exactly the candidates whose uniform is below the exactly computed intensity."""
    c, horizon = _cohort(growth, hourly, overdispersion=0.1)
    for rep in range(3):
        draws = demand.candidate_arrivals(c, horizon, 5, rep)
        day, edges, starts, times = demand._candidate_times(c, horizon, 5, rep)
        kept = demand._thin(c, times, draws.accept, day, edges, starts)
        np.testing.assert_array_equal(kept, np.flatnonzero(draws.accept < draws.intensity))
        assert 0 < kept.size < times.size


@pytest.mark.parametrize("growth", [0.0, 0.03])
def test_thinning_decides_uniforms_at_the_boundary_exactly(growth):
    """Uniforms placed on, just below and just above the exact intensity are decided by it,
    not by the bounds (the undecided band goes to the exact threshold)."""
    c, horizon = _cohort(growth, HOURLY)
    draws = demand.candidate_arrivals(c, horizon, 1, 0)
    day, edges, starts, times = demand._candidate_times(c, horizon, 1, 0)
    assert len(starts) > 2  # more than one band: the test covers band floors and widths
    x = np.clip(draws.intensity, 0.0, np.nextafter(1.0, 0.0))  # uniforms lie in [0, 1)
    # each band's candidates three times: uniform on, just below and just above its threshold
    accept, t3, x3, starts3 = [], [], [], [0]
    for b in range(len(starts) - 1):
        sl = slice(starts[b], starts[b + 1])
        order = np.argsort(np.tile(times[sl], 3), kind="stable")
        accept.append(np.concatenate([x[sl], np.nextafter(x[sl], 0.0),
                                      np.nextafter(x[sl], 1.0)])[order])
        t3.append(np.tile(times[sl], 3)[order])
        x3.append(np.tile(draws.intensity[sl], 3)[order])
        starts3.append(starts3[-1] + 3 * (starts[b + 1] - starts[b]))
    accept, t3, x3 = np.concatenate(accept), np.concatenate(t3), np.concatenate(x3)
    kept = demand._thin(c, t3, accept, day, edges, np.array(starts3))
    np.testing.assert_array_equal(kept, np.flatnonzero(accept < x3))


@settings(max_examples=200, deadline=None)
@given(weights=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=6),
       u=st.lists(st.floats(0.0, 1.0, exclude_max=True), min_size=1, max_size=50))
def test_pick_is_searchsorted_right(weights, u):
    """A routing pick is ``min(searchsorted(cum, u, 'right'), len - 1)`` on a padded row."""
    w = np.array(weights) + 1e-3
    cum = np.cumsum(w / w.sum())
    row = np.concatenate([cum, [np.inf, np.inf]])
    for x in u:
        want = min(int(np.searchsorted(cum, x, side="right")), len(cum) - 1)
        assert demand._pick(row, len(cum), x) == want


@settings(max_examples=100, deadline=None)
@given(pools=st.integers(1, 4), nexts=st.lists(st.integers(-3, 0), min_size=1, max_size=3),
       n_cand=st.integers(0, 40), seed=st.integers(0, 2**32 - 1))
def test_one_stage_walk_equals_the_step_loop(pools, nexts, n_cand, seed):
    """The one-stage shortcut gives the step loop's visits and exits, also when a route names
    a next stage (0: past the only step, so no exit code)."""
    rng = np.random.default_rng(seed)
    pool_cum = np.concatenate([np.sort(rng.random(pools - 1)), [1.0]])[None, :]
    next_cum = np.concatenate([np.sort(rng.random(len(nexts) - 1)), [1.0]])[None, :]
    arrays = (np.arange(pools, dtype=np.int32)[None, :] + 2, pool_cum, np.array([pools]),
              np.array([nexts], np.int32), next_cum, np.array([len(nexts)]))
    cand = np.flatnonzero(rng.random(n_cand) < 0.7)
    routing, los_u = rng.random((n_cand, 2)), rng.random((n_cand, 1))
    pool_u, next_u = (routing[:, j] if n > 1 else np.empty(0)  # a column only if it chooses
                      for j, n in ((0, pools), (1, len(nexts))))
    fast = demand._walk_one_stage(cand, np.ascontiguousarray(pool_u),
                                  np.ascontiguousarray(next_u), los_u[:, 0].copy(), *arrays)
    loop = demand._walk_steps(cand, routing, los_u, *arrays)
    for a, b in zip(fast, loop, strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("low, high", [(0.0, 0.03), (0.03, 0.6), (-0.2, 0.0)])
def test_more_intensity_keeps_every_patient_and_adds_some(low, high):
    """A cohort whose intensity is nowhere lower keeps every patient (same candidate, arrival,
    pool and stay) and adds some: the bands are fixed and drawn in order (CRN across growth)."""
    (a, horizon), (b, _) = _cohort(low, HOURLY), _cohort(high, HOURLY)
    bands = [len(demand._candidate_times(c, horizon, 9, 0)[1]) - 1 for c in (a, b)]
    assert bands[1] > bands[0] if high > 0.5 else bands[1] >= bands[0]
    for rep in range(3):
        pa = demand.cohort_patients(a, horizon, 9, rep)
        pb = demand.cohort_patients(b, horizon, 9, rep)
        common = np.isin(pb.candidate, pa.candidate)
        assert common.sum() == len(pa.candidate) and (~common).sum() > 0
        for name in ("arrival", "mark", "visit_pool", "visit_los"):
            np.testing.assert_array_equal(getattr(pb, name)[common], getattr(pa, name))


def _runs_of_times(draw_runs):
    """Sorted runs of times, as the cohorts' bands give them, concatenated."""
    return np.concatenate([np.sort(np.asarray(r, np.float64)) for r in draw_runs] or [[]])


times = st.one_of(
    st.floats(0.0, 800.0),  # any time in a run
    st.sampled_from([0.0, 1.0, 5.0]),  # ties (census-start patients all arrive at 0)
    st.integers(0, 40).map(lambda k: 5.0 + k * float(np.spacing(5.0))),  # a few ulps apart
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(times, max_size=60), max_size=12))
def test_arrival_order_is_the_stable_argsort(runs):
    arrival = _runs_of_times(runs)
    np.testing.assert_array_equal(demand.arrival_order(arrival),
                                  np.argsort(arrival, kind="stable"))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(times, st.just(np.nan)), max_size=40))
def test_in_order_is_every_pair_non_decreasing(values):
    x = np.asarray(values, np.float64)
    assert demand._in_order(x) == bool(np.all(x[1:] >= x[:-1]))
    assert demand._in_order(np.sort(x[~np.isnan(x)]))


@pytest.mark.parametrize("odd", [np.inf, np.nan, -1.0, -0.0, 1e-310])
def test_arrival_order_outside_its_shortcut_is_the_stable_argsort(odd):
    """Infinite, NaN, negative or signed-zero times take numpy's argsort; subnormal ones the
    shortcut (their bits order them as well)."""
    arrival = np.array([3.0, odd, 0.0, 2.0, odd, 0.0, 1.0])
    np.testing.assert_array_equal(demand.arrival_order(arrival),
                                  np.argsort(arrival, kind="stable"))


def test_arrival_order_falls_back_when_times_crowd_the_low_bits():
    """Many distinct times sharing their high bits would cost more moves than patients: the
    stable argsort then takes over (same result)."""
    n = 4096
    arrival = (7.0 + np.arange(n)[::-1] * float(np.spacing(7.0))).copy()  # descending, ulps apart
    shift = (n - 1).bit_length()
    packed, ok = demand._packed(arrival, shift)
    packed.view(np.float64).sort()
    assert ok and demand._settle(arrival, packed, shift) is None
    np.testing.assert_array_equal(demand.arrival_order(arrival),
                                  np.argsort(arrival, kind="stable"))
