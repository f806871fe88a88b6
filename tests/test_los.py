"""Tests for sim.los: inverse-CDF sampling, moments, bed-day shares, specs and CSV input."""

from __future__ import annotations

import enum
import math
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from scipy import stats

from sim import los
from sim.los import (
    Empirical,
    Exponential,
    Fixed,
    Gamma,
    Lognormal,
    LosDistribution,
    Mixture,
    Weibull,
    from_spec,
)

N = 200_000  # Monte Carlo sample size
Z = 4.0  # tolerance in standard errors
KS_ALPHA = 1e-3


def scipy_equivalent(d: LosDistribution) -> stats.rv_continuous:
    """The frozen scipy.stats distribution with the same parameters as d."""
    if isinstance(d, Exponential):
        return stats.expon(scale=d.mean())
    if isinstance(d, Lognormal):
        return stats.lognorm(s=d.sigma, scale=math.exp(d.mu))
    if isinstance(d, Gamma):
        return stats.gamma(a=d.shape, scale=d.scale)
    if isinstance(d, Weibull):
        return stats.weibull_min(c=d.shape, scale=d.scale)
    raise TypeError(d)


FAMILIES: dict[str, Callable[[float, float], LosDistribution]] = {
    "exponential": lambda mean, cv: Exponential(mean),
    "lognormal": Lognormal,
    "gamma": Gamma,
    "weibull": Weibull,
}
# (mean, cv): STP 65+ acute stays, community stays, short stays, a heavy tail
CASES = [(6.09, 1.4), (21.3, 0.9), (2.52, 0.6), (10.09, 2.0)]
PARAMS = [
    pytest.param(fam, mean, cv, id=f"{fam}-{mean}-{cv}")
    for fam in FAMILIES
    for mean, cv in CASES
    if not (fam == "exponential" and cv != 1.4)  # exponential has cv 1 regardless
]


def make(fam: str, mean: float, cv: float) -> LosDistribution:
    return FAMILIES[fam](mean, cv)


def requested_cv(fam: str, cv: float) -> float:
    return 1.0 if fam == "exponential" else cv


def sample(d: LosDistribution, seed: int, n: int = N) -> np.ndarray:
    return d.ppf(np.random.default_rng(seed).random(n))


def seed_of(*parts: object) -> int:
    """A stable per-test seed (Python's hash() of str is salted per process)."""
    return zlib.crc32(repr(parts).encode())


def central_moments(raw: list[float]) -> tuple[float, float, float, float]:
    """(mean, mu2, mu3, mu4) from raw moments E[L], E[L^2], E[L^3], E[L^4]."""
    m1, m2, m3, m4 = raw
    mu2 = m2 - m1**2
    mu3 = m3 - 3 * m1 * m2 + 2 * m1**3
    mu4 = m4 - 4 * m1 * m3 + 6 * m1**2 * m2 - 3 * m1**4
    return m1, mu2, mu3, mu4


def cv_standard_error(m: float, mu2: float, mu3: float, mu4: float, n: int) -> float:
    """Delta-method standard error of the sample cv s/xbar."""
    s = math.sqrt(mu2)
    g_m = -s / m**2  # d cv / d mean
    g_v = 1.0 / (2.0 * m * s)  # d cv / d variance
    var = g_m**2 * mu2 + g_v**2 * (mu4 - mu2**2) + 2.0 * g_m * g_v * mu3
    return math.sqrt(var / n)


def check_bed_day_share_mc(d: LosDistribution, x: np.ndarray, seed: int) -> None:
    """Closed-form bed_day_share within Z ratio-estimator standard errors of Monte Carlo.

    Only thresholds with at least 100 expected stays beyond them are checked, where the
    normal approximation behind the standard error holds.
    """
    lengths = sample(d, seed)
    n = lengths.size
    checked = 0
    for xi in x:
        if n * float(d.sf(xi)) < 100:
            continue
        s = float(d.bed_day_share(xi))
        est = lengths[lengths >= xi].sum() / lengths.sum()
        z = lengths * ((lengths >= xi) - s) / lengths.mean()
        se = z.std() / math.sqrt(n)
        assert abs(est - s) <= Z * se, (xi, est, s, se)
        checked += 1
    assert checked >= 2


