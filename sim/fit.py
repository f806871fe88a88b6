"""Fit a scenario to a planner's episode extract: arrivals, lengths of stay and routing.

Extract format (CSV in UTF-8, or Parquet): one row per ward stay, with a header naming columns

==============  ==============================================================================
``spell_id``     hospital spell (or patient pathway) identifier; the stays of one spell share it
``stay_number``  order of the ward stay within its spell: 1, 2, 3, ... without gaps
``admitted``     date-time the stay started, ISO 8601: ``2015-04-01 14:30`` (seconds optional;
                 a bare date ``2015-04-01`` means midnight). Other formats are errors.
``discharged``   date-time the stay ended; blank = still in that ward at the extract date
pool column      the bed pool of the stay (ward group, site, service); ``--pool-by``, default
                 ``pool``
cohort columns   one or more columns defining the admission stream; ``--cohort-by``, default
                 ``cohort`` (several columns are joined with ``-``); read from the first stay
``destination``  where the spell ended: ``home``, ``care_home`` or ``died`` (case, spaces and
                 hyphens ignored). Needed on the last stay of a finished spell; ignored on
                 other stays (spell-level extracts may repeat it on every row).
==============  ==============================================================================

Other columns are ignored. The extract date (the end of observation; stays still open then are
right-censored) is ``extract_date`` if given, else the latest date-time in the file. Stays
shorter than a minute count as one minute. Row numbers in errors are file lines for CSV (the
header is line 1) and 1-based rows for Parquet.

What is fitted, per cohort: the arrival process (a Poisson regression of daily counts on trend,
month and weekday, quasi-Poisson standard errors; hour-of-day profile; day-level overdispersion),
the pathway (stages = the pools visited in order, with transition probabilities to later stages
and to discharge destinations) and a LoS distribution per stage (maximum likelihood with right
censoring for exponential, lognormal, gamma, Weibull and a two-exponential mixture, chosen by
AIC, with an empirical fallback when none follows the Kaplan-Meier survival curve within
``ks_limit``). A cohort entering several pools keeps one entry stage (a pool mapping) unless
a likelihood-ratio test on its stays or a chi-square test on its onward routing separates the
pools at ``merge_alpha``; then it is split into one cohort per entry pool (``cohort@pool``). A profile (trend, seasonality,
weekday, hour of day, overdispersion) enters the scenario only if it is significant at
``alpha`` (the trend, when the extract covers two years or more, is always kept: dropping it
would bias the level at the start); every estimate, included or not, is reported with its 95% CI.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from numba import njit
from scipy import optimize, special, stats

from sim import los as los_mod
from sim.metrics import STAY_THRESHOLDS
from sim.results import write_atomic
from sim.scenario import EXITS, Scenario, load_scenario, scenario_from_dict

__all__ = ["ExtractError", "Extract", "FitResult", "fit_episodes", "fit_extract", "read_extract"]

FAMILIES = ("exponential", "lognormal", "gamma", "weibull", "mixture")
BASE_COLUMNS = ("spell_id", "stay_number", "admitted", "discharged", "destination")
MIN_STAY = 1.0 / 1440.0  # one minute, in days
_NS_PER_DAY = 86400e9
_MAX_EXAMPLES = 5
_Z95 = 1.959963984540054


class ExtractError(ValueError):
    """An episode extract cannot be used; ``problems`` lists each problem found."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems)
        super().__init__(f"{source}: " + "; ".join(self.problems))

    def __str__(self) -> str:
        return "\n".join(f"{self.source}: {p}" for p in self.problems)


@dataclass
class Extract:
    """A validated extract as arrays, sorted by spell then stay; times in days since ``origin``."""

    source: str
    origin: dt.datetime  # midnight of the first admission day
    extract_days: float  # end of observation, days since origin
    spell: np.ndarray  # int64 spell code
    stay: np.ndarray  # int64 stay number (1-based)
    admit: np.ndarray  # float64
    discharge: np.ndarray  # float64, NaN = still open at the extract date
    pool: np.ndarray  # int32 index into pool_names
    cohort: np.ndarray  # int32 index into cohort_names (the spell's, from its first stay)
    destination: np.ndarray  # int8 exit code (network.EXITS) on a finished spell's last stay, else 0
    pool_names: list[str]
    cohort_names: list[str]

    @property
    def n_stays(self) -> int:
        return len(self.spell)

    @property
    def extract_datetime(self) -> dt.datetime:
        return self.origin + dt.timedelta(days=self.extract_days)


# --------------------------------------------------------------------------- reading


def _read_table(path: Path) -> tuple[pd.DataFrame, bool]:
    """The raw table as strings (CSV) or as stored (Parquet); True if rows are CSV lines."""
    src = str(path)
    if not path.is_file():
        raise ExtractError(src, ["file not found"])
    if path.suffix.lower() in (".parquet", ".pq"):
        try:
            return pd.read_parquet(path), False
        except Exception as exc:  # pyarrow raises many types for bad files
            raise ExtractError(src, [f"cannot read as Parquet: {exc}"]) from None
    raw = path.read_bytes()
    if not raw.strip():
        raise ExtractError(src, ["file is empty (expected a header row and one row per ward stay)"])
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ExtractError(src, [f"not UTF-8 text: line {line} has byte 0x{raw[exc.start]:02x} "
                                 f"(re-save the file as UTF-8 CSV)"]) from None
    try:
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_filter=False,
                         skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise ExtractError(src, ["file is empty (expected a header row)"]) from None
    except pd.errors.ParserError as exc:
        raise ExtractError(src, [f"not a valid CSV file: {exc}"]) from None
    return df, True


def _where(rows: np.ndarray, csv: bool) -> str:
    label = "line" if csv else "row"
    return ", ".join(f"{label} {int(r) + (2 if csv else 1)}" for r in rows[:_MAX_EXAMPLES])


def _bad(problems: list[str], mask: np.ndarray, column: str, what: str, csv: bool,
         values: np.ndarray | None = None) -> None:
    """Record a problem for the rows in ``mask`` (the first few named by row and value)."""
    rows = np.flatnonzero(mask)
    if rows.size == 0:
        return
    shown = rows[:_MAX_EXAMPLES]
    if values is not None:
        label = "line" if csv else "row"
        ex = ", ".join(f"{label} {int(r) + (2 if csv else 1)} ({values[r]!r})" for r in shown)
    else:
        ex = _where(shown, csv)
    more = f" and {rows.size - shown.size} more" if rows.size > shown.size else ""
    problems.append(f"column '{column}': {what} in {rows.size} row(s): {ex}{more}")


def _text(col: pd.Series) -> np.ndarray:
    return col.astype(str).str.strip().to_numpy(dtype=object)


