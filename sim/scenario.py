"""Scenario schema (pydantic v2), YAML loading with ``extends:`` inheritance, and errors.

Every problem in a scenario is reported at once, each with its YAML path and offending value.
"""

import copy
import datetime as dt
import difflib
import math
import os
import re
import types
from collections.abc import Mapping
from dataclasses import dataclass
from inspect import isclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

__all__ = [
    "EXITS",
    "MISSING",
    "Arrivals",
    "CapacityChange",
    "Intervention",
    "Phase",
    "StepDown",
    "Cohort",
    "Discharges",
    "LoS",
    "LoSComponent",
    "Pool",
    "Problem",
    "Scenario",
    "ScenarioError",
    "Stage",
    "deep_merge",
    "load_scenario",
    "scenario_from_dict",
    "scenario_json_schema",
    "set_path",
]

EXITS: tuple[str, ...] = ("home", "care_home", "died")
PROB_TOL = 1e-6


# --------------------------------------------------------------------------- errors


class _Missing:
    """Sentinel for 'no offending value to show'."""

    _instance: "_Missing | None" = None

    def __new__(cls) -> "_Missing":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


def _fmt(value: Any, limit: int = 80) -> str:
    """Format an offending value the way it would look in YAML (roughly)."""
    if value is None:
        s = "null"
    elif isinstance(value, bool):
        s = "true" if value else "false"
    elif isinstance(value, float):
        s = f"{value:.10g}" if math.isfinite(value) else repr(value)
    elif isinstance(value, dt.date):
        s = value.isoformat()
    else:
        s = repr(value)
    return s if len(s) <= limit else s[: limit - 3] + "..."


@dataclass
class Problem:
    """One problem in a scenario: YAML path, plain message, offending value (if any)."""

    path: str
    message: str
    value: Any = MISSING

    @property
    def has_value(self) -> bool:
        return self.value is not MISSING

    def __str__(self) -> str:
        out = f"{self.path}: {self.message}" if self.path else self.message
        return f"{out}, got {_fmt(self.value)}" if self.has_value else out


class ScenarioError(Exception):
    """A scenario is invalid; ``.problems`` lists every problem found."""

    def __init__(self, problems: list[Problem], source: Path | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        super().__init__("\n".join(str(p) for p in self.problems))

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.problems, self.source))


# --------------------------------------------------------------------------- schema

_CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False)

_PARAM_SETS: dict[str, tuple[tuple[str, ...], ...]] = {
    "exponential": (("mean",),),
    "fixed": (("mean",),),
    "lognormal": (("mean", "cv"), ("mu", "sigma")),
    "gamma": (("mean", "cv"), ("shape", "scale")),
    "weibull": (("mean", "cv"), ("shape", "scale")),
    "mixture": (("components",),),
    "empirical": (("file",),),
}
_OPTIONAL_PARAMS: dict[str, tuple[str, ...]] = {"empirical": ("column",)}
_PARAM_FIELDS = ("mean", "cv", "mu", "sigma", "shape", "scale", "components", "file", "column")


def _check_los_params(los: BaseModel) -> list[str]:
    """Per-distribution parameter rules shared by LoS and LoSComponent."""
    dist: str = los.dist  # type: ignore[attr-defined]
    given = {f for f in _PARAM_FIELDS if getattr(los, f, None) is not None}
    sets = _PARAM_SETS[dist]
    allowed = {p for s in sets for p in s} | set(_OPTIONAL_PARAMS.get(dist, ()))
    msgs = []
    extra = sorted(given - allowed, key=_PARAM_FIELDS.index)
    if extra:
        msgs.append(f"{dist} does not take {', '.join(extra)}")
    core = given & {p for s in sets for p in s}
    if not any(set(s) == core for s in sets):
        need = ", or ".join(" and ".join(s) for s in sets)
        if any(set(s) < core for s in sets):
            msgs.append(f"{dist} takes {need}, not a mix")
        else:
            msgs.append(f"{dist} needs {need}")
    cv = getattr(los, "cv", None)
    if dist in ("lognormal", "gamma", "weibull") and cv is not None and cv <= 0:
        msgs.append(f"cv must be > 0 for {dist}, got {_fmt(cv)}")
    return msgs


class _LoSParams(BaseModel):
    model_config = _CONFIG

    dist: str
    mean: float | None = Field(default=None, gt=0, description="Mean length of stay in days.")
    cv: float | None = Field(default=None, ge=0, description="Coefficient of variation (sd / mean).")
    mu: float | None = Field(default=None, description="lognormal: mean of log(stay).")
    sigma: float | None = Field(default=None, gt=0, description="lognormal: sd of log(stay).")
    shape: float | None = Field(default=None, gt=0, description="gamma / weibull shape.")
    scale: float | None = Field(default=None, gt=0, description="gamma / weibull scale (days).")


class LoSComponent(_LoSParams):
    """One weighted component of a mixture LoS."""

    dist: Literal["exponential", "lognormal", "gamma", "weibull", "fixed"]
    weight: float = Field(gt=0, description="Mixture weight; weights sum to 1.")

    @model_validator(mode="after")
    def _check(self) -> "LoSComponent":
        msgs = _check_los_params(self)
        if msgs:
            raise ValueError("; ".join(msgs))
        return self