# ---------------------------------------------------------------- continuous families


U_GRID = np.concatenate(
    (np.linspace(0.0, 1.0, 1001)[1:-1], [1e-300, 1e-16, 1e-12, 1e-8, 1 - 1e-8, 1 - 2.0**-53])
)


@pytest.mark.parametrize(("fam", "mean", "cv"), PARAMS)
def test_ppf_matches_scipy(fam: str, mean: float, cv: float) -> None:
    d = make(fam, mean, cv)
    ref = scipy_equivalent(d)
    # quantiles that underflow (u = 0, or u = 1e-300 for small gamma shapes) are clamped up to
    # the smallest positive double, so every stay is > 0
    expected = np.maximum(ref.ppf(U_GRID), np.finfo(float).tiny)
    np.testing.assert_allclose(d.ppf(U_GRID), expected, rtol=1e-10, atol=0)
    assert d.ppf(0.0) == np.finfo(float).tiny
    assert d.ppf(np.zeros(3)).tolist() == [np.finfo(float).tiny] * 3


@pytest.mark.parametrize(("fam", "mean", "cv"), PARAMS)
def test_cdf_sf_consistent_with_ppf(fam: str, mean: float, cv: float) -> None:
    d = make(fam, mean, cv)
    ref = scipy_equivalent(d)
    u = U_GRID[:-2]
    x = d.ppf(u)
    u, x = u[x > np.finfo(float).tiny], x[x > np.finfo(float).tiny]  # drop clamped underflows
    np.testing.assert_allclose(d.cdf(x), u, rtol=1e-9)
    np.testing.assert_allclose(d.cdf(x), ref.cdf(x), rtol=1e-10)
    np.testing.assert_allclose(d.sf(x), ref.sf(x), rtol=1e-9)
    assert d.cdf(0.0) == 0.0 and d.sf(-1.0) == 1.0


@pytest.mark.parametrize(("fam", "mean", "cv"), PARAMS)
def test_moments_are_the_requested_ones(fam: str, mean: float, cv: float) -> None:
    d = make(fam, mean, cv)
    c = requested_cv(fam, cv)
    assert d.mean() == pytest.approx(mean, rel=1e-12)
    assert d.var() == pytest.approx((mean * c) ** 2, rel=1e-12)
    assert d.cv() == pytest.approx(c, rel=1e-12)
    ref = scipy_equivalent(d)
    assert ref.mean() == pytest.approx(mean, rel=1e-12)
    assert ref.std() == pytest.approx(mean * c, rel=1e-10)


@pytest.mark.parametrize(("fam", "mean", "cv"), PARAMS)
def test_sample_mean_cv_and_ks(fam: str, mean: float, cv: float) -> None:
    d = make(fam, mean, cv)
    ref = scipy_equivalent(d)
    x = sample(d, seed_of(fam, mean, cv))
    n = x.size
    se_mean = math.sqrt(d.var() / n)
    assert abs(x.mean() - mean) <= Z * se_mean
    m1, mu2, mu3, mu4 = central_moments([float(ref.moment(k)) for k in (1, 2, 3, 4)])
    se_cv = cv_standard_error(m1, mu2, mu3, mu4, n)
    assert abs(x.std() / x.mean() - requested_cv(fam, cv)) <= Z * se_cv
    assert stats.kstest(x, ref.cdf).pvalue > KS_ALPHA