def _datetimes(col: pd.Series, name: str, csv: bool, problems: list[str],
               allow_blank: bool) -> np.ndarray:
    """Strict ISO 8601 parsing to int64 nanoseconds (NaT -> min int64 for blanks)."""
    if pd.api.types.is_datetime64_any_dtype(col.dtype):
        parsed = pd.to_datetime(col)
        if getattr(parsed.dt, "tz", None) is not None:
            parsed = parsed.dt.tz_convert(None)
        blank = parsed.isna().to_numpy()
        if not allow_blank:
            _bad(problems, blank, name, "missing date-time", csv)
        return parsed.to_numpy(dtype="datetime64[ns]").astype(np.int64)
    text = col.astype(str).str.strip()
    blank = (text == "").to_numpy()
    zoned = text.str.contains(r"(?:Z|[+-]\d\d:?\d\d)$", regex=True).to_numpy()
    _bad(problems, zoned & ~blank, name, "has a time-zone offset (give local date-times)", csv,
         text.to_numpy(dtype=object))
    parsed = pd.to_datetime(text.where(~(blank | zoned), None), format="ISO8601", errors="coerce")
    bad = parsed.isna().to_numpy() & ~blank & ~zoned
    _bad(problems, bad, name, "not an ISO 8601 date-time (YYYY-MM-DD HH:MM[:SS])", csv,
         text.to_numpy(dtype=object))
    if not allow_blank:
        _bad(problems, blank, name, "missing date-time", csv)
    return parsed.to_numpy(dtype="datetime64[ns]").astype(np.int64)


_DEST_CODES = {name: code for name, code in zip(EXITS, (-1, -2, -3), strict=True)}


def read_extract(path: str | Path | pd.DataFrame, cohort_by: Sequence[str] | str = ("cohort",),
                 pool_by: str = "pool", extract_date: dt.datetime | dt.date | str | None = None
                 ) -> Extract:
    """Read and validate an extract; raise ExtractError naming every bad column and first rows."""
    if isinstance(cohort_by, str):
        cohort_by = [c.strip() for c in cohort_by.split(",") if c.strip()]
    if isinstance(path, pd.DataFrame):
        df, csv, src = path.copy(), True, "<DataFrame>"
    else:
        p = Path(path).expanduser()
        src = str(p)
        df, csv = _read_table(p)
    df.columns = [str(c).strip() for c in df.columns]
    required = list(BASE_COLUMNS) + [pool_by] + list(cohort_by)
    if not cohort_by:
        raise ExtractError(src, ["no cohort column given (--cohort-by)"])
    missing = [c for c in dict.fromkeys(required) if c not in df.columns]
    if missing:
        raise ExtractError(src, [f"missing column(s) {', '.join(repr(c) for c in missing)}; "
                                 f"the file has {', '.join(repr(c) for c in df.columns)} "
                                 "(see `sim.fit` or the README for the extract format)"])
    if len(df) == 0:
        raise ExtractError(src, ["file has a header but no rows"])
    problems: list[str] = []
    spell_txt = _text(df["spell_id"])
    _bad(problems, spell_txt == "", "spell_id", "missing spell id", csv)
    stay_num = pd.to_numeric(df["stay_number"].astype(str).str.strip(), errors="coerce").to_numpy(float)
    bad_stay = ~np.isfinite(stay_num) | (stay_num < 1) | (stay_num != np.round(stay_num))
    _bad(problems, bad_stay, "stay_number", "not a whole number >= 1", csv,
         _text(df["stay_number"]))
    adm = _datetimes(df["admitted"], "admitted", csv, problems, allow_blank=False)
    dis = _datetimes(df["discharged"], "discharged", csv, problems, allow_blank=True)
    nat = np.iinfo(np.int64).min
    pool_txt = _text(df[pool_by])
    _bad(problems, pool_txt == "", pool_by, "missing pool", csv)
    parts = [_text(df[c]) for c in cohort_by]
    for c, v in zip(cohort_by, parts, strict=True):
        _bad(problems, v == "", c, "missing cohort value", csv)
    dest_txt = pd.Series(_text(df["destination"])).str.lower().str.replace(r"[\s\-]+", "_", regex=True)
    dest_code = dest_txt.map(_DEST_CODES).fillna(0).to_numpy(np.int8)
    unknown = (dest_txt != "").to_numpy() & (dest_code == 0)
    _bad(problems, unknown, "destination", f"not one of {', '.join(EXITS)} (or blank)", csv,
         _text(df["destination"]))
    ok_adm, ok_dis = adm != nat, dis != nat
    neg = ok_adm & ok_dis & (dis < adm)
    if neg.any():
        days = (dis - adm) / _NS_PER_DAY
        _bad(problems, neg, "discharged", "discharge before admission (negative stay, days)", csv,
             np.round(days, 3).astype(object))
    if problems:
        raise ExtractError(src, problems)

    # extract date and the spell structure
    if extract_date is None:
        ext_ns = int(max(adm.max(), dis[ok_dis].max() if ok_dis.any() else adm.max()))
    else:
        try:
            ext_ns = int(pd.Timestamp(extract_date).as_unit("ns").value)
        except (ValueError, TypeError):
            raise ExtractError(src, [f"extract date {extract_date!r} is not a date-time"]) from None
        _bad(problems, adm > ext_ns, "admitted", "admission after the extract date", csv)
        _bad(problems, ok_dis & (dis > ext_ns), "discharged", "discharge after the extract date", csv)
    origin_ns = int(pd.Timestamp(int(adm.min())).normalize().value)
    spell_code, _ = pd.factorize(pd.Series(spell_txt))
    stay_i = stay_num.astype(np.int64)
    order = np.lexsort((stay_i, spell_code))
    sp, st = spell_code[order], stay_i[order]
    first = np.r_[True, sp[1:] != sp[:-1]]
    last = np.r_[sp[1:] != sp[:-1], True]
    start_idx = np.maximum.accumulate(np.where(first, np.arange(len(sp)), 0))
    expected = np.arange(len(sp)) - start_idx + 1
    seq_bad = np.zeros(len(sp), bool)
    seq_bad[order] = st != expected
    _bad(problems, seq_bad, "stay_number",
         "stays of a spell must be numbered 1, 2, 3, ... once each (duplicate or gap)", csv,
         _text(df["stay_number"]))
    a_s, d_s = adm[order], dis[order]
    open_s = d_s == nat
    follows = ~first
    prev_d = np.r_[nat, d_s[:-1]]
    prev_open = np.r_[False, open_s[:-1]]
    overlap = np.zeros(len(sp), bool)
    overlap[order] = follows & (prev_open | (a_s < prev_d))
    _bad(problems, overlap, "admitted",
         "stay starts before the spell's previous stay ended (or after an open stay)", csv)
    dest_s = dest_code[order]
    need_dest = np.zeros(len(sp), bool)
    need_dest[order] = last & ~open_s & (dest_s == 0)
    _bad(problems, need_dest, "destination", "missing on the last stay of a finished spell", csv)
    if problems:
        raise ExtractError(src, problems)

    cohort_txt = parts[0] if len(parts) == 1 else np.array(
        ["-".join(v) for v in zip(*parts, strict=True)], dtype=object)
    coh_s = cohort_txt[order]
    spell_cohort = coh_s[start_idx]  # the first stay's cohort
    coh_codes, coh_names = pd.factorize(pd.Series(spell_cohort), sort=True)
    pool_codes, pool_names = pd.factorize(pd.Series(pool_txt[order]), sort=True)
    to_days = lambda ns: (ns - origin_ns) / _NS_PER_DAY  # noqa: E731
    discharge = np.where(open_s, np.nan, to_days(d_s.astype(float)))
    return Extract(
        source=src,
        origin=pd.Timestamp(origin_ns).to_pydatetime(),
        extract_days=(ext_ns - origin_ns) / _NS_PER_DAY,
        spell=sp.astype(np.int64), stay=st, admit=to_days(a_s.astype(float)), discharge=discharge,
        pool=pool_codes.astype(np.int32), cohort=coh_codes.astype(np.int32),
        destination=np.where(last & ~open_s, dest_s, 0).astype(np.int8),
        pool_names=[str(x) for x in pool_names], cohort_names=[str(x) for x in coh_names],
    )