class LoS(_LoSParams):
    """A length-of-stay distribution, given as mean and cv or by natural parameters."""

    dist: Literal["exponential", "lognormal", "gamma", "weibull", "fixed", "mixture", "empirical"]
    components: list[LoSComponent] | None = Field(default=None, description="mixture components.")
    file: str | None = Field(
        default=None, description="empirical: CSV of observed stays (days), relative to the scenario."
    )
    column: str | None = Field(default=None, description="empirical: CSV column (needed when the file has several columns).")

    @model_validator(mode="after")
    def _check(self) -> "LoS":
        msgs = _check_los_params(self)
        if self.dist == "mixture" and self.components is not None:
            if not self.components:
                msgs.append("mixture needs at least 1 component")
            else:
                total = math.fsum(c.weight for c in self.components)
                if abs(total - 1.0) > PROB_TOL:
                    msgs.append(f"mixture weights must sum to 1, got {_fmt(total)}")
        if msgs:
            raise ValueError("; ".join(msgs))
        return self


def _check_profile(v: list[float] | None, n: int, what: str) -> list[float] | None:
    if v is not None and len(v) != n:
        raise ValueError(f"must have exactly {n} values ({what}), has {len(v)}")
    return v


class Arrivals(BaseModel):
    """Admissions of a cohort: annual volume, growth and calendar profiles."""

    model_config = _CONFIG

    per_year: float = Field(gt=0, description="Admissions per year at base_date.")
    growth: float = Field(default=0.0, gt=-1, description="Annual compound growth (0.02 = 2%).")
    base_date: dt.date | None = Field(
        default=None, description="Date at which per_year applies (default: scenario start)."
    )
    seasonal: list[Annotated[float, Field(gt=0)]] | None = Field(
        default=None, description="12 monthly factors, Jan..Dec."
    )
    weekday: list[Annotated[float, Field(gt=0)]] | None = Field(
        default=None, description="7 weekday factors, Mon..Sun."
    )
    hourly: list[Annotated[float, Field(ge=0)]] | None = Field(
        default=None, description="24 hour-of-day factors (non-negative, positive sum)."
    )
    overdispersion: float = Field(
        default=0.0, ge=0, description="CV of a day-level gamma multiplier (0 = Poisson)."
    )

    @field_validator("seasonal")
    @classmethod
    def _seasonal(cls, v: list[float] | None) -> list[float] | None:
        return _check_profile(v, 12, "Jan..Dec")

    @field_validator("weekday")
    @classmethod
    def _weekday(cls, v: list[float] | None) -> list[float] | None:
        return _check_profile(v, 7, "Mon..Sun")

    @field_validator("hourly")
    @classmethod
    def _hourly(cls, v: list[float] | None) -> list[float] | None:
        _check_profile(v, 24, "hours 0..23")
        if v is not None and not sum(v) > 0:
            raise ValueError("must have a positive sum")
        return v


class CapacityChange(BaseModel):
    """A dated change of a pool's capacity."""

    model_config = _CONFIG

    date: dt.date = Field(description="Date from which the new capacity applies.")
    capacity: int | None = Field(ge=0, description="New capacity (null = unlimited).")


_OVERFLOW_RE = re.compile(r"^overflow\s*:\s*(\S.*?)\s*$")


def _parse_when_full(v: Any) -> tuple[str, str | None] | None:
    """Parse a when_full value (``queue``, ``lose``, ``overflow:<pool>``); None if invalid."""
    if isinstance(v, Mapping) and len(v) == 1 and "overflow" in v and isinstance(v["overflow"], str):
        v = f"overflow:{v['overflow']}"
    if not isinstance(v, str):
        return None
    s = v.strip()
    if s in ("queue", "lose"):
        return (s, None)
    m = _OVERFLOW_RE.match(s)
    return ("overflow", m.group(1)) if m else None


