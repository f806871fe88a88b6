"""Statistical validation against exact queueing theory, through the public API only.

Every check compares the mean of independent per-replication estimates with its exact
expectation, within a t critical value times the standard error across replications
(two-sided level ``ALPHA`` per check, Bonferroni-style, so the whole file fails by chance with
probability below about 0.2%). Each check also requires the standard error to be small relative
to the quantity tested, so a bias cannot hide behind a wide interval.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from scipy import integrate, optimize, special, stats

import sim
from tests.helpers import erlang_b, single_pool, two_stage

ALPHA = 1e-4  # per check, two-sided; about 25 checks per run of this file


def check_mean(samples: np.ndarray, expected: float, max_rel_se: float, label: str,
               scale: float | None = None) -> tuple[float, float]:
    """Assert mean(samples) == expected within t(1-ALPHA/2, R-1) standard errors.

    The SE must also be at most ``max_rel_se`` of ``scale`` (default: the expected value).
    """
    x = np.asarray(samples, dtype=float)
    r = x.size
    mean = float(x.mean())
    se = float(x.std(ddof=1) / math.sqrt(r))
    crit = float(stats.t.ppf(1 - ALPHA / 2, r - 1))
    print(f"{label}: simulated {mean:.6g} (SE {se:.3g}, R={r}) vs theory {expected:.6g}; "
          f"z = {(mean - expected) / se if se > 0 else math.inf:+.2f}")
    scale = abs(expected) if scale is None else abs(scale)
    assert se <= max_rel_se * scale, (
        f"{label}: SE {se:.3g} is more than {max_rel_se:.1%} of {scale:.4g}: too few replications "
        "for the test to detect a bias")
    assert abs(mean - expected) <= crit * se, (
        f"{label}: simulated {mean:.6g} differs from theory {expected:.6g} by "
        f"{(mean - expected) / se:+.2f} SE (limit {crit:.2f})")
    return mean, se


# --------------------------------------------------------------------------- exact theory


def erlang_c(c: int, a: float) -> float:
    """Erlang C: probability an arrival waits in an M/M/c queue with offered load a < c."""
    b = erlang_b(c, a)
    rho = a / c
    return b / (1.0 - rho * (1.0 - b))


def _weibull_shape(cv: float) -> float:
    """Weibull shape k with the given cv (independent of sim.los)."""
    def f(k: float) -> float:
        return math.exp(special.gammaln(1 + 2 / k) - 2 * special.gammaln(1 + 1 / k)) - 1 - cv * cv
    return optimize.brentq(f, 0.05, 100.0)


def excess(spec: dict[str, Any]) -> Callable[[np.ndarray], np.ndarray]:
    """g(h) = E[(S - h)^+] for a LoS spec given by mean and cv, from textbook formulas.

    For an M/G/inf system started empty at time 0, the census N(t) is Poisson with mean
    lambda * (E[S] - g(t)) and Cov(N(s), N(t)) = lambda * (g(t - s) - g(t)) for s <= t.
    """
    m = float(spec["mean"])
    dist = spec["dist"]
    if dist == "fixed":
        return lambda h: np.maximum(m - np.asarray(h, float), 0.0)
    if dist == "exponential":
        return lambda h: m * np.exp(-np.asarray(h, float) / m)
    cv = float(spec["cv"])
    if dist == "lognormal":
        sigma = math.sqrt(math.log1p(cv * cv))
        mu = math.log(m) - sigma * sigma / 2

        def g_ln(h: np.ndarray) -> np.ndarray:
            h = np.asarray(h, float)
            z = (np.log(np.maximum(h, 1e-300)) - mu) / sigma
            return m * special.ndtr(sigma - z) - h * special.ndtr(-z)
        return g_ln
    if dist == "gamma":
        k, theta = 1 / cv**2, m * cv**2
        return lambda h: (m * special.gammaincc(k + 1, np.asarray(h, float) / theta)
                          - np.asarray(h, float) * special.gammaincc(k, np.asarray(h, float) / theta))
    if dist == "weibull":
        k = _weibull_shape(cv)
        scale = m / math.gamma(1 + 1 / k)

        def g_wb(h: np.ndarray) -> np.ndarray:
            y = (np.asarray(h, float) / scale) ** k
            return m * special.gammaincc(1 + 1 / k, y) - np.asarray(h, float) * np.exp(-y)
        return g_wb
    raise ValueError(dist)


def mginf_census_moments(lam: float, spec: dict[str, Any], midnights: np.ndarray) -> tuple[float, float, float]:
    """Exact E[mean of daily census], E[within-run sample variance], and mean Var N(t_i).

    The within-run variance over n autocorrelated days is biased low by the variance of the
    run mean; this uses the exact covariance matrix of the census, so no approximation remains.
    """
    g = excess(spec)
    m = float(spec["mean"])
    t = midnights.astype(float)
    mu = lam * (m - g(t))
    lag = np.abs(t[:, None] - t[None, :])
    cov = lam * (g(lag) - g(np.maximum(t[:, None], t[None, :])))
    n = t.size
    expected_ss = np.trace(cov) - cov.sum() / n + ((mu - mu.mean()) ** 2).sum()
    return float(mu.mean()), float(expected_ss / (n - 1)), float(np.diag(cov).mean())


# --------------------------------------------------------------------------- M/G/inf

MGINF_SHAPES = {
    "lognormal_cv1.5": {"dist": "lognormal", "mean": 4.0, "cv": 1.5},
    "gamma_cv0.5": {"dist": "gamma", "mean": 4.0, "cv": 0.5},
    "fixed": {"dist": "fixed", "mean": 4.0},
}


def _mginf(spec: dict[str, Any], lam: float, reps: int, run: float, warmup: float,
           max_rel_se_mean: float, max_rel_se_var: float, seed: int) -> None:
    scenario = single_pool(lam * 365, spec, capacity=None, warmup=warmup, run=run, name="mginf")
    res = sim.run(scenario, replications=reps, seed=seed, jobs=1)
    census = res.census_days[:, 0, :].astype(float)
    midnights = np.arange(math.ceil(warmup), math.ceil(warmup + run))
    assert census.shape == (reps, midnights.size)
    mean_theory, s2_theory, var_theory = mginf_census_moments(lam, spec, midnights)
    # Poisson: variance equals the mean at every midnight.
    assert var_theory == pytest.approx(mean_theory, rel=1e-9)
    label = f"M/G/inf {spec['dist']} cv={spec.get('cv', 0)}"
    check_mean(census.mean(axis=1), mean_theory, max_rel_se_mean, f"{label} census mean")
    s2 = census.var(axis=1, ddof=1)
    check_mean(s2, s2_theory, max_rel_se_var, f"{label} census within-run variance")
    print(f"{label}: index of dispersion {s2.mean() / census.mean():.4f} "
          f"(theory for {midnights.size} autocorrelated days: {s2_theory / mean_theory:.4f})")
    check_mean(res.metric("ward", "mean_occupancy"), lam * float(spec["mean"]), max_rel_se_mean,
               f"{label} time-weighted mean occupancy")
    # Unlimited pool: the engine's census equals the unconstrained census computed from the
    # patient table alone (two independent code paths).
    np.testing.assert_array_equal(res.census_days, res.unconstrained_census)
    np.testing.assert_allclose(res.metric("ward", "unconstrained_mean_occupancy"),
                               res.metric("ward", "mean_occupancy"), rtol=1e-9)
    assert (res.metric("ward", "p_full_arrival") == 0).all()


@pytest.mark.parametrize("shape", list(MGINF_SHAPES))
def test_mginf_census_is_poisson(shape: str) -> None:
    """Unlimited pool: the midnight census is Poisson with mean lambda * E[LoS]."""
    _mginf(MGINF_SHAPES[shape], lam=20.0, reps=40, run=1000.0, warmup=365.0,
           max_rel_se_mean=0.005, max_rel_se_var=0.03, seed=11)


@pytest.mark.slow
@pytest.mark.parametrize("shape", [*MGINF_SHAPES, "weibull_cv2"])
def test_mginf_census_is_poisson_precise(shape: str) -> None:
    """The same with 10x the replications (and a heavy-tailed weibull): finer tolerances."""
    spec = MGINF_SHAPES.get(shape, {"dist": "weibull", "mean": 4.0, "cv": 2.0})
    _mginf(spec, lam=20.0, reps=200, run=2000.0, warmup=365.0,
           max_rel_se_mean=0.0015, max_rel_se_var=0.01, seed=12)


def test_mginf_theory_self_check() -> None:
    """The exact moments used above reduce to the known stationary limits."""
    for spec in MGINF_SHAPES.values():
        g = excess(spec)
        assert float(g(np.array(0.0))) == pytest.approx(spec["mean"], rel=1e-9)
        # Integral of g over [0, inf) is E[S^2] / 2.
        cv = spec.get("cv", 0.0)
        upper = spec["mean"] if spec["dist"] == "fixed" else np.inf
        total = integrate.quad(lambda h, g=g: float(g(np.array(h))), 0, upper, limit=500)[0]
        assert total == pytest.approx(spec["mean"] ** 2 * (1 + cv * cv) / 2, rel=1e-4)
    mean, s2, _ = mginf_census_moments(10.0, MGINF_SHAPES["gamma_cv0.5"], np.arange(400, 800))
    assert mean == pytest.approx(40.0, rel=1e-9)
    assert 0.95 * 40 < s2 < 40.0


# --------------------------------------------------------------------------- Erlang B


def test_erlang_formulas() -> None:
    """The reference formulas against direct sums (c=10, A=8)."""
    c, a = 10, 8.0
    terms = np.array([a**k / math.factorial(k) for k in range(c + 1)])
    assert erlang_b(c, a) == pytest.approx(terms[-1] / terms.sum(), rel=1e-12)
    p_wait = (a**c / math.factorial(c) * c / (c - a)) / (terms[:-1].sum() + a**c / math.factorial(c) * c / (c - a))
    assert erlang_c(c, a) == pytest.approx(p_wait, rel=1e-12)


def _erlang_b(spec: dict[str, Any], c: int, load: float, reps: int, run: float,
              max_rel_se: float, seed: int) -> None:
    lam = load / float(spec["mean"])
    scenario = single_pool(lam * 365, spec, capacity=c, when_full="lose", warmup=200.0, run=run,
                           name="erlang-b")
    res = sim.run(scenario, replications=reps, seed=seed, jobs=1)
    label = f"Erlang B c={c} A={load} {spec['dist']}"
    check_mean(res.metric("ward", "p_full_arrival"), erlang_b(c, load), max_rel_se, f"{label} P(lost)")
    lost = res.metric("ward", "lost") / res.metric("ward", "arrivals")
    np.testing.assert_array_equal(lost, res.metric("ward", "p_full_arrival"))
    # Poisson arrivals see time averages: the fraction of time full is B too.
    check_mean(res.metric("ward", "p_full_time"), erlang_b(c, load), max_rel_se, f"{label} P(full), time")
    # Carried load = A (1 - B): mean occupancy of the loss system.
    check_mean(res.metric("ward", "mean_occupancy"), load * (1 - erlang_b(c, load)), max_rel_se,
               f"{label} carried load")


ERLANG_B_SHAPES = {
    "exponential": {"dist": "exponential", "mean": 2.0},
    "lognormal_cv1.5": {"dist": "lognormal", "mean": 2.0, "cv": 1.5},
}


@pytest.mark.parametrize("shape", list(ERLANG_B_SHAPES))
def test_erlang_b_loss_pool(shape: str) -> None:
    """A `lose` pool turns away ErlangB(c, A) of arrivals whatever the LoS shape."""
    _erlang_b(ERLANG_B_SHAPES[shape], c=10, load=8.0, reps=40, run=2000.0, max_rel_se=0.015, seed=21)


@pytest.mark.slow
@pytest.mark.parametrize("shape", [*ERLANG_B_SHAPES, "weibull_cv2"])
def test_erlang_b_loss_pool_precise(shape: str) -> None:
    spec = ERLANG_B_SHAPES.get(shape, {"dist": "weibull", "mean": 2.0, "cv": 2.0})
    _erlang_b(spec, c=20, load=18.0, reps=200, run=4000.0, max_rel_se=0.005, seed=22)


# --------------------------------------------------------------------------- Erlang C


def _erlang_c(c: int, lam: float, mean_los: float, reps: int, run: float, max_rel_se: float,
              seed: int) -> None:
    mu = 1.0 / mean_los
    load = lam / mu
    scenario = single_pool(lam * 365, {"dist": "exponential", "mean": mean_los}, capacity=c,
                           when_full="queue", warmup=300.0, run=run, name="erlang-c")
    res = sim.run(scenario, replications=reps, seed=seed, jobs=1)
    p_wait = erlang_c(c, load)
    label = f"Erlang C c={c} A={load}"
    check_mean(res.metric("ward", "mean_wait_days"), p_wait / (c * mu - lam), max_rel_se,
               f"{label} mean wait (days)")
    check_mean(res.metric("ward", "p_full_arrival"), p_wait, max_rel_se, f"{label} P(wait)")
    check_mean(res.metric("ward", "p_full_time"), p_wait, max_rel_se, f"{label} P(all beds busy), time")
    check_mean(res.metric("ward", "mean_occupancy"), load, max_rel_se, f"{label} mean occupancy")
    assert (res.metric("ward", "lost") == 0).all()


def test_erlang_c_queue_pool() -> None:
    """M/M/c `queue` pool: mean wait C(c, A) / (c mu - lambda); P(wait) = C(c, A)."""
    _erlang_c(c=5, lam=4.0, mean_los=1.0, reps=100, run=2000.0, max_rel_se=0.025, seed=31)


@pytest.mark.slow
def test_erlang_c_queue_pool_precise() -> None:
    _erlang_c(c=20, lam=18.0, mean_los=1.0, reps=200, run=5000.0, max_rel_se=0.01, seed=32)


# --------------------------------------------------------------------------- Little's law

ACUTE_LOS, REHAB_LOS = 3.0, 8.0  # means of tests.helpers.two_stage


def test_little_unlimited_two_stage() -> None:
    """Unlimited pools: occupancy = lambda * p * E[LoS], admissions = lambda * p."""
    lam, p = 10.0, 0.4
    scenario = two_stage((None, None), per_year=lam * 365, p_next=p, warmup=300.0, run=1000.0)
    res = sim.run(scenario, replications=40, seed=41, jobs=1)
    run = scenario.run_days
    check_mean(res.metric("acute", "mean_occupancy"), lam * ACUTE_LOS, 0.005, "unlimited acute occupancy")
    check_mean(res.metric("rehab", "mean_occupancy"), lam * p * REHAB_LOS, 0.01, "unlimited rehab occupancy")
    check_mean(res.metric("acute", "admissions") / run, lam, 0.005, "unlimited acute admissions/day")
    check_mean(res.metric("rehab", "admissions") / run, lam * p, 0.01, "unlimited rehab admissions/day")
    for pool in ("acute", "rehab"):
        assert (res.metric(pool, "delayed_transfer_days") == 0).all()
        assert (res.metric(pool, "mean_wait_days") == 0).all()


def _little_blocking(reps: int, run: float, max_rel_se: float, seed: int) -> None:
    """Capacitated, queueing, blocking: L = (admissions / T) * (E[LoS] + delayed days / admission)."""
    scenario = two_stage((36, 34), per_year=3650.0, p_next=0.4, warmup=300.0, run=run)
    res = sim.run(scenario, replications=reps, seed=seed, jobs=1)
    t = scenario.run_days
    for pool, los in (("acute", ACUTE_LOS), ("rehab", REHAB_LOS)):
        occ = res.metric(pool, "mean_occupancy")
        adm = res.metric(pool, "admissions")
        delayed = res.metric(pool, "delayed_transfer_days")
        time_in_bed = los + delayed / adm
        little = adm / t * time_in_bed
        print(f"Little {pool}: admissions/day {np.mean(adm) / t:.4f}, mean time in bed "
              f"{np.mean(time_in_bed):.4f} d, delayed {np.mean(delayed / (occ * t)):.2%} of bed days")
        # Per replication, occupancy minus Little's product has expectation 0 in steady state.
        check_mean(occ - little, 0.0, max_rel_se,
                   f"Little's law {pool}: mean occupancy minus rate x time in bed", scale=occ.mean())
    acute_delay = res.metric("acute", "delayed_transfer_pct").mean()
    assert acute_delay > 1.0, f"scenario should block: only {acute_delay:.2f}% acute bed days delayed"
    assert (res.metric("rehab", "delayed_transfer_days") == 0).all()


def test_little_two_stage_with_blocking() -> None:
    """Little's law holds per pool when rehab is full and acute patients wait in their beds."""
    _little_blocking(reps=40, run=1000.0, max_rel_se=0.003, seed=42)


@pytest.mark.slow
def test_little_two_stage_with_blocking_precise() -> None:
    _little_blocking(reps=200, run=3000.0, max_rel_se=0.001, seed=43)