# --------------------------------------------------------------------------- LoS


@dataclass
class LosFit:
    """One family fitted by maximum likelihood to (possibly right-censored) stays."""

    family: str
    dist: los_mod.LosDistribution
    loglik: float
    n_params: int
    mean_se: float

    @property
    def aic(self) -> float:
        return 2 * self.n_params - 2 * self.loglik

    def spec(self) -> dict[str, Any]:
        """The scenario's LoS entry (mean and cv, 6 significant digits)."""
        mean = float(f"{self.dist.mean():.6g}")
        if self.family == "exponential":
            return {"dist": "exponential", "mean": mean}
        if self.family == "mixture":
            comps = self.dist.components  # type: ignore[attr-defined]
            w = round(float(self.dist.weights[0]), 6)  # type: ignore[attr-defined]
            return {"dist": "mixture", "components": [
                {"dist": "exponential", "mean": float(f"{comps[0].mean():.6g}"), "weight": w},
                {"dist": "exponential", "mean": float(f"{comps[1].mean():.6g}"),
                 "weight": round(1.0 - w, 6)}]}
        return {"dist": self.family, "mean": mean, "cv": float(f"{self.dist.cv():.6g}")}


class _Stays:
    """Sufficient statistics of censored stays for the likelihoods."""

    def __init__(self, t: np.ndarray, censored: np.ndarray) -> None:
        t = np.maximum(np.asarray(t, float), MIN_STAY)
        self.t, self.cens = t, np.asarray(censored, bool)
        self.te, self.tc = t[~self.cens], t[self.cens]
        self.ne = self.te.size
        self.logte = np.log(self.te)
        self.logtc = np.log(self.tc)
        self.s1 = float(self.logte.sum())
        self.s2 = float((self.logte**2).sum())
        self.st = float(self.te.sum())
        self.st_all = float(t.sum())


def _nll(family: str, x: np.ndarray, s: _Stays) -> float:
    a, b = float(x[0]), float(x[1])
    if family == "lognormal":
        mu, ls = a, b
        sig = math.exp(ls)
        ll = (-s.s1 - s.ne * (ls + 0.5 * math.log(2 * math.pi))
              - (s.s2 - 2 * mu * s.s1 + s.ne * mu * mu) / (2 * sig * sig))
        if s.tc.size:
            ll += float(special.log_ndtr(-(s.logtc - mu) / sig).sum())
    elif family == "gamma":
        k, lth = math.exp(a), b
        ll = (k - 1) * s.s1 - s.st / math.exp(lth) - s.ne * (special.gammaln(k) + k * lth)
        if s.tc.size:
            q = special.gammaincc(k, s.tc / math.exp(lth))
            ll += float(np.log(np.maximum(q, 1e-300)).sum())
    elif family == "weibull":
        k, llam = math.exp(a), b
        ll = s.ne * (a - k * llam) + (k - 1) * s.s1
        ll -= float(np.exp(k * (np.log(s.t) - llam)).sum())
    else:  # pragma: no cover
        raise ValueError(family)
    return -ll if math.isfinite(ll) else 1e300


def _dist(family: str, x: np.ndarray) -> los_mod.LosDistribution:
    if family == "lognormal":
        return los_mod.Lognormal.from_natural(x[0], math.exp(x[1]))
    if family == "gamma":
        return los_mod.Gamma.from_natural(math.exp(x[0]), math.exp(x[1]))
    return los_mod.Weibull.from_natural(math.exp(x[0]), math.exp(x[1]))


def _start(family: str, s: _Stays) -> np.ndarray:
    m = float(s.te.mean())
    cv = max(float(s.te.std() / m), 0.05) if s.ne > 1 else 1.0
    if family == "lognormal":
        sd = math.sqrt(max(s.s2 / s.ne - (s.s1 / s.ne) ** 2, 1e-6))
        return np.array([s.s1 / s.ne, math.log(sd)])
    if family == "gamma":
        k = 1.0 / cv**2
        return np.array([math.log(k), math.log(m / k)])
    k = los_mod.weibull_shape_for_cv(min(max(cv, 0.1), 20.0))
    return np.array([math.log(k), math.log(m / math.gamma(1 + 1 / k))])


@njit(cache=True)
def _em_pass(t, event, w, m1, m2):
    """One pass of the censored two-exponential EM: sufficient sums and the log-likelihood."""
    lw, lv, l1, l2 = math.log(w), math.log1p(-w), math.log(m1), math.log(m2)
    sr = srt = sre = st = se = ll = 0.0
    for i in range(t.shape[0]):
        a = lw - t[i] / m1
        b = lv - t[i] / m2
        if event[i]:
            a -= l1
            b -= l2
        hi = max(a, b)
        lse = hi + math.log(math.exp(a - hi) + math.exp(b - hi))
        r = math.exp(a - lse)
        ll += lse
        sr += r
        srt += r * t[i]
        st += t[i]
        if event[i]:
            sre += r
            se += 1.0
    return sr, srt, sre, st, se, ll


def _mixture_ll(w: float, m1: float, m2: float, s: _Stays) -> float:
    """Log-likelihood of a two-exponential (Harrison-Millard) mixture with censoring."""
    return float(_em_pass(s.t, ~s.cens, w, m1, m2)[5])


def _mixture_nll_grad(y: np.ndarray, t: np.ndarray, event: np.ndarray) -> tuple[float, np.ndarray]:
    """Negative log-likelihood and gradient in (logit w, log m1, log m2), from one EM pass."""
    w, m1, m2 = 1 / (1 + math.exp(-y[0])), math.exp(y[1]), math.exp(y[2])
    sr, srt, sre, st, se, ll = _em_pass(t, event, w, m1, m2)
    grad = np.array([sr - t.size * w, srt / m1 - sre, (st - srt) / m2 - (se - sre)])
    return -ll, -grad