class Discharges(BaseModel):
    """When a pool's patients can go home: relative chance by weekday and permitted hours.

    A patient whose stay ends while discharges are closed waits in the bed until the next
    permitted time (counted as discharge-held days, apart from delayed transfers).
    """

    model_config = _CONFIG

    weekday: list[Annotated[float, Field(ge=0)]] | None = Field(
        default=None, description="Mon..Sun: chance a discharge due that day goes ahead, relative "
        "to the best day (scaled so the largest is 1).", examples=[[1, 1, 1, 1, 1, 0.55, 0.45]])
    hours: tuple[Annotated[float, Field(ge=0, le=24)], Annotated[float, Field(ge=0, le=24)]] | None = Field(
        default=None, description="[open, close): hours of the day when discharges happen.",
        examples=[[8, 20]])

    @field_validator("weekday")
    @classmethod
    def _weekday(cls, v: list[float] | None) -> list[float] | None:
        _check_profile(v, 7, "Mon..Sun")
        if v is not None and not max(v) > 0:
            raise ValueError("needs at least one day with discharges (a value > 0)")
        return v

    @field_validator("hours")
    @classmethod
    def _hours(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        if v is not None:
            lo, hi = v
            if not lo < hi:
                raise ValueError("must be [open, close) with open < close")
        return v


_ON_REDUCTION_RE = re.compile(r"^move\s*:\s*(\S.*?)\s*$")


def _parse_on_reduction(v: Any) -> tuple[str, str | None] | None:
    """Parse ``drain``, ``outlie`` or ``move:<pool>``; None if invalid."""
    if not isinstance(v, str):
        return None
    s = v.strip()
    if s in ("drain", "outlie"):
        return (s, None)
    m = _ON_REDUCTION_RE.match(s)
    return ("move", m.group(1)) if m else None


class Pool(BaseModel):
    """Beds (or home-care slots) with a capacity and a policy when full."""

    model_config = _CONFIG

    capacity: int | None = Field(default=None, ge=0, description="Beds (null = unlimited).")
    when_full: str = Field(
        default="queue", description="queue | lose | overflow:<pool>", examples=["overflow:escalation"]
    )
    ward_size: int | None = Field(default=None, gt=0, description="Beds per ward (for closures).")
    capacity_changes: list[CapacityChange] = Field(default_factory=list)
    on_reduction: str = Field(
        default="drain", description="Patients above a reduced capacity: drain (they stay; no "
        "admissions until it fits), outlie (they leave the pool's beds and are counted as "
        "outliers elsewhere) or move:<pool> (they move to that pool's beds).",
        examples=["move:community"])
    discharges: Discharges | None = Field(
        default=None, description="Weekday and hour-of-day discharge pattern (default: any time).")
    description: str = ""

    @field_validator("on_reduction")
    @classmethod
    def _on_reduction(cls, v: str) -> str:
        if _parse_on_reduction(v) is None:
            raise ValueError("must be 'drain', 'outlie' or 'move:<pool>'")
        return v.strip()

    @property
    def reduction(self) -> tuple[str, str | None]:
        """``("drain", None)``, ``("outlie", None)`` or ``("move", pool_name)``."""
        parsed = _parse_on_reduction(self.on_reduction)
        assert parsed is not None
        return parsed

    @field_validator("when_full", mode="before")
    @classmethod
    def _when_full(cls, v: Any) -> Any:
        parsed = _parse_when_full(v)
        if parsed is None:
            raise ValueError("must be 'queue', 'lose' or 'overflow:<pool>'")
        kind, target = parsed
        return kind if target is None else f"overflow:{target}"

    @property
    def policy(self) -> tuple[str, str | None]:
        """``("queue", None)``, ``("lose", None)`` or ``("overflow", pool_name)``."""
        parsed = _parse_when_full(self.when_full)
        assert parsed is not None
        return parsed


class Stage(BaseModel):
    """One step of a pathway: choose a pool, draw a LoS, then a next stage or an exit."""

    model_config = _CONFIG

    stage: str = Field(min_length=1, description="Stage name (unique within the pathway).")
    pool: str | dict[str, float] = Field(
        description="A pool name, or a mapping of pool names to probabilities."
    )
    los: LoS
    next: dict[str, float] | None = Field(
        default=None,
        description="Stage names of this pathway or exits (home, care_home, died) to "
        "probabilities; omitted = home.",
    )


class Cohort(BaseModel):
    """A stream of admissions and the pathway its patients follow."""

    model_config = _CONFIG

    arrivals: Arrivals
    pathway: list[Stage] = Field(min_length=1, description="Stages; the first is the entry.")
    description: str = ""


class StepDown(BaseModel):
    """The service a shortened stay continues in (pool choice and LoS; LoS default: the days cut)."""

    model_config = _CONFIG

    stage: str = Field(default="step_down", min_length=1, description="Stage name of the step-down.")
    pool: str | dict[str, float] = Field(description="A pool name, or pools to probabilities.")
    los: LoS | None = Field(
        default=None, description="LoS in the step-down service (default: the days cut from the stay)."
    )


class Phase(BaseModel):
    """One point of an intervention's phasing: its level (share of full size) at a date."""

    model_config = _CONFIG

    date: dt.date
    level: float = Field(ge=0, le=1, description="Share of full size reached at this date.")


_IV_FIELDS: dict[str, tuple[str, ...]] = {
    "avoid": ("cohorts", "stage", "fraction", "per_year", "mean_los", "lane", "delivery"),
    "divert": ("cohorts", "stage", "fraction", "per_year", "mean_los", "lane", "pathway",
               "delivery"),
    "shorten": ("cohorts", "stage", "fraction", "per_year", "lane", "days_saved", "keep_fraction",
                "min_los", "step_down", "delivery"),
    "capacity": ("pool", "beds", "wards"),
}
_IV_OPTIONAL = ("cohorts", "stage", "fraction", "per_year", "mean_los", "lane", "delivery",
                "pathway", "days_saved", "keep_fraction", "min_los", "step_down", "pool", "beds", "wards")


class Intervention(BaseModel):
    """A named, dated, scalable change: avoid / divert / shorten admissions, or change capacity.

    Patient-level interventions select patients by their uniform mark: each takes a fixed lane
    of [0, 1) per cohort (in list order), so scaling one never changes who another picks.
    """

    model_config = _CONFIG

    name: str = Field(min_length=1, description="Unique name (also keys its random streams).")
    type: Literal["avoid", "divert", "shorten", "capacity"]
    description: str = ""
    cohorts: list[str] | None = Field(default=None, description="Targeted cohorts.")
    stage: str | None = Field(
        default=None, description="Targeted stage of each cohort's pathway (default: the first)."
    )
    fraction: float | None = Field(
        default=None, ge=0, le=1, description="Share of the (eligible) admissions selected."
    )
    per_year: float | None = Field(
        default=None, ge=0,
        description="Episodes a year at full size, converted to a fraction of the targeted "
        "cohorts' expected (eligible) volume in the last 365 days of the results window.",
    )
    mean_los: float | None = Field(
        default=None, gt=0,
        description="avoid/divert: select only stays up to a threshold chosen so that the "
        "selected stays average this many days (the seed's 'episodes @ average LoS').",
    )
    lane: float | None = Field(
        default=None, gt=0, le=1, description="Width of its slice of [0, 1) (default 2 x fraction)."
    )
    delivery: Literal["independent", "monthly"] | None = Field(
        default=None,
        description="'independent': each eligible patient is picked with the lever's share; "
        "'monthly': each calendar month the lever takes its number of episodes (the size x "
        "level over the month's days, rounded with carry) from the eligible patients in its "
        "lane, lowest marks first. Default: monthly for per_year, independent for fraction.",
    )
    start: dt.date = Field(description="Date the intervention starts (level 0).")
    ramp_days: float = Field(default=0, ge=0, description="Linear ramp to full size, in days.")
    phasing: list[Phase] | None = Field(
        default=None, description="Piecewise-linear levels after start (instead of ramp_days)."
    )
    scale: float = Field(default=1.0, ge=0, description="Multiplier of the size (for experiments).")
    pathway: list[Stage] | None = Field(default=None, description="divert: the step-up pathway.")
    days_saved: float | None = Field(default=None, gt=0, description="shorten: days cut per stay.")
    keep_fraction: float | None = Field(
        default=None, gt=0, lt=1, description="shorten: share of the stay kept."
    )
    min_los: float | None = Field(default=None, ge=0, description="shorten: only stays >= this.")
    step_down: StepDown | None = Field(default=None, description="shorten: where the rest goes.")
    pool: str | None = Field(default=None, description="capacity: the pool.")
    beds: int | None = Field(default=None, description="capacity: beds opened (+) or closed (-).")
    wards: int | None = Field(
        default=None, description="capacity: wards opened (+) or closed (-), of the pool's ward_size."
    )

    @property
    def delivery_mode(self) -> str:
        """``delivery``, or its default: monthly for per_year sizes, independent for fractions."""
        return self.delivery or ("monthly" if self.per_year is not None else "independent")

    @model_validator(mode="after")
    def _check(self) -> "Intervention":
        allowed = _IV_FIELDS[self.type]
        msgs = []
        extra = [f for f in _IV_OPTIONAL if getattr(self, f) is not None and f not in allowed]
        if extra:
            msgs.append(f"{self.type} does not take {', '.join(extra)}")
        if self.type == "capacity":
            if self.pool is None:
                msgs.append("capacity needs pool")
            if (self.beds is None) == (self.wards is None):
                msgs.append("capacity needs beds or wards (one of them)")
        else:
            if not self.cohorts:
                msgs.append(f"{self.type} needs cohorts (a non-empty list)")
            if (self.fraction is None) == (self.per_year is None):
                msgs.append(f"{self.type} needs fraction or per_year (one of them)")
        if self.type == "divert" and not self.pathway:
            msgs.append("divert needs pathway (the step-up stages)")
        if self.type == "shorten":
            if (self.days_saved is None) == (self.keep_fraction is None):
                msgs.append("shorten needs days_saved or keep_fraction (one of them)")
            if self.step_down is None:
                msgs.append("shorten needs step_down (pool and optional los)")
        if self.phasing is not None and self.ramp_days:
            msgs.append("give ramp_days or phasing, not both")
        if self.type == "capacity" and (self.phasing is not None or self.ramp_days):
            msgs.append("capacity changes at its start date: no ramp_days or phasing")
        if msgs:
            raise ValueError("; ".join(msgs))
        return self


class InitialCensus(BaseModel):
    """A pool's patients at day 0: a count (with a cohort mix) or a CSV of current inpatients."""

    model_config = _CONFIG

    pool: str
    count: int | None = Field(default=None, ge=0, description="Patients in the pool at day 0.")
    mix: dict[str, float] | None = Field(
        default=None, description="Cohort shares of the count (default: by expected bed days).")
    file: str | None = Field(default=None, description="CSV with columns cohort, admitted (date).")

    @model_validator(mode="after")
    def _one_source(self) -> "InitialCensus":
        if (self.count is None) == (self.file is None):
            raise ValueError("give either count (with an optional mix) or file, not both")
        if self.file is not None and self.mix is not None:
            raise ValueError("mix goes with count; a file names each patient's cohort")
        return self


class Scenario(BaseModel):
    """A complete scenario: calendar, bed pools and cohorts."""

    model_config = _CONFIG

    name: str = Field(min_length=1)
    description: str = ""
    start: dt.date = Field(description="Calendar date of day 0.")
    warmup_days: float = Field(default=0, ge=0)
    run_days: float = Field(gt=0)
    pools: dict[str, Pool] = Field(min_length=1)
    cohorts: dict[str, Cohort] = Field(min_length=1)
    interventions: list[Intervention] = Field(
        default_factory=list, description="Interventions, applied in list order (sim.interventions)."
    )
    initial_census: list[InitialCensus] = Field(
        default_factory=list, description="Patients already in beds at day 0 (sim.census_start)."
    )

    _source: Path | None = PrivateAttr(default=None)
    _uncertain: list[Any] = PrivateAttr(default_factory=list)

    @property
    def uncertain_parameters(self) -> list[Any]:
        """Values given as ranges or distributions (sim.uncertainty.Parameter), sampled per run."""
        return self._uncertain

    @property
    def horizon_days(self) -> float:
        """Warm-up plus run length, in days."""
        return self.warmup_days + self.run_days

    @property
    def source_path(self) -> Path | None:
        """The YAML file this scenario was loaded from (None if built from a dict)."""
        return self._source

    def resolve_path(self, p: str | os.PathLike[str]) -> Path:
        """Resolve a path from the scenario (e.g. an empirical LoS file) against its file."""
        path = Path(p).expanduser()
        if path.is_absolute() or self._source is None:
            return path
        return self._source.parent / path

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (dates as ISO strings) that round-trips via scenario_from_dict."""
        doc = self.model_dump(mode="json")
        for parameter in self._uncertain:
            set_path(doc, parameter.path, parameter.to_spec())
        return doc


# --------------------------------------------------------------------------- pydantic errors


def _path_str(parts: list[str | int]) -> str:
    out = ""
    for p in parts:
        if isinstance(p, int) and not isinstance(p, bool):
            out += f"[{p}]"
        else:
            out += f".{p}" if out else str(p)
    return out


def _unwrap(tp: Any) -> list[Any]:
    """Flatten Annotated / Optional / Union into their member types."""
    origin = get_origin(tp)
    if origin is Annotated:
        return _unwrap(get_args(tp)[0])
    if origin in (Union, types.UnionType):
        return [m for a in get_args(tp) if a is not type(None) for m in _unwrap(a)]
    return [tp]


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class that validates the value at ``loc`` (None if not a model)."""
    candidates: list[Any] = [Scenario]
    for part in loc:
        nxt: list[Any] = []
        for tp in candidates:
            for t in _unwrap(tp):
                if isclass(t) and issubclass(t, BaseModel):
                    f = t.model_fields.get(part) if isinstance(part, str) else None
                    if f is not None:
                        nxt.append(f.annotation)
                elif get_origin(t) is list and isinstance(part, int):
                    nxt.append(get_args(t)[0])
                elif get_origin(t) is dict:
                    nxt.append(get_args(t)[1])
        candidates = nxt
    for tp in candidates:
        for t in _unwrap(tp):
            if isclass(t) and issubclass(t, BaseModel):
                return t
    return None


def _message(err: Mapping[str, Any], loc: tuple[Any, ...]) -> tuple[str, bool]:
    """Plain-English message for one pydantic error, and whether to show the input."""
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind == "missing":
        return "required", False
    if kind == "extra_forbidden":
        msg = "unknown key"
        model = _model_at(loc[:-1])
        if model is not None and isinstance(loc[-1], str):
            names = list(model.model_fields)
            if model is Scenario:
                names.append("extends")
            close = difflib.get_close_matches(loc[-1], names, n=1)
            if close:
                msg += f" (did you mean '{close[0]}'?)"
        return msg, False
    simple = {
        "greater_than": "must be > {gt}",
        "greater_than_equal": "must be >= {ge}",
        "less_than": "must be < {lt}",
        "less_than_equal": "must be <= {le}",
    }
    if kind in simple:
        return simple[kind].format(**{k: _fmt(v) for k, v in ctx.items()}), True
    if kind in ("float_type", "float_parsing"):
        return "must be a number", True
    if kind in ("int_type", "int_parsing", "int_from_float", "int_parsing_size"):
        return "must be a whole number", True
    if kind == "finite_number":
        return "must not be NaN or infinite", True
    if kind == "string_type":
        return "must be a string", True
    if kind in ("bool_type", "bool_parsing"):
        return "must be true or false", True
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return "must be a mapping", True
    if kind == "list_type":
        return "must be a list", True
    if kind.startswith("date_") or kind.startswith("datetime_"):
        return "must be a date (YYYY-MM-DD)", True
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '')}", True
    if kind == "too_short":
        if ctx.get("min_length") == 1:
            return "must not be empty", False
        return f"must have at least {ctx.get('min_length')} items", True
    if kind == "too_long":
        return f"must have at most {ctx.get('max_length')} items", True
    if kind in ("value_error", "assertion_error"):
        # Model-level checks (e.g. LoS parameters) quote the value in the message already.
        return str(ctx.get("error", err["msg"])), not isinstance(err.get("input"), Mapping)
    return str(err["msg"]), True


