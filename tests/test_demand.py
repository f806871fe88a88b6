"""Arrivals: the compiled thinning and routing picks decide exactly as the plain formulas."""

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
    """The fast thinning (growth by a Taylor polynomial, exact pow near the boundary) keeps
    exactly the candidates whose uniform is below the exactly computed intensity."""
    c, horizon = _cohort(growth, hourly, overdispersion=0.1)
    for rep in range(3):
        draws = demand.candidate_arrivals(c, horizon, 5, rep)
        day, multiple, times = demand._candidate_times(c, horizon, 5, rep)
        kept = demand._thin(c, times, draws.accept, day, multiple)
        np.testing.assert_array_equal(kept, np.flatnonzero(draws.accept < draws.intensity))
        assert 0 < kept.size < times.size


def test_thinning_decides_uniforms_at_the_boundary_exactly():
    """Uniforms placed on, just below and just above the exact intensity are decided by it,
    not by the approximation (the undecided band goes to pow)."""
    c, horizon = _cohort(0.03, HOURLY)
    draws = demand.candidate_arrivals(c, horizon, 1, 0)
    day, multiple, times = demand._candidate_times(c, horizon, 1, 0)
    x = draws.intensity
    accept = np.concatenate([x, np.nextafter(x, 0.0), np.nextafter(x, 1.0)])
    t3 = np.concatenate([times, times, times])
    order = np.argsort(t3, kind="stable")
    kept = demand._thin(c, t3[order], accept[order], day, multiple)
    want = np.flatnonzero(accept[order] < np.concatenate([x, x, x])[order])
    np.testing.assert_array_equal(kept, want)


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