def _fit_mixture(s: _Stays) -> LosFit | None:
    """Two-exponential mixture: a few EM steps, then BFGS with the exact gradient; SE from the
    Hessian (central differences of the gradient) by the delta method."""
    mean = s.st_all / s.ne
    w, m1, m2 = 0.6, 0.4 * mean, 2.0 * mean
    event = ~s.cens
    n = s.t.size
    for _ in range(10):
        sr, srt, sre, st, se, _ll = _em_pass(s.t, event, w, m1, m2)
        if sre < 1 or se - sre < 1:
            return None
        w, m1, m2 = min(max(sr / n, 1e-6), 1 - 1e-6), srt / sre, (st - srt) / (se - sre)
    y0 = np.array([math.log(w / (1 - w)), math.log(m1), math.log(m2)])
    res = optimize.minimize(lambda y: tuple(v / n for v in _mixture_nll_grad(y, s.t, event)), y0,
                            jac=True, method="BFGS", options={"gtol": 1e-7, "maxiter": 500})
    x = res.x
    w, m1, m2 = 1 / (1 + math.exp(-x[0])), math.exp(x[1]), math.exp(x[2])
    if m1 > m2:
        w, m1, m2 = 1 - w, m2, m1
        x = np.array([-x[0], x[2], x[1]])
    if not (1e-6 < w < 1 - 1e-6 and m1 < m2 * 0.999 and math.isfinite(m2)):
        return None
    h = 1e-5
    hess = np.column_stack([(_mixture_nll_grad(x + h * e, s.t, event)[1]
                             - _mixture_nll_grad(x - h * e, s.t, event)[1]) / (2 * h)
                            for e in np.eye(3)])
    hess = (hess + hess.T) / 2
    # d mean / d (logit w, log m1, log m2), mean = w m1 + (1 - w) m2
    grad = np.array([w * (1 - w) * (m1 - m2), w * m1, (1 - w) * m2])
    try:
        se_mean = float(math.sqrt(max(grad @ np.linalg.solve(hess, grad), 0.0)))
    except np.linalg.LinAlgError:
        se_mean = math.nan
    dist = los_mod.Mixture([los_mod.Exponential(m1), los_mod.Exponential(m2)], [w, 1 - w])
    return LosFit("mixture", dist, _mixture_ll(w, m1, m2, s), 3, se_mean)


def _delta_se(f: Any, g: Any, x: np.ndarray, h: float = 1e-4) -> float:
    """Standard error of g(x) at the minimum x of the negative log-likelihood f (delta method)."""
    k = x.size
    eye = np.eye(k) * h
    hess = np.empty((k, k))
    for i in range(k):
        for j in range(i, k):
            hess[i, j] = hess[j, i] = (f(x + eye[i] + eye[j]) - f(x + eye[i] - eye[j])
                                       - f(x - eye[i] + eye[j]) + f(x - eye[i] - eye[j])) / (4 * h * h)
    grad = np.array([(g(x + eye[i]) - g(x - eye[i])) / (2 * h) for i in range(k)])
    try:
        return float(math.sqrt(max(grad @ np.linalg.solve(hess, grad), 0.0)))
    except np.linalg.LinAlgError:
        return math.nan


def _fit_family(family: str, s: _Stays) -> LosFit | None:
    """Maximum likelihood fit of one family; None if it fails to converge to a valid point."""
    if family == "exponential":
        mean = s.st_all / s.ne
        ll = -s.ne * math.log(mean) - s.st_all / mean
        return LosFit(family, los_mod.Exponential(mean), ll, 1, mean / math.sqrt(s.ne))
    if family == "mixture":
        return _fit_mixture(s)
    n = s.t.size
    x0 = _start(family, s)
    res = optimize.minimize(lambda x: _nll(family, x, s) / n, x0, method="BFGS",
                            options={"gtol": 1e-9, "maxiter": 500})
    x = res.x
    try:
        dist = _dist(family, x)
        mean = dist.mean()
    except (ValueError, OverflowError):
        return None
    if not math.isfinite(mean):
        return None
    f = lambda y: _nll(family, y, s)  # noqa: E731
    se = _delta_se(f, lambda y: _dist(family, y).mean(), x)
    return LosFit(family, dist, -f(x), 2, se)