_UNION_TAGS = {"str", "dict[str,float]"}


def _translate(exc: ValidationError, doc: Any) -> list[Problem]:
    """Turn pydantic's error list into Problems with YAML paths."""
    problems: list[Problem] = []
    union_done: set[str] = set()
    for err in exc.errors():
        loc = tuple(err["loc"])
        parts: list[str | int] = []
        clean: list[Any] = []
        node: Any = doc
        skip = False
        key_error = False
        i = 0
        while i < len(loc):
            part = loc[i]
            if part == "[key]":
                key_error = True
                i += 1
                continue
            # Stage.pool is a union: pydantic tags the branch; keep only the one that applies.
            if (
                isinstance(part, str)
                and part in _UNION_TAGS
                and len(clean) >= 3
                and clean[-1] == "pool"
                and isinstance(clean[-2], int)
            ):
                if isinstance(node, str):
                    skip = part != "str"
                elif isinstance(node, Mapping):
                    skip = part != "dict[str,float]"
                else:
                    path = _path_str(parts)
                    skip = True
                    if path not in union_done:
                        union_done.add(path)
                        problems.append(
                            Problem(path, "must be a pool name or a mapping of pools to probabilities", node)
                        )
                if skip:
                    break
                i += 1
                continue
            if isinstance(node, list) and isinstance(part, int):
                parts.append(part)
                node = node[part] if -len(node) <= part < len(node) else None
            else:
                parts.append(str(part))
                node = node.get(part) if isinstance(node, Mapping) else None
            clean.append(part)
            i += 1
        if skip:
            continue
        path = _path_str(parts)
        if key_error:
            if parts and isinstance(err.get("input"), bool):
                path = _path_str([*parts[:-1], str(err["input"]).lower()])
            msg = "keys must be strings"
            if isinstance(err.get("input"), bool):
                msg += " (quote the key: yes/no/on/off are booleans in YAML)"
            problems.append(Problem(path, msg))
            continue
        msg, show = _message(err, tuple(clean))
        problems.append(Problem(path, msg, err.get("input") if show else MISSING))
    return problems