@pytest.mark.parametrize(("fam", "mean", "cv"), PARAMS)
def test_bed_day_share_closed_form(fam: str, mean: float, cv: float) -> None:
    d = make(fam, mean, cv)
    ref = scipy_equivalent(d)
    xs = np.array([0.5, 3.0, 7.0, 14.0, 21.0, 30.0, 60.0])
    exact = [ref.expect(lambda t: t, lb=x, epsabs=1e-13, epsrel=1e-12) / mean for x in xs]
    np.testing.assert_allclose(d.bed_day_share(xs), exact, rtol=1e-7, atol=1e-12)
    assert d.bed_day_share(0.0) == 1.0
    assert d.bed_day_share(-3.0) == 1.0
    grid = np.linspace(0.0, 20.0 * mean, 400)
    share = d.bed_day_share(grid)
    assert np.all(np.diff(share) <= 0.0)
    assert share[-1] < share[0]


@pytest.mark.parametrize(("fam", "mean", "cv"), PARAMS)
def test_bed_day_share_monte_carlo(fam: str, mean: float, cv: float) -> None:
    d = make(fam, mean, cv)
    check_bed_day_share_mc(d, np.array([1.0, 7.0, 14.0, 21.0, 30.0]), seed_of("bds", fam, cv))


def test_lognormal_stp_tail_figure() -> None:
    """STP_FIGURES s.3: a lognormal of mean 4.62 with 45% of bed days >= 14 d has ~25% >= 30 d."""
    from scipy.optimize import brentq

    cv = brentq(lambda c: Lognormal(4.62, c).bed_day_share(14.0) - 0.45, 0.5, 10.0)
    assert 0.23 < Lognormal(4.62, cv).bed_day_share(30.0) < 0.27


def test_from_natural_round_trips() -> None:
    ln = Lognormal(6.0, 1.4)
    assert Lognormal.from_natural(ln.mu, ln.sigma).ppf(0.7) == ln.ppf(0.7)
    g = Gamma(6.0, 1.4)
    assert Gamma.from_natural(g.shape, g.scale).mean() == pytest.approx(6.0, rel=1e-14)
    w = Weibull(6.0, 1.4)
    w2 = Weibull.from_natural(w.shape, w.scale)
    assert (w2.mean(), w2.cv()) == pytest.approx((6.0, 1.4), rel=1e-12)
    with pytest.raises(ValueError, match="sigma"):
        Lognormal.from_natural(1.0, 0.0)


@pytest.mark.parametrize("cv", np.round(np.linspace(0.2, 3.0, 29), 3).tolist())
def test_weibull_solves_cv(cv: float) -> None:
    d = Weibull(6.0, cv)
    ref = stats.weibull_min(c=d.shape, scale=d.scale)
    assert ref.mean() == pytest.approx(6.0, rel=1e-10)
    assert ref.std() / ref.mean() == pytest.approx(cv, rel=1e-9)


def test_weibull_cv_one_is_exponential() -> None:
    d = Weibull(5.0, 1.0)
    assert d.shape == pytest.approx(1.0, rel=1e-12)
    u = np.linspace(0.0, 0.99, 50)
    np.testing.assert_allclose(d.ppf(u), Exponential(5.0).ppf(u), rtol=1e-12)


def test_gamma_fast_ppf_matches_gammaincinv() -> None:
    """The tabulated gamma quantile agrees with gammaincinv at every kind of uniform."""
    rng = np.random.default_rng(7)
    u = np.concatenate(
        (
            rng.random(50_000),
            np.arange(1, 500) * 2.0**-53,
            1.0 - np.arange(1, 500) * 2.0**-53,
            np.logspace(-300, -1, 500),
            [0.0, 5e-324],
        )
    )
    for cv in (0.05, 0.3, 1.0, 1.4, 2.5, 5.0, 20.0):
        g = Gamma(3.0, cv)
        np.testing.assert_allclose(g.ppf(u), g.ppf_exact(u), rtol=1e-10, atol=0)


def test_ppf_is_elementwise_and_keeps_shape() -> None:
    """A draw depends only on its own uniform, never on the batch it came in."""
    u = np.random.default_rng(3).random((40, 5))
    for d in (Gamma(6, 1.4), Lognormal(6, 1.4), Weibull(6, 1.4), Exponential(6), Fixed(6)):
        out = d.ppf(u)
        assert out.shape == u.shape and out.dtype == np.float64
        assert np.array_equal(out.ravel(), d.ppf(u.ravel()))
        assert d.ppf(float(u[7, 3])) == out[7, 3]
        assert d.ppf(u.ravel()[:0]).shape == (0,)