def kaplan_meier(t: np.ndarray, censored: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan-Meier survival just after each sorted stay: (times, S(t))."""
    order = np.lexsort((censored, t))  # events before censorings at equal times
    ts, cs = t[order], censored[order]
    n = ts.size
    at_risk = n - np.arange(n)
    surv = np.cumprod(1.0 - (~cs) / at_risk)
    return ts, surv


def _ks_km(dist: los_mod.LosDistribution, times: np.ndarray, surv: np.ndarray) -> float:
    """Largest gap between the Kaplan-Meier and fitted survival curves."""
    if times.size > 20000:
        idx = np.linspace(0, times.size - 1, 20000).astype(int)
        times, surv = times[idx], surv[idx]
    return float(np.max(np.abs(surv - np.asarray(dist.sf(times)))))


def _km_quantiles(times: np.ndarray, surv: np.ndarray, m: int) -> np.ndarray:
    """Stays at m equally spaced probabilities of the KM distribution (its tail at the max)."""
    p = (np.arange(m) + 0.5) / m
    cdf = 1.0 - surv
    idx = np.searchsorted(cdf, p, side="left")
    return times[np.minimum(idx, times.size - 1)]


def fit_los(t: np.ndarray, censored: np.ndarray, families: Sequence[str] = FAMILIES,
            ks_limit: float = 0.05) -> dict[str, Any]:
    """Fit every family, pick by AIC, compare with the data; empirical if none fits.

    Returns a report dict with ``spec`` (scenario LoS), ``dist`` (LosDistribution), per-family
    log-likelihood / AIC / mean / cv, and observed vs fitted mean and bed-day shares.
    """
    censored = np.asarray(censored, bool)
    s = _Stays(t, censored)
    if s.ne < 2:  # nothing to fit a shape to: exponential, with its mean a lower bound
        mean = s.st_all / max(s.ne, 1)
        dist = los_mod.Exponential(mean)
        return {"n": int(s.t.size), "n_censored": int(censored.sum()), "chosen": "exponential",
                "note": f"only {s.ne} completed stay(s): exponential with mean = observed days "
                        "per completed stay (a lower bound)",
                "spec": {"dist": "exponential", "mean": float(f"{mean:.6g}")}, "dist": dist,
                "fitted_mean": mean, "fitted_mean_se": math.nan,
                "fitted_mean_ci95": [math.nan, math.nan], "_best": LosFit("exponential", dist,
                                                                          math.nan, 1, math.nan),
                "fitted_bed_day_share": {f"ge_{x}": float(dist.bed_day_share(x))
                                         for x in STAY_THRESHOLDS}}
    fits = {f: r for f in families if (r := _fit_family(f, s)) is not None}
    best = min(fits.values(), key=lambda r: r.aic)
    km_t, km_s = kaplan_meier(s.t, censored)
    ks = _ks_km(best.dist, km_t, km_s)
    te = s.te
    obs_share = {f"ge_{x}": float(te[te >= x].sum() / te.sum()) for x in STAY_THRESHOLDS}
    report: dict[str, Any] = {
        "n": int(s.t.size), "n_censored": int(censored.sum()),
        "observed_mean_completed": float(te.mean()),
        "observed_bed_day_share_completed": obs_share,
        "families": {f: {"loglik": r.loglik, "aic": r.aic, "mean": r.dist.mean(),
                         "cv": r.dist.cv()} for f, r in fits.items()},
        "chosen": best.family, "ks_vs_kaplan_meier": ks, "_best": best,
    }
    # empirical only if the best family is off by more than ks_limit AND than sampling noise
    # (the 5% Kolmogorov-Smirnov critical value)
    if ks > max(ks_limit, 1.36 / math.sqrt(s.ne)):
        values = _km_quantiles(km_t, km_s, int(min(max(s.ne, 10), 2000)))
        dist: los_mod.LosDistribution = los_mod.Empirical(values)
        report.update(chosen="empirical", empirical_values=values,
                      reason=f"best family {best.family} is {ks:.3f} from the Kaplan-Meier curve "
                             f"(limit {ks_limit})")
        report["spec"] = {"dist": "empirical"}
        mean_se = float(values.std() / math.sqrt(s.ne))
    else:
        dist = best.dist
        report["spec"] = best.spec()
        mean_se = best.mean_se
    report["dist"] = dist
    report["fitted_mean"] = dist.mean()
    report["fitted_mean_ci95"] = [dist.mean() - _Z95 * mean_se, dist.mean() + _Z95 * mean_se]
    report["fitted_mean_se"] = mean_se
    report["fitted_bed_day_share"] = {f"ge_{x}": float(dist.bed_day_share(x))
                                      for x in STAY_THRESHOLDS}
    return report


# --------------------------------------------------------------------------- arrivals


def _irls(y: np.ndarray, X: np.ndarray, iters: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Poisson regression by iteratively reweighted least squares: (coefficients, fitted mean)."""
    beta = np.zeros(X.shape[1])
    beta[0] = math.log(max(y.mean(), 1e-9))
    for _ in range(iters):
        eta = np.clip(X @ beta, -30, 30)
        mu = np.exp(eta)
        z = eta + (y - mu) / mu
        xw = X * mu[:, None]
        new = np.linalg.solve(X.T @ xw + 1e-12 * np.eye(X.shape[1]), xw.T @ z)
        if np.max(np.abs(new - beta)) < 1e-10:
            beta = new
            break
        beta = new
    return beta, np.exp(np.clip(X @ beta, -30, 30))


def _design(n_days: int, origin: dt.date, groups: Sequence[str]) -> tuple[np.ndarray, dict]:
    days = np.arange(n_days)
    dates = np.datetime64(origin, "D") + days
    month = dates.astype("datetime64[M]").astype(int) % 12
    wday = (dates.astype(int) + 3) % 7
    cols = [np.ones(n_days)]
    where: dict[str, list[int]] = {}
    if "trend" in groups:
        where["trend"] = [len(cols)]
        cols.append((days + 0.5) / 365.25)
    if "month" in groups:
        where["month"] = list(range(len(cols), len(cols) + 11))
        cols += [(month == m).astype(float) for m in range(1, 12)]
    if "weekday" in groups:
        where["weekday"] = list(range(len(cols), len(cols) + 6))
        cols += [(wday == w).astype(float) for w in range(1, 7)]
    return np.column_stack(cols), where


def _params(beta: np.ndarray, where: dict) -> dict[str, np.ndarray]:
    """per_year, growth and normalised factors from coefficients (rows = draws)."""
    b = np.atleast_2d(beta)
    out: dict[str, np.ndarray] = {}
    m = np.zeros((b.shape[0], 12))
    if "month" in where:
        m[:, 1:] = b[:, where["month"]]
    w = np.zeros((b.shape[0], 7))
    if "weekday" in where:
        w[:, 1:] = b[:, where["weekday"]]
    em, ew = np.exp(m), np.exp(w)
    out["per_year"] = 365.0 * np.exp(b[:, 0]) * em.mean(axis=1) * ew.mean(axis=1)
    out["growth"] = np.exp(b[:, where["trend"][0]]) - 1 if "trend" in where else np.zeros(len(b))
    out["seasonal"] = em / em.mean(axis=1, keepdims=True)
    out["weekday"] = ew / ew.mean(axis=1, keepdims=True)
    return out


def _ci(draws: np.ndarray) -> list:
    lo, hi = np.percentile(draws, [2.5, 97.5], axis=0)
    return [np.round(lo, 6).tolist(), np.round(hi, 6).tolist()]


def fit_arrivals(times: np.ndarray, n_days: int, origin: dt.date, alpha: float = 0.05,
                 seed: int = 0) -> dict[str, Any]:
    """Fit a cohort's arrival process to its admission times (days since origin, whole days).

    Returns a report with every estimate and 95% CI, and ``spec`` (the scenario's arrivals).
    """
    rng = np.random.default_rng(seed)
    t = times[(times >= 0) & (times < n_days)]
    y = np.bincount(t.astype(np.int64), minlength=n_days)[:n_days].astype(float)
    enough = y.sum() >= 50  # fewer admissions: a constant rate only
    groups = (["trend"] * (n_days >= 730) + ["month"] * (n_days >= 365)
              + ["weekday"] * (n_days >= 28)) if enough else []
    X, where = _design(n_days, origin, groups)
    beta, mu = _irls(y, X)
    dof = max(n_days - X.shape[1], 1)
    phi = max(float(((y - mu) ** 2 / mu).sum() / dof), 1.0)
    cov = np.linalg.pinv(X.T @ (X * mu[:, None])) * phi
    report: dict[str, Any] = {"days": n_days, "admissions": int(y.sum()),
                              "observed_per_year": float(y.sum() / n_days * 365.0),
                              "tests": {}}
    keep = []
    for g, idx in where.items():
        b = beta[idx]
        stat = float(b @ np.linalg.solve(cov[np.ix_(idx, idx)], b))
        pval = float(stats.chi2.sf(stat, len(idx)))
        # the trend is always kept: dropping an insignificant one would bias the level at start
        inc = g == "trend" or pval < alpha
        report["tests"][g] = {"wald_chi2": stat, "df": len(idx), "p_value": pval, "included": inc}
        if inc:
            keep.append(g)
    full = _params(rng.multivariate_normal(beta, cov, size=4000), where)
    point = _params(beta, where)
    report["full_model"] = {
        "growth": float(point["growth"][0]), "growth_ci95": _ci(full["growth"]),
        "seasonal": np.round(point["seasonal"][0], 6).tolist(), "seasonal_ci95": _ci(full["seasonal"]),
        "weekday": np.round(point["weekday"][0], 6).tolist(), "weekday_ci95": _ci(full["weekday"]),
    }
    # the scenario: the model with only the significant profiles
    X, where = _design(n_days, origin, keep)
    beta, mu = _irls(y, X)
    dof = max(n_days - X.shape[1], 1)
    chi2 = float(((y - mu) ** 2 / mu).sum())
    phi = max(chi2 / dof, 1.0)
    cov = np.linalg.pinv(X.T @ (X * mu[:, None])) * phi
    draws = _params(rng.multivariate_normal(beta, cov, size=4000), where)
    point = _params(beta, where)
    spec: dict[str, Any] = {"per_year": float(f"{point['per_year'][0]:.6g}")}
    report["per_year"] = float(point["per_year"][0])
    report["per_year_ci95"] = [float(v) for v in np.percentile(draws["per_year"], [2.5, 97.5])]
    report["per_year_se"] = float(draws["per_year"].std())
    if "trend" in where:
        spec["growth"] = round(float(point["growth"][0]), 6)
    if "month" in where:
        spec["seasonal"] = np.round(point["seasonal"][0], 4).tolist()
    if "weekday" in where:
        spec["weekday"] = np.round(point["weekday"][0], 4).tolist()
    # hour of day
    hours = np.bincount(((t - np.floor(t)) * 24).astype(np.int64).clip(0, 23), minlength=24)
    if enough and hours[0] < hours.sum():
        mean_h = hours.mean()
        pval = float(stats.chisquare(hours).pvalue)
        report["hourly"] = {"factors": np.round(hours / mean_h, 4).tolist(),
                            "ci95_half_width": np.round(_Z95 * np.sqrt(hours) / mean_h, 4).tolist(),
                            "p_value_uniform": pval, "included": pval < alpha}
        if pval < alpha:
            spec["hourly"] = np.round(hours / mean_h, 4).tolist()
    else:
        report["hourly"] = {"included": False,
                            "note": "too few admissions, or admission times carry no time of day"}
    # overdispersion: Var(y) = mu + c^2 mu^2 for a day-level gamma multiplier with cv c
    c2 = float(((y - mu) ** 2 - mu).sum() / (mu**2).sum()) * n_days / dof
    idx = rng.integers(0, n_days, size=(400, n_days))
    boot = (((y[idx] - mu[idx]) ** 2 - mu[idx]).sum(axis=1) / (mu[idx] ** 2).sum(axis=1)) * n_days / dof
    pval = float(stats.chi2.sf(chi2, dof))
    c = math.sqrt(max(c2, 0.0))
    report["overdispersion"] = {
        "variance_to_mean": float(((y - mu) ** 2).sum() / mu.sum()),
        "cv": c, "cv_ci95": [math.sqrt(max(v, 0.0)) for v in np.percentile(boot, [2.5, 97.5])],
        "p_value_poisson": pval, "included": pval < alpha and c > 0,
    }
    if pval < alpha and c > 0:
        spec["overdispersion"] = round(c, 4)
    report["spec"] = spec
    report["daily_counts"] = y
    return report


# --------------------------------------------------------------------------- pathways


def _stage_keys(x: Extract, first_stay: np.ndarray) -> tuple[np.ndarray, bool]:
    """Stage of every stay: (pool, visit number of that pool in the spell), or (order, pool)
    when those stages would form a cycle. Returns keys as int64 codes and whether by order."""
    n_pools = len(x.pool_names)
    spell_pool = x.spell * n_pools + x.pool
    # visit number of this pool within the spell
    order = np.lexsort((x.stay, spell_pool))
    sp = spell_pool[order]
    newg = np.r_[True, sp[1:] != sp[:-1]]
    start = np.maximum.accumulate(np.where(newg, np.arange(len(sp)), 0))
    visit = np.empty(len(sp), np.int64)
    visit[order] = np.arange(len(sp)) - start + 1
    key = visit * n_pools + x.pool
    same = np.r_[x.spell[1:] == x.spell[:-1], False]
    a, b = key[:-1][same[:-1]], key[1:][same[:-1]]
    edges = set(zip(a.tolist(), b.tolist(), strict=True))
    if _has_cycle(edges):
        return x.stay * n_pools + x.pool, True
    return key, False


def _has_cycle(edges: set[tuple[int, int]]) -> bool:
    graph: dict[int, list[int]] = {}
    for a, b in edges:
        graph.setdefault(a, []).append(b)
    state: dict[int, int] = {}
    for root in graph:
        if state.get(root):
            continue
        stack = [(root, iter(graph.get(root, ())))]
        state[root] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return True
            elif not state.get(nxt):
                state[nxt] = 1
                stack.append((nxt, iter(graph.get(nxt, ()))))
    return False


def _probs(counts: Mapping[str, float]) -> dict[str, float]:
    """Probabilities rounded to 6 decimals that sum to exactly 1 (the largest absorbs rounding)."""
    total = sum(counts.values())
    out = {k: round(v / total, 6) for k, v in counts.items() if v > 0}
    big = max(out, key=out.get)
    out[big] = round(1.0 - math.fsum(v for k, v in out.items() if k != big), 6)
    return out


_EXIT_NAME = {-1: "home", -2: "care_home", -3: "died"}


def _safe(name: str) -> str:
    return re.sub(r"[^\w+\-@]+", "_", name).strip("_") or "x"


# --------------------------------------------------------------------------- the fit


@dataclass
class FitResult:
    """A fitted scenario (``doc``, ready for YAML) with its fit report and the data behind it."""

    doc: dict[str, Any]
    report: dict[str, Any]
    extract: Extract
    empirical: dict[str, np.ndarray] = field(default_factory=dict)  # relative file -> stays
    los: dict[str, Any] = field(default_factory=dict)  # "cohort.stage" -> LoS fit report

    def scenario(self, base_dir: str | Path | None = None) -> Scenario:
        """The fitted scenario, validated (empirical LoS files must exist under ``base_dir``)."""
        src = Path(base_dir) / "fitted.yaml" if base_dir is not None else None
        return scenario_from_dict(self.doc, src)

    def yaml_text(self) -> str:
        x = self.extract
        head = [
            f"# Fitted by `bedflow fit` from {x.source}",
            f"# {x.n_stays} ward stays, {x.origin:%Y-%m-%d} to {x.extract_datetime:%Y-%m-%d %H:%M}.",
            "# Profiles (growth, seasonal, weekday, hourly, overdispersion) appear only where",
            "# significant; every estimate with its 95% CI is in the .fit.json report beside this",
            "# file. Pool capacities are not in the data: set them (null = unlimited).",
        ]
        body = yaml.safe_dump(self.doc, sort_keys=False, default_flow_style=None, width=100)
        return "\n".join(head) + "\n" + body

    def write(self, out: str | Path, plots: bool = True, replications: int = 5, seed: int = 1,
              engine: str = "numba") -> list[Path]:
        """Write the YAML, empirical LoS files, the JSON report and (optionally) PNG plots.

        Everything is computed first and each file is written atomically, so a failure leaves
        no partial output.
        """
        out = Path(out)
        files: dict[Path, str | bytes] = {}
        for rel, values in self.empirical.items():
            files[out.parent / rel] = "days\n" + "\n".join(f"{v:.6g}" for v in values) + "\n"
        with _staged(files) as base:  # the scenario checks its empirical files exist
            scenario = self.scenario(base)
            report = dict(self.report)
            if plots:
                pngs = fit_plots(self, scenario, replications, seed, engine)
                for suffix, data in pngs.items():
                    files[out.with_name(out.stem + suffix)] = data
                report["plots"] = [out.stem + suffix for suffix in pngs]
        files[out.with_name(out.stem + ".fit.json")] = json.dumps(_jsonable(report), indent=2) + "\n"
        files[out] = self.yaml_text()
        for path, data in files.items():
            write_atomic(path, data)
        return list(files)


class _staged:
    """A temporary folder holding the text files of ``files`` (relative to the first's parent)."""

    def __init__(self, files: Mapping[Path, str | bytes]) -> None:
        self.files = files

    def __enter__(self) -> Path:
        import tempfile

        self.tmp = tempfile.TemporaryDirectory(prefix="bedflow-fit-")
        base = Path(self.tmp.name)
        for path, data in self.files.items():
            rel = Path(path.parent.name) / path.name
            (base / rel).parent.mkdir(parents=True, exist_ok=True)
            (base / rel).write_text(data if isinstance(data, str) else data.decode())
        return base

    def __exit__(self, *exc: Any) -> None:
        self.tmp.cleanup()


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()
                if k not in ("dist", "daily_counts", "empirical_values") and not str(k).startswith("_")}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _homogeneous(x: Extract, stays: np.ndarray, next_of: np.ndarray, known: np.ndarray,
                 joint: LosFit, merge_alpha: float) -> tuple[bool, dict[str, Any]]:
    """Do entry pools share one LoS (likelihood-ratio test) and one routing (chi-square)?"""
    pools = np.unique(x.pool[stays])
    t, cens = _durations(x, stays)
    family = joint.family
    ll_sep, k_sep = 0.0, 0
    for p in pools:
        sel = x.pool[stays] == p
        if (~cens[sel]).sum() < 2:
            return False, {"note": f"too few completed stays in {x.pool_names[p]}"}
        r = _fit_family(family, _Stays(t[sel], cens[sel]))
        if r is None:
            return False, {"note": "fit failed"}
        ll_sep += r.loglik
        k_sep += r.n_params
    lr = 2 * (ll_sep - joint.loglik)
    p_los = float(stats.chi2.sf(max(lr, 0.0), k_sep - joint.n_params))
    kn = known[stays]
    tab = pd.crosstab(x.pool[stays][kn], next_of[stays][kn]).to_numpy()
    if tab.shape[0] > 1 and tab.shape[1] > 1:
        p_route = float(stats.chi2_contingency(tab)[1])
    else:
        p_route = 1.0
    same = p_los >= merge_alpha and p_route >= merge_alpha
    return same, {"p_value_los": p_los, "p_value_routing": p_route, "merged": same}