# --------------------------------------------------------------------------- cross-reference checks


def _is_num(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _as_date(x: Any) -> dt.date | None:
    if isinstance(x, dt.datetime):
        return x.date()
    if isinstance(x, dt.date):
        return x
    if isinstance(x, str):
        try:
            return dt.date.fromisoformat(x.strip())
        except ValueError:
            return None
    return None


def _check_probs(mapping: Mapping[Any, Any], path: str, out: list[Problem]) -> None:
    """Probabilities must be >= 0 and sum to 1 (non-numbers are left to field validation)."""
    if not mapping:
        out.append(Problem(path, "must not be empty"))
        return
    values = []
    for k, v in mapping.items():
        if not _is_num(v):
            return
        if v < 0:
            out.append(Problem(f"{path}.{k}", "probability must be >= 0", v))
        values.append(float(v))
    total = math.fsum(values)
    if abs(total - 1.0) > PROB_TOL:
        out.append(Problem(path, "probabilities must sum to 1", total))


def _find_cycles(order: list[str], edges: Mapping[str, list[str]]) -> list[list[str]]:
    """Elementary cycles found by DFS (one per back edge), each starting at its earliest node."""
    rank = {n: i for i, n in enumerate(order)}
    state: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []
    seen: set[tuple[str, ...]] = set()

    def visit(n: str) -> None:
        state[n] = 1
        stack.append(n)
        for m in edges.get(n, []):
            if state.get(m) == 1:
                cyc = stack[stack.index(m):]
                k = min(range(len(cyc)), key=lambda j: rank[cyc[j]])
                cyc = cyc[k:] + cyc[:k]
                if tuple(cyc) not in seen:
                    seen.add(tuple(cyc))
                    found.append(cyc + [cyc[0]])
            elif m not in state:
                visit(m)
        stack.pop()
        state[n] = 2

    for n in order:
        if n not in state:
            visit(n)
    return found


def _check_pools(doc: Mapping[str, Any], out: list[Problem]) -> None:
    pools = doc.get("pools")
    if not isinstance(pools, Mapping):
        return
    start = _as_date(doc.get("start"))
    warmup = doc.get("warmup_days", 0)
    run = doc.get("run_days")
    end = None
    if start is not None and _is_num(warmup) and _is_num(run) and warmup >= 0 and run > 0:
        try:
            end = start + dt.timedelta(days=float(warmup) + float(run))
        except OverflowError:
            end = None
    targets: dict[str, str] = {}
    for name, pool in pools.items():
        if not isinstance(pool, Mapping):
            continue
        base = f"pools.{name}"
        parsed = _parse_when_full(pool.get("when_full", "queue"))
        if parsed is not None and parsed[1] is not None:
            target = parsed[1]
            if target == name:
                out.append(Problem(f"{base}.when_full", "pool overflows to itself", pool["when_full"]))
            elif target not in pools:
                out.append(
                    Problem(f"{base}.when_full", f"unknown overflow pool '{target}'", pool["when_full"])
                )
            else:
                targets[str(name)] = target
        reduction = pool.get("on_reduction")
        parsed_r = _parse_on_reduction(reduction) if reduction is not None else None
        if parsed_r is not None and parsed_r[1] is not None:
            if parsed_r[1] == name:
                out.append(Problem(f"{base}.on_reduction", "pool moves patients to itself", reduction))
            elif parsed_r[1] not in pools:
                out.append(Problem(f"{base}.on_reduction", f"unknown pool '{parsed_r[1]}'", reduction))
        changes = pool.get("capacity_changes")
        if end is not None and start is not None and isinstance(changes, list):
            for i, ch in enumerate(changes):
                d = _as_date(ch.get("date")) if isinstance(ch, Mapping) else None
                if d is not None and not start <= d <= end:
                    out.append(
                        Problem(
                            f"{base}.capacity_changes[{i}].date",
                            f"must be within the horizon {start.isoformat()} .. {end.isoformat()}",
                            d,
                        )
                    )
    # Each pool overflows to at most one other, so every loop is found by following the chain.
    reported: set[frozenset[str]] = set()
    for name in targets:
        chain = [name]
        while chain[-1] in targets and targets[chain[-1]] not in chain:
            chain.append(targets[chain[-1]])
        last = chain[-1]
        if last in targets and targets[last] in chain:
            loop = chain[chain.index(targets[last]):]
            if frozenset(loop) not in reported:
                reported.add(frozenset(loop))
                first = loop[0]
                out.append(
                    Problem(
                        f"pools.{first}.when_full",
                        "overflow chain loops back: " + " -> ".join(loop + [first]),
                    )
                )


def _check_cohorts(doc: Mapping[str, Any], source: Path | None, out: list[Problem]) -> None:
    cohorts = doc.get("cohorts")
    pools = doc.get("pools")
    pool_names = set(pools) if isinstance(pools, Mapping) else None
    if not isinstance(cohorts, Mapping):
        return
    for cname, cohort in cohorts.items():
        if not isinstance(cohort, Mapping) or not isinstance(cohort.get("pathway"), list):
            continue
        pathway = cohort["pathway"]
        ppath = f"cohorts.{cname}.pathway"
        names: dict[str, int] = {}
        for i, st in enumerate(pathway):
            if not isinstance(st, Mapping) or not isinstance(st.get("stage"), str):
                continue
            sname = st["stage"]
            if sname in EXITS:
                out.append(Problem(f"{ppath}[{i}].stage", "stage name is reserved for an exit", sname))
            elif sname in names:
                out.append(
                    Problem(
                        f"{ppath}[{i}].stage",
                        f"duplicate stage name (also {ppath}[{names[sname]}])",
                        sname,
                    )
                )
            else:
                names[sname] = i
        edges: dict[str, list[str]] = {}
        for i, st in enumerate(pathway):
            if not isinstance(st, Mapping):
                continue
            spath = f"{ppath}[{i}]"
            pool = st.get("pool")
            if isinstance(pool, str) and pool_names is not None and pool not in pool_names:
                out.append(Problem(f"{spath}.pool", "unknown pool", pool))
            elif isinstance(pool, Mapping):
                if pool_names is not None:
                    for k in pool:
                        if isinstance(k, str) and k not in pool_names:
                            out.append(Problem(f"{spath}.pool.{k}", "unknown pool", k))
                _check_probs(pool, f"{spath}.pool", out)
            nxt = st.get("next")
            if isinstance(nxt, Mapping):
                known = ", ".join(list(names) + list(EXITS))
                for k in nxt:
                    if not isinstance(k, str):
                        continue
                    if k not in names and k not in EXITS:
                        out.append(
                            Problem(f"{spath}.next.{k}", f"unknown stage or exit (known: {known})", k)
                        )
                _check_probs(nxt, f"{spath}.next", out)
                sname = st.get("stage")
                if isinstance(sname, str) and names.get(sname) == i:
                    edges[sname] = [k for k in nxt if isinstance(k, str) and k in names]
            los = st.get("los")
            if (
                source is not None
                and isinstance(los, Mapping)
                and los.get("dist") == "empirical"
                and isinstance(los.get("file"), str)
            ):
                f = Path(los["file"]).expanduser()
                f = f if f.is_absolute() else source.parent / f
                if not f.is_file():
                    out.append(Problem(f"{spath}.los.file", f"file not found: {f}", los["file"]))
        for cyc in _find_cycles(list(names), edges):
            out.append(Problem(ppath, "pathway has a cycle: " + " -> ".join(cyc)))


def _cross_check(doc: Any, source: Path | None) -> list[Problem]:
    """Reference checks across the document; defensive, so it also runs on invalid input."""
    out: list[Problem] = []
    if isinstance(doc, Mapping):
        _check_pools(doc, out)
        _check_cohorts(doc, source, out)
        _check_initial_census(doc, source, out)
    return out


def _stage_pools(stage: Any) -> set[str]:
    pool = stage.get("pool") if isinstance(stage, Mapping) else None
    if isinstance(pool, str):
        return {pool}
    return set(pool) if isinstance(pool, Mapping) else set()


def _check_initial_census(doc: Mapping[str, Any], source: Path | None, out: list[Problem]) -> None:
    entries = doc.get("initial_census")
    if not isinstance(entries, list):
        return
    pools = doc.get("pools") if isinstance(doc.get("pools"), Mapping) else {}
    cohorts = doc.get("cohorts") if isinstance(doc.get("cohorts"), Mapping) else {}
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            continue
        where = f"initial_census[{i}]"
        pool = entry.get("pool")
        if isinstance(pool, str) and pool not in pools:
            out.append(Problem(f"{where}.pool", "unknown pool", pool))
        mix = entry.get("mix")
        if isinstance(mix, Mapping):
            _check_probs(mix, f"{where}.mix", out)
            for name in mix:
                cohort = cohorts.get(name)
                if cohort is None:
                    out.append(Problem(f"{where}.mix.{name}", "unknown cohort", name))
                elif isinstance(cohort, Mapping) and isinstance(cohort.get("pathway"), list) and not any(
                        pool in _stage_pools(st) for st in cohort["pathway"]):
                    out.append(Problem(f"{where}.mix.{name}", f"cohort never uses pool {pool}", name))
        file = entry.get("file")
        if isinstance(file, str) and source is not None:
            path = Path(file) if Path(file).is_absolute() else source.parent / file
            if not path.exists():
                out.append(Problem(f"{where}.file", "no such file", file))


# --------------------------------------------------------------------------- loading


class _Loader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys and reads an impossible date (2020-13-01)
    as its text, for validation to report with its path instead of failing to load."""

    def construct_yaml_timestamp(self, node: yaml.ScalarNode) -> Any:
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError:
            return self.construct_scalar(node)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                continue
            key = self.construct_object(key_node)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r}",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_yaml_timestamp)


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError([Problem(str(path), "file not found")], path) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ScenarioError([Problem(str(path), f"cannot read file: {e}")], path) from None
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = e.problem or e.context or "invalid YAML"
        raise ScenarioError([Problem(str(path), f"YAML error{where}: {what}")], path) from None
    except yaml.YAMLError as e:
        raise ScenarioError([Problem(str(path), f"YAML error: {e}")], path) from None


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``override`` into ``base``: mappings merge recursively, anything else replaces."""
    out = copy.deepcopy(dict(base))
    for k, v in override.items():
        if isinstance(out.get(k), Mapping) and isinstance(v, Mapping):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _rebase_files(doc: Any, from_dir: Path, to_dir: Path) -> None:
    """Make relative empirical ``los.file`` paths of a parent file relative to the child's dir."""
    if from_dir == to_dir or not isinstance(doc, Mapping):
        return
    cohorts = doc.get("cohorts")
    if not isinstance(cohorts, Mapping):
        return
    for cohort in cohorts.values():
        pathway = cohort.get("pathway") if isinstance(cohort, Mapping) else None
        for st in pathway if isinstance(pathway, list) else []:
            los = st.get("los") if isinstance(st, Mapping) else None
            if isinstance(los, dict) and isinstance(los.get("file"), str):
                f = Path(los["file"]).expanduser()
                if not f.is_absolute():
                    target = from_dir / f
                    try:
                        los["file"] = os.path.relpath(target, to_dir)
                    except ValueError:
                        los["file"] = str(target)


def _resolve_extends(doc: dict[str, Any], base_dir: Path, chain: list[Path]) -> dict[str, Any]:
    """Replace ``extends:`` by the deep-merged parent chain."""
    if "extends" not in doc:
        return doc
    doc = dict(doc)
    ext = doc.pop("extends")
    where = str(chain[-1]) if chain else "extends"
    if not isinstance(ext, str) or not ext.strip():
        raise ScenarioError([Problem("extends", "must be a file path", ext)])
    parent_path = (base_dir / Path(ext).expanduser()).resolve()
    if parent_path in chain:
        names = [p.name for p in chain[chain.index(parent_path):]] + [parent_path.name]
        raise ScenarioError([Problem(where, "extends cycle: " + " -> ".join(names))])
    if not parent_path.is_file():
        raise ScenarioError([Problem(where, f"extends: file not found: {parent_path}", ext)])
    parent = _load_doc(parent_path, chain)
    _rebase_files(parent, parent_path.parent, base_dir)
    return deep_merge(parent, doc)


def _load_doc(path: Path, chain: list[Path]) -> dict[str, Any]:
    """Read one YAML file and resolve its ``extends:`` chain."""
    path = path.resolve()
    doc = _read_yaml(path)
    if doc is None:
        raise ScenarioError([Problem(str(path), "file is empty")], path)
    if not isinstance(doc, dict):
        raise ScenarioError(
            [Problem(str(path), "top level must be a mapping of keys to values", doc)], path
        )
    return _resolve_extends(doc, path.parent, chain + [path])


_SEG_RE = re.compile(r"^([^\[\]]*)((?:\[-?\d+\])*)$")


def _split_path(dotted: str) -> list[str | int]:
    """``"a.b[0].c"`` or ``"a.b.0.c"`` -> ``["a", "b", 0, "c"]`` (digits become ints)."""
    tokens: list[str | int] = []
    for seg in dotted.split("."):
        m = _SEG_RE.match(seg)
        if not m or (not m.group(1) and not m.group(2)):
            raise ScenarioError([Problem(dotted, "invalid override path")])
        name, idx = m.group(1), m.group(2)
        if name:
            tokens.append(int(name) if re.fullmatch(r"-?\d+", name) else name)
        tokens.extend(int(x) for x in re.findall(r"-?\d+", idx))
    return tokens


def set_path(doc: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``doc[dotted path] = value`` in place; intermediate keys must exist."""
    tokens = _split_path(dotted)

    def fail(msg: str) -> ScenarioError:
        return ScenarioError([Problem(dotted, msg)])

    node: Any = doc
    for depth, tok in enumerate(tokens):
        last = depth == len(tokens) - 1
        here, parent = _path_str(tokens[: depth + 1]), _path_str(tokens[:depth])
        if isinstance(node, list):
            if not isinstance(tok, int):
                raise fail(f"'{parent}' is a list: use an index like [0], not '{tok}'")
            if not -len(node) <= tok < len(node):
                raise fail(f"index out of range at '{here}' (list has {len(node)} items)")
        elif isinstance(node, dict):
            if isinstance(tok, int) and tok not in node:
                tok = str(tok)
            if not last and tok not in node:
                raise fail(f"unknown key '{here}' in override path")
        else:
            raise fail(f"'{parent}' is not a mapping or list")
        if last:
            node[tok] = copy.deepcopy(value)
        else:
            node = node[tok]


def _validate(doc: Any, source: Path | None) -> Scenario:
    """Validate fields and cross references, raising one ScenarioError with every problem."""
    if not isinstance(doc, Mapping):
        raise ScenarioError([Problem("", "scenario must be a mapping of keys to values", doc)], source)
    from sim import uncertainty

    problems: list[Problem] = []
    doc, parameters = uncertainty.extract(doc, problems)
    model: Scenario | None = None
    try:
        model = Scenario.model_validate(doc)
    except ValidationError as e:
        problems.extend(_translate(e, doc))
    checked: Any = model.model_dump() if model is not None else doc
    problems.extend(_cross_check(checked, source))
    unique: list[Problem] = []
    seen: set[tuple[str, str]] = set()
    for p in problems:
        if (p.path, p.message) not in seen:
            seen.add((p.path, p.message))
            unique.append(p)
    if not unique and model is not None and model.interventions:
        from sim.interventions import check_interventions  # late import: it needs this module

        model._source = source
        unique.extend(check_interventions(model))
    if unique or model is None:
        raise ScenarioError(unique, source)
    model._source = source
    model._uncertain = parameters
    return model


def scenario_from_dict(doc: Mapping[str, Any], source: Path | None = None) -> Scenario:
    """Validate a scenario dict (``extends:`` resolved against ``source``'s directory)."""
    src = Path(source).resolve() if source is not None else None
    if isinstance(doc, Mapping):
        doc = copy.deepcopy(dict(doc))
        doc = _resolve_extends(doc, src.parent if src else Path.cwd(), [src] if src else [])
    return _validate(doc, src)


def load_scenario(path: str | os.PathLike[str], overrides: Mapping[str, Any] | None = None) -> Scenario:
    """Load, merge (``extends:``), override (dotted paths) and validate a scenario YAML file."""
    src = Path(path).expanduser().resolve()
    doc = _load_doc(src, [])
    problems: list[Problem] = []
    for dotted, value in (overrides or {}).items():
        try:
            set_path(doc, dotted, value)
        except ScenarioError as e:
            problems.extend(e.problems)
    if problems:
        raise ScenarioError(problems, src)
    return _validate(doc, src)


def scenario_json_schema() -> dict[str, Any]:
    """JSON schema of scenario YAML, generated from the pydantic models."""
    schema = Scenario.model_json_schema()
    schema["properties"]["extends"] = {
        "type": "string",
        "description": "Path of a parent scenario (relative to this file) to deep-merge onto.",
    }
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