@pytest.mark.parametrize(
    ("factory", "match"),
    [
        (lambda: Lognormal(0.0, 1.0), "mean"),
        (lambda: Lognormal(5.0, -1.0), "cv"),
        (lambda: Gamma(float("nan"), 1.0), "mean"),
        (lambda: Gamma(5.0, 0.0), "cv"),
        (lambda: Weibull(5.0, float("inf")), "cv"),
        (lambda: Exponential(-2.0), "mean"),
        (lambda: Fixed(0.0), "mean"),
        (lambda: Lognormal("six", 1.0), "number"),
    ],
)
def test_bad_parameters_raise(factory: Callable[[], object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        factory()


# ---------------------------------------------------------------- fixed


def test_fixed() -> None:
    d = Fixed(4.5)
    assert d.ppf(np.array([0.0, 0.3, 0.999])).tolist() == [4.5, 4.5, 4.5]
    assert (d.mean(), d.var(), d.cv()) == (4.5, 0.0, 0.0)
    assert d.cdf(np.array([4.4, 4.5, 5.0])).tolist() == [0.0, 1.0, 1.0]
    assert d.sf(4.5) == 0.0
    assert d.bed_day_share(np.array([0.0, 4.5, 4.6])).tolist() == [1.0, 1.0, 0.0]


# ---------------------------------------------------------------- mixture


def harrison_millard() -> Mixture:
    """Short-stay / long-stay exponentials (Harrison-Millard style)."""
    return Mixture([Exponential(2.0), Exponential(25.0)], [0.85, 0.15])


def mixed_families() -> Mixture:
    return Mixture([Lognormal(3.0, 0.8), Gamma(12.0, 1.2), Weibull(40.0, 0.6)], [0.5, 0.3, 0.2])


MIXTURES = [
    pytest.param(harrison_millard, id="harrison-millard"),
    pytest.param(mixed_families, id="mixed"),
]


@pytest.mark.parametrize("factory", MIXTURES)
def test_mixture_one_uniform_reproduces_cdf(factory: Callable[[], Mixture]) -> None:
    d = factory()
    x = sample(d, seed_of("mix-ks", d.describe()))
    assert stats.kstest(x, d.cdf).pvalue > KS_ALPHA
    n = x.size
    assert abs(x.mean() - d.mean()) <= Z * math.sqrt(d.var() / n)
    # variance: SE of the sample variance from the sample's own fourth central moment
    mu4 = float(np.mean((x - x.mean()) ** 4))
    assert abs(x.var() - d.var()) <= Z * math.sqrt((mu4 - x.var() ** 2) / n)


@pytest.mark.parametrize("factory", MIXTURES)
def test_mixture_bed_day_share(factory: Callable[[], Mixture]) -> None:
    d = factory()
    xs = np.array([0.0, 1.0, 7.0, 14.0, 21.0, 30.0, 60.0])
    share = d.bed_day_share(xs)
    assert share[0] == pytest.approx(1.0, abs=1e-15)
    assert np.all(np.diff(share) < 0.0)
    # weighted by weight * mean
    means = np.array([c.mean() for c in d.components])
    bd = d.weights * means
    manual = sum(b * c.bed_day_share(xs) for b, c in zip(bd, d.components, strict=True)) / bd.sum()
    np.testing.assert_allclose(share, manual, rtol=1e-14)
    check_bed_day_share_mc(d, xs[1:], seed_of("mix-bds", d.describe()))


def test_mixture_slices_and_rescaling() -> None:
    a, b = Exponential(2.0), Exponential(25.0)
    d = Mixture([a, b], [0.85, 0.15])
    u = np.array([0.0, 0.2, 0.84, 0.85, 0.9, 1.0 - 2.0**-53])
    expected = [
        a.ppf(0.0),
        a.ppf(0.2 / 0.85),
        a.ppf(0.84 / 0.85),
        b.ppf(0.0),
        b.ppf((0.9 - 0.85) / 0.15),
        b.ppf((1.0 - 2.0**-53 - 0.85) / 0.15),
    ]
    np.testing.assert_allclose(d.ppf(u), expected, rtol=1e-12)
    assert np.all(np.isfinite(d.ppf(u)))
    assert d.ppf(u.reshape(2, 3)).shape == (2, 3)
    assert d.ppf(0.2) == pytest.approx(a.ppf(0.2 / 0.85), rel=1e-12)


@settings(max_examples=100, deadline=None)
@given(weights=st.lists(st.floats(0.0, 1.0), min_size=2, max_size=4),
       means=st.lists(st.floats(0.01, 100.0), min_size=4, max_size=4),
       u=st.lists(st.one_of(st.floats(0.0, 1.0, exclude_max=True),
                            st.sampled_from([0.0, 2.0**-53, 1.0 - 2.0**-53, math.nan])),
                  min_size=1, max_size=40))
def test_exponential_mixture_shortcut_is_each_components_ppf(weights, means, u) -> None:
    """The fused exponential mixture gives, bit for bit, each component's own ppf of its
    rescaled uniforms (the generic path), NaN included."""
    w = np.array(weights) + 1e-3
    d = Mixture([Exponential(m) for m in means[:len(w)]], w / w.sum())
    ua = np.array(u)
    v, j = los._mixture_slices(ua, d._inner, d._cum, d._w_safe, False)
    expected = np.empty_like(v)
    for k, comp in enumerate(d.components):
        expected[j == k] = comp.ppf(v[j == k])
    np.testing.assert_array_equal(d.ppf(ua), expected)


def test_mixture_zero_weight_component_is_never_drawn() -> None:
    d = Mixture([Fixed(1.0), Fixed(50.0), Fixed(3.0)], [0.5, 0.0, 0.5])
    x = d.ppf(np.random.default_rng(1).random(10_000))
    assert set(np.unique(x).tolist()) == {1.0, 3.0}
    assert d.mean() == pytest.approx(2.0)


def test_mixture_validation() -> None:
    with pytest.raises(ValueError, match="sum to 1"):
        Mixture([Exponential(1.0), Exponential(2.0)], [0.5, 0.6])
    with pytest.raises(ValueError, match="weights"):
        Mixture([Exponential(1.0)], [0.5, 0.5])
    with pytest.raises(ValueError, match=">= 0"):
        Mixture([Exponential(1.0), Exponential(2.0)], [1.5, -0.5])
    with pytest.raises(ValueError, match="at least one"):
        Mixture([], [])


# ---------------------------------------------------------------- empirical


def test_empirical_inverse_ecdf() -> None:
    values = [5.0, 1.0, 3.0, 0.5, 12.0]
    d = Empirical(values)
    srt = np.sort(values)
    u = np.random.default_rng(0).random(1000)
    assert np.array_equal(d.ppf(u), srt[np.floor(u * 5).astype(int)])
    assert d.ppf(0.0) == 0.5 and d.ppf(1.0 - 2.0**-53) == 12.0
    assert d.mean() == pytest.approx(np.mean(values))
    assert d.var() == pytest.approx(np.var(values))
    assert d.cdf(3.0) == pytest.approx(0.6)
    for x in (0.0, 0.5, 0.7, 3.0, 12.0, 13.0):
        arr = np.array(values)
        assert d.bed_day_share(x) == pytest.approx(arr[arr >= x].sum() / arr.sum())


def test_empirical_from_csv_single_column(tmp_path: Path) -> None:
    f = tmp_path / "stays.csv"
    f.write_text("los_days\n2.5\n\n1\n7.25\n")
    d = Empirical.from_csv(f)
    assert d.values.tolist() == [1.0, 2.5, 7.25]
    g = tmp_path / "noheader.csv"
    g.write_text("2.5\n1\n7.25\n")
    assert Empirical.from_csv(g).values.tolist() == [1.0, 2.5, 7.25]


def test_empirical_from_csv_named_column(tmp_path: Path) -> None:
    f = tmp_path / "episodes.csv"
    f.write_text("id,ward,los\n1,A,3.0\n2,B,10\n3,A,0.5\n")
    assert Empirical.from_csv(f, column="los").values.tolist() == [0.5, 3.0, 10.0]
    with pytest.raises(ValueError, match="column"):
        Empirical.from_csv(f)
    with pytest.raises(ValueError, match="no column 'stay'"):
        Empirical.from_csv(f, column="stay")


@pytest.mark.parametrize(
    ("text", "bad"),
    [
        ("los\n3\n4\nabc\n5\n", "line 4: LoS value 'abc'"),
        ("los\n3\n-1\n", "line 3: LoS value '-1'"),
    ],
)
def test_empirical_from_csv_bad_rows(tmp_path: Path, text: str, bad: str) -> None:
    f = tmp_path / "bad.csv"
    f.write_text(text)
    with pytest.raises(ValueError) as err:
        Empirical.from_csv(f)
    assert str(f) in str(err.value) and bad in str(err.value)


def test_empirical_from_csv_empty_or_missing(tmp_path: Path) -> None:
    f = tmp_path / "empty.csv"
    f.write_text("los\n")
    with pytest.raises(ValueError, match="no LoS values"):
        Empirical.from_csv(f)
    with pytest.raises(ValueError, match="cannot read"):
        Empirical.from_csv(tmp_path / "missing.csv")


# ---------------------------------------------------------------- from_spec


class Dist(enum.Enum):
    GAMMA = "gamma"


class LosSpec(BaseModel):
    dist: str
    mean: float | None = None
    cv: float | None = None
    mu: float | None = None
    sigma: float | None = None
    shape: float | None = None
    scale: float | None = None
    weight: float | None = None
    components: list[LosSpec] | None = None
    file: str | None = None
    column: str | None = None


@pytest.mark.parametrize(
    ("spec", "cls", "mean", "cv"),
    [
        ({"dist": "exponential", "mean": 3.0}, Exponential, 3.0, 1.0),
        ({"dist": "lognormal", "mean": 6.1, "cv": 1.4}, Lognormal, 6.1, 1.4),
        ({"dist": "gamma", "mean": 6.1, "cv": 1.4}, Gamma, 6.1, 1.4),
        ({"dist": "weibull", "mean": 6.1, "cv": 1.4}, Weibull, 6.1, 1.4),
        ({"dist": "fixed", "mean": 2.0}, Fixed, 2.0, 0.0),
        ({"dist": "lognormal", "mu": 1.0, "sigma": 0.5}, Lognormal, math.exp(1.125), None),
        ({"dist": "gamma", "shape": 2.0, "scale": 3.0}, Gamma, 6.0, math.sqrt(0.5)),
        ({"dist": "weibull", "shape": 1.0, "scale": 3.0}, Weibull, 3.0, 1.0),
        ({"dist": "Gamma", "mean": 5.0, "cv": 0.5}, Gamma, 5.0, 0.5),
        ({"dist": Dist.GAMMA, "mean": 5.0, "cv": 0.5}, Gamma, 5.0, 0.5),
    ],
)
def test_from_spec_dict_and_model(spec: dict, cls: type, mean: float, cv: float | None) -> None:
    for s in (spec, LosSpec(**{**spec, "dist": str(getattr(spec["dist"], "value", spec["dist"]))})):
        d = from_spec(s)
        assert type(d) is cls
        assert d.mean() == pytest.approx(mean, rel=1e-12)
        if cv is not None:
            assert d.cv() == pytest.approx(cv, rel=1e-12)


def test_from_spec_mixture_and_empirical(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "stays.csv").write_text("id,los\n1,2\n2,4\n")
    raw = {
        "dist": "mixture",
        "components": [
            {"weight": 0.7, "dist": "exponential", "mean": 2.0},
            {"weight": 0.2, "dist": "gamma", "mean": 20.0, "cv": 1.0},
            {"weight": 0.1, "dist": "empirical", "file": "data/stays.csv", "column": "los"},
        ],
    }
    for spec in (raw, LosSpec.model_validate(raw)):
        d = from_spec(spec, base_dir=tmp_path)
        assert isinstance(d, Mixture)
        assert d.mean() == pytest.approx(0.7 * 2.0 + 0.2 * 20.0 + 0.1 * 3.0)
        assert isinstance(d.components[2], Empirical)
    with pytest.raises(ValueError, match="cannot read"):
        from_spec(raw)  # relative file without base_dir resolves against the cwd


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"mean": 3.0}, "needs `dist`"),
        ({"dist": "pareto", "mean": 3.0}, "unknown LoS dist 'pareto'"),
        ({"dist": "lognormal", "mean": 3.0}, "needs mean and cv"),
        ({"dist": "gamma", "mean": 3.0, "cv": 1.0, "shape": 2.0}, "not both"),
        ({"dist": "exponential"}, "needs mean"),
        ({"dist": "mixture", "components": []}, "non-empty"),
        ({"dist": "mixture", "components": [{"dist": "fixed", "mean": 1.0}]}, "weight"),
        (
            {"dist": "mixture", "components": [{"dist": "fixed", "mean": -1.0, "weight": 1.0}]},
            "component 0: fixed mean",
        ),
        ({"dist": "empirical"}, "needs file"),
        ({"dist": "gamma", "mean": 3.0, "cv": -1.0}, "gamma cv must be finite and > 0"),
    ],
)
def test_from_spec_errors(spec: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        from_spec(spec)


def test_describe_mentions_parameters() -> None:
    assert "mean=6" in Gamma(6.0, 1.4).describe() and "shape=" in Gamma(6.0, 1.4).describe()
    assert repr(harrison_millard()).startswith("mixture(")
    assert los.DIST_NAMES[0] == "exponential"


# ---------------------------------------------------------------- properties


means = st.floats(min_value=0.01, max_value=1e4, allow_nan=False)
cvs = st.floats(min_value=0.05, max_value=5.0, exclude_min=True, allow_nan=False)
uniforms = st.lists(
    st.floats(min_value=0.0, max_value=1.0, exclude_max=True, allow_nan=False),
    min_size=1,
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(fam=st.sampled_from(sorted(FAMILIES)), mean=means, cv=cvs, u=uniforms)
def test_ppf_monotone_and_positive(fam: str, mean: float, cv: float, u: list[float]) -> None:
    d = make(fam, mean, cv)
    us = np.sort(np.array(u))
    x = d.ppf(us)
    assert np.all(np.isfinite(x)) and np.all(x > 0.0)
    assert np.all(np.diff(x) >= 0.0)
    assert d.ppf(us[-1]) == x[-1]  # a scalar draw equals the same draw in a batch


@settings(max_examples=60, deadline=None)
@given(cv=cvs, u=uniforms)
def test_gamma_fast_ppf_property(cv: float, u: list[float]) -> None:
    g = Gamma(1.0, cv)
    ua = np.array(u)
    np.testing.assert_allclose(g.ppf(ua), g.ppf_exact(ua), rtol=1e-10, atol=0)


@settings(max_examples=60, deadline=None)
@given(
    w=st.floats(min_value=0.01, max_value=0.99),
    m1=means,
    m2=means,
    u=uniforms,
)
def test_mixture_ppf_positive_and_in_component_support(
    w: float, m1: float, m2: float, u: list[float]
) -> None:
    d = Mixture([Fixed(m1), Lognormal(m2, 1.0)], [w, 1.0 - w])
    ua = np.array(u)
    x = d.ppf(ua)
    assert np.all(np.isfinite(x)) and np.all(x > 0.0)
    assert np.all(x[ua < w * (1 - 1e-12)] == m1)