def _durations(x: Extract, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    cens = np.isnan(x.discharge[idx])
    t = np.where(cens, x.extract_days, x.discharge[idx]) - x.admit[idx]
    return t, cens


def fit_extract(x: Extract, pools_from: Scenario | str | Path | None = None, alpha: float = 0.05,
                merge_alpha: float = 0.001, ks_limit: float = 0.05, name: str | None = None,
                families: Sequence[str] = FAMILIES, warmup_days: float | None = None,
                run_days: float = 365.0) -> FitResult:
    """Fit a scenario to a validated extract (see the module docstring for the method)."""
    n_pools = len(x.pool_names)
    first = x.stay == 1
    last = np.r_[x.spell[1:] != x.spell[:-1], True]
    key, by_order = _stage_keys(x, first)
    # next stage key (>= 0), exit code (< 0); "known" when the stay ended and its successor is known
    nxt_key = np.r_[key[1:], -9]
    next_of = np.where(last, x.destination.astype(np.int64), nxt_key)
    known = ~np.isnan(x.discharge) & (~last | (x.destination != 0))
    spell_first = np.flatnonzero(first)
    spell_of_row = np.cumsum(first) - 1
    n_days = int(math.floor(x.extract_days))
    if n_days < 28:
        raise ExtractError(x.source, [f"the extract covers {x.extract_days:.1f} days; "
                                      "at least 28 are needed to fit arrivals"])
    origin = x.origin.date()
    pool_defs: dict[str, Any] = {p: {"capacity": None} for p in x.pool_names}
    if pools_from is not None:
        base = pools_from if isinstance(pools_from, Scenario) else load_scenario(pools_from)
        for p in x.pool_names:
            if p in base.pools:
                pd_ = base.pools[p].model_dump(mode="json", exclude_defaults=True)
                pd_.setdefault("capacity", None)
                if "overflow:" in str(pd_.get("when_full", "")):
                    target = str(pd_["when_full"]).split(":", 1)[1].strip()
                    if target not in x.pool_names:
                        pd_.pop("when_full")
                pd_.pop("capacity_changes", None)
                pool_defs[p] = pd_
    cohorts: dict[str, Any] = {}
    report: dict[str, Any] = {
        "source": x.source, "origin": x.origin.isoformat(), "extract_date": x.extract_datetime.isoformat(),
        "stays": x.n_stays, "spells": int(first.sum()), "open_stays": int(np.isnan(x.discharge).sum()),
        "stages_by": "stay order" if by_order else "pool and visit number", "cohorts": {},
    }
    los_reports: dict[str, Any] = {}
    empirical: dict[str, np.ndarray] = {}
    longest = 0.0
    out_name = name or "fitted-" + (_safe(Path(x.source).stem) if x.source != "<DataFrame>"
                                    else "extract")
    cohort_of_row = x.cohort[spell_first][spell_of_row]
    for ci, cname in enumerate(x.cohort_names):
        rows_c = np.flatnonzero(cohort_of_row == ci)
        entry_rows = rows_c[x.stay[rows_c] == 1]
        entry_pools = np.unique(x.pool[entry_rows])
        groups: list[tuple[str, np.ndarray]] = [(cname, rows_c)]
        merge_info: dict[str, Any] = {}
        entry_fit = None
        if entry_pools.size > 1:
            t, cens = _durations(x, entry_rows)
            entry_fit = fit_los(t, cens, families, ks_limit)
            same, merge_info = _homogeneous(x, entry_rows, next_of, known, entry_fit["_best"],
                                            merge_alpha)
            if not same:
                entry_pool_of_row = x.pool[spell_first][spell_of_row]
                groups = [(f"{cname}@{x.pool_names[p]}", rows_c[entry_pool_of_row[rows_c] == p])
                          for p in entry_pools]
        for gname, rows in groups:
            g_entry = rows[x.stay[rows] == 1]
            arr = fit_arrivals(x.admit[g_entry], n_days, origin, alpha, seed=ci)
            # stages: entry (every first stay) then one per later stage key
            later = rows[x.stay[rows] > 1]
            later_keys = list(dict.fromkeys(key[later][np.argsort(x.stay[later], kind="stable")]
                                            .tolist()))
            stage_rows: list[tuple[str, np.ndarray, int | None]] = [("entry", g_entry, None)]
            names = {}
            for k in later_keys:
                p = int(k % n_pools)
                v = int(k // n_pools)
                nm = (f"{x.pool_names[p]}_{v}" if v > 1 else x.pool_names[p]) if not by_order \
                    else f"stay{v}_{x.pool_names[p]}"
                nm = _safe(nm)
                names[k] = nm
                stage_rows.append((nm, later[key[later] == k], k))
            entry_names = {x.pool_names[p] for p in np.unique(x.pool[g_entry])}
            entry_name = "admission" if any(n in entry_names for n in names.values()) or \
                len(entry_names) > 1 else _safe(next(iter(entry_names)))
            pathway = []
            g_report: dict[str, Any] = {"arrivals": arr, "stages": {}}
            for sname, srows, _k in stage_rows:
                sname = entry_name if sname == "entry" else sname
                if sname == entry_name and entry_fit is not None and len(groups) == 1:
                    lr = entry_fit  # the merged entry stage: already fitted above
                else:
                    t, cens = _durations(x, srows)
                    lr = fit_los(t, cens, families, ks_limit)
                lkey = f"{gname}.{sname}"
                los_reports[lkey] = lr
                spec = dict(lr["spec"])
                if spec["dist"] == "empirical":
                    rel = f"{_safe(out_name)}_los/{_safe(gname)}__{sname}.csv"
                    empirical[rel] = lr["empirical_values"]
                    spec["file"] = rel
                longest = max(longest, float(lr["dist"].ppf(0.99)))
                pc = np.bincount(x.pool[srows], minlength=n_pools)
                pool_spec: Any = _probs({x.pool_names[i]: float(c) for i, c in enumerate(pc)})
                if len(pool_spec) == 1:
                    pool_spec = next(iter(pool_spec))
                kn = srows[known[srows]]
                counts: dict[str, float] = {}
                for target, c in zip(*np.unique(next_of[kn], return_counts=True), strict=True):
                    label = _EXIT_NAME[int(target)] if target < 0 else names[int(target)]
                    counts[label] = float(c)
                stage: dict[str, Any] = {"stage": sname, "pool": pool_spec, "los": spec}
                if counts and counts != {"home": counts.get("home", 0.0)}:
                    stage["next"] = _probs(counts)
                pathway.append(stage)
                g_report["stages"][sname] = {
                    "stays": int(srows.size), "pool": pool_spec,
                    "next_counts": counts, "los": lr, "_rows": srows,
                }
            cohorts[gname] = {"arrivals": arr["spec"], "pathway": pathway}
            if merge_info:
                g_report["entry_pools_test"] = merge_info
            report["cohorts"][gname] = g_report
    warm = warmup_days if warmup_days is not None else float(min(365, 7 * math.ceil(longest / 7)))
    doc = {
        "name": out_name,
        "description": f"Fitted from {Path(x.source).name}: {x.n_stays} ward stays, "
                       f"{x.origin:%Y-%m-%d} to {x.extract_datetime:%Y-%m-%d}.",
        "start": origin, "warmup_days": warm, "run_days": float(run_days),
        "pools": pool_defs, "cohorts": cohorts,
    }
    return FitResult(doc=doc, report=report, extract=x, empirical=empirical, los=los_reports)


def fit_episodes(path: str | Path | pd.DataFrame, cohort_by: Sequence[str] | str = ("cohort",),
                 pool_by: str = "pool", extract_date: dt.datetime | dt.date | str | None = None,
                 **kwargs: Any) -> FitResult:
    """Read, validate and fit an extract (CSV, Parquet or DataFrame); see ``fit_extract``."""
    return fit_extract(read_extract(path, cohort_by, pool_by, extract_date), **kwargs)


# --------------------------------------------------------------------------- report plots


def reconstructed_census(x: Extract, n_days: int) -> np.ndarray:
    """Midnight census per pool from the extract's stays, days 0..n_days-1 (open stays count)."""
    n_pools = len(x.pool_names)
    end = np.where(np.isnan(x.discharge), np.inf, x.discharge)
    lo = np.clip(np.ceil(x.admit), 0, n_days).astype(np.int64)
    hi = np.clip(np.ceil(np.minimum(end, n_days)), 0, n_days).astype(np.int64)
    width = n_days + 1
    diff = np.bincount(x.pool * width + lo, minlength=n_pools * width)
    diff -= np.bincount(x.pool * width + hi, minlength=n_pools * width)
    return np.cumsum(diff.reshape(n_pools, width), axis=1)[:, :n_days]


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def fit_plots(fit: FitResult, scenario: Scenario, replications: int = 5, seed: int = 1,
              engine: str = "numba") -> dict[str, bytes]:
    """PNG bytes by file suffix: LoS survival curves, arrival profiles, occupancy vs simulated."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import sim

    x = fit.extract
    written: dict[str, bytes] = {}

    # 1. LoS: Kaplan-Meier vs fitted survival, one panel per stage
    keys = list(fit.los)[:16]
    ncol = min(4, len(keys))
    nrow = math.ceil(len(keys) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol, 2.8 * nrow), squeeze=False)
    for ax, k in zip(axes.ravel(), keys, strict=False):
        lr = fit.los[k]
        gname, sname = k.split(".", 1)
        stage = fit.report["cohorts"][gname]["stages"][sname]
        rows = stage["_rows"]
        t, cens = _durations(x, rows)
        kt, ks = kaplan_meier(np.maximum(t, MIN_STAY), cens)
        xmax = float(np.quantile(kt, 0.995)) if kt.size else 1.0
        grid = np.linspace(0, xmax, 200)
        ax.step(kt, ks, where="post", lw=1.2, label="observed (Kaplan-Meier)")
        ax.plot(grid, lr["dist"].sf(grid), lw=1.2, ls="--", label=f"fitted {lr['chosen']}")
        ax.set_xlim(0, xmax)
        ax.set_yscale("log")
        ax.set_ylim(max(1e-3, float(ks[ks > 0].min()) if (ks > 0).any() else 1e-3), 1.05)
        ax.set_title(k, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6)
    for ax in axes.ravel()[len(keys):]:
        ax.axis("off")
    fig.supxlabel("length of stay (days)")
    fig.supylabel("share still in the bed")
    fig.tight_layout()
    written[".fit_los.png"] = _png(fig)
    plt.close(fig)

    # 2. arrivals by weekday and month: observed factor vs the scenario's
    n_days = int(math.floor(x.extract_days))
    dates = np.datetime64(x.origin.date(), "D") + np.arange(n_days)
    month = dates.astype("datetime64[M]").astype(int) % 12
    wday = (dates.astype(int) + 3) % 7
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    for gname, g in list(fit.report["cohorts"].items())[:10]:
        y = g["arrivals"]["daily_counts"]
        spec = g["arrivals"]["spec"]
        if y.mean() <= 0:
            continue
        obs_w = np.array([y[wday == d].mean() for d in range(7)]) / y.mean()
        line = a1.plot(range(7), obs_w, "o", ms=4, label=gname)[0]
        a1.plot(range(7), spec.get("weekday", [1.0] * 7), "-", color=line.get_color(), lw=1)
        obs_m = np.array([y[month == m].mean() if (month == m).any() else np.nan
                          for m in range(12)]) / y.mean()
        a2.plot(range(12), obs_m, "o", ms=4, color=line.get_color())
        a2.plot(range(12), spec.get("seasonal", [1.0] * 12), "-", color=line.get_color(), lw=1)
    a1.set_xticks(range(7), ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"])
    a2.set_xticks(range(12), list("JFMAMJJASOND"))
    a1.set_ylabel("daily admissions / cohort mean")
    a1.set_title("by weekday (dots: data, lines: scenario)", fontsize=9)
    a2.set_title("by month (dots: data, lines: scenario)", fontsize=9)
    a1.legend(fontsize=6)
    fig.tight_layout()
    written[".fit_arrivals.png"] = _png(fig)
    plt.close(fig)

    # 3. occupancy: reconstructed from the extract vs the fitted scenario from the same empty start
    census = reconstructed_census(x, n_days)
    if replications > 0:
        doc = scenario.to_dict()
        doc.update(warmup_days=0, run_days=float(n_days))
        sim_sc = scenario_from_dict(doc, scenario.source_path)
        res = sim.run(sim_sc, replications=replications, seed=seed, engine=engine, jobs=1)
        simulated = res.census_days
    else:
        simulated = None
    n_pools = len(x.pool_names)
    fig, axes = plt.subplots(n_pools, 1, figsize=(10, 2.2 * n_pools), squeeze=False, sharex=True)
    days = dates.astype("datetime64[D]").astype(dt.date)
    for k, pname in enumerate(x.pool_names):
        ax = axes[k, 0]
        ax.plot(days, census[k], lw=0.8, color="black", label="reconstructed from the extract")
        if simulated is not None:
            j = list(scenario.pools).index(pname)
            q = np.percentile(simulated[:, j, :], [5, 50, 95], axis=0)
            ax.fill_between(days, q[0], q[2], alpha=0.3, label=f"fitted scenario, {replications} runs (5-95%)")
            ax.plot(days, q[1], lw=0.8)
        ax.set_title(pname, fontsize=9)
        ax.set_ylabel("midnight census", fontsize=8)
        ax.legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    written[".fit_occupancy.png"] = _png(fig)
    plt.close(fig)
    return written

