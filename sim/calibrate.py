"""LoS calibration: fit cohort stay distributions to their means and to population tail evidence.

Each calibrated cohort keeps its mean stay (beds * 365 / admissions in the STP's spreadsheet
method); the shape is shared: stays are the cohort mean times a unit-mean variable X, a
two-component mixture of exponentials (Harrison-Millard short- and long-stay, the classic model
of geriatric bed use) with two free parameters. They are fitted with scipy so the whole
population's share of bed days in stays of at least x days matches the evidence (Derbyshire:
stays >= 14 days use 573 of 1,268 NEL beds, >= 30 days use 250), using the distributions' exact
partial expectations (LosDistribution.bed_day_share).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import optimize

from sim import los as los_mod
from sim.scenario import Scenario

__all__ = ["Calibration", "SEED_SHARES", "calibrate", "los_spec", "write_config"]

#: Share of acute NEL bed days in stays of at least x days (Derbyshire STP, 2015/16).
SEED_SHARES: dict[float, float] = {14.0: 573 / 1268, 30.0: 250 / 1268}


@dataclass
class Calibration:
    """A fitted shape: short-stay weight and the two component means per unit of cohort mean."""

    weight: float  # weight of the short-stay component
    short: float  # short-stay mean / cohort mean
    long: float  # long-stay mean / cohort mean
    means: dict[str, float]  # cohort -> mean stay (days)
    bed_days: dict[str, float]  # cohort -> bed days a year (the pooling weights)
    targets: dict[float, float]
    fitted: dict[float, float]

    def distribution(self, cohort: str) -> los_mod.LosDistribution:
        m = self.means[cohort]
        return los_mod.Mixture([los_mod.Exponential(self.short * m), los_mod.Exponential(self.long * m)],
                               [self.weight, 1.0 - self.weight])

    def report(self) -> str:
        lines = [f"shape: {self.weight:.4f} x Exp(mean {self.short:.4f} m) + "
                 f"{1 - self.weight:.4f} x Exp(mean {self.long:.4f} m), m = cohort mean"]
        for x, t in self.targets.items():
            lines.append(f"bed days in stays >= {x:g} days: target {100 * t:.2f}%, "
                         f"fitted {100 * self.fitted[x]:.2f}%")
        for c, m in self.means.items():
            d = self.distribution(c)
            lines.append(f"  {c}: mean {d.mean():.4f} days (target {m:.4f}), cv {d.cv():.3f}")
        return "\n".join(lines)


def _pooled_share(weight: float, short: float, means: Mapping[str, float],
                  bed_days: Mapping[str, float], x: float) -> float:
    """Bed-day-weighted share of bed days in stays >= x over the cohorts."""
    long = (1.0 - weight * short) / (1.0 - weight)
    total = sum(bed_days.values())
    out = 0.0
    for c, m in means.items():
        d = los_mod.Mixture([los_mod.Exponential(short * m), los_mod.Exponential(long * m)],
                            [weight, 1.0 - weight])
        out += bed_days[c] * float(d.bed_day_share(x))
    return out / total


def acute_cohorts(scenario: Scenario, prefix: str = "acute") -> list[str]:
    """Cohorts whose entry stage only uses pools whose names start with ``prefix``."""
    out = []
    for name, c in scenario.cohorts.items():
        pool = c.pathway[0].pool
        pools = [pool] if isinstance(pool, str) else list(pool)
        if pools and all(p.startswith(prefix) for p in pools):
            out.append(name)
    return out


def calibrate(scenario: Scenario, cohorts: Sequence[str] | None = None,
              targets: Mapping[float, float] | None = None) -> Calibration:
    """Fit the shared two-exponential shape to the tail targets, keeping each cohort's mean."""
    names = list(cohorts) if cohorts else acute_cohorts(scenario)
    if not names:
        raise ValueError("no cohorts to calibrate")
    goal = dict(targets or SEED_SHARES)
    if len(goal) != 2:
        raise ValueError("the two-parameter shape needs exactly two tail targets")
    base_dir = scenario.source_path.parent if scenario.source_path else None
    # Cohort means to 4 decimals (as the configs give them), so refits of a written file agree.
    means = {c: round(los_mod.from_spec(scenario.cohorts[c].pathway[0].los, base_dir).mean(), 4)
             for c in names}
    bed_days = {c: scenario.cohorts[c].arrivals.per_year * means[c] for c in names}
    xs = sorted(goal)

    def unpack(z: np.ndarray) -> tuple[float, float]:
        weight = 1.0 / (1.0 + math.exp(-z[0]))  # in (0, 1)
        short = (1.0 / (1.0 + math.exp(-z[1]))) / weight  # weight * short in (0, 1): long > 0
        return weight, short

    def resid(z: np.ndarray) -> np.ndarray:
        w, s = unpack(z)
        return np.array([_pooled_share(w, s, means, bed_days, x) - goal[x] for x in xs])

    best = None
    for z0 in ([1.0, -1.0], [2.0, -0.5], [0.0, -2.0], [3.0, 0.5]):
        sol = optimize.least_squares(resid, np.array(z0), xtol=1e-14, ftol=1e-14, gtol=1e-14)
        if best is None or sol.cost < best.cost:
            best = sol
    assert best is not None
    w, s = unpack(best.x)
    # Rounded (6 decimals) so that re-running on the written file reproduces it exactly; the
    # long-stay mean is then set so each cohort's mean is kept.
    w, s = round(w, 6), round(s, 6)
    long = (1.0 - w * s) / (1.0 - w)
    if s > long:
        raise RuntimeError("calibration did not separate short and long stays")
    fitted = {x: _pooled_share(w, s, means, bed_days, x) for x in xs}
    return Calibration(weight=w, short=s, long=long, means=means, bed_days=bed_days,
                       targets=goal, fitted=fitted)


def los_spec(cal: Calibration, cohort: str) -> str:
    """The fitted LoS of a cohort as a YAML flow mapping."""
    m = cal.means[cohort]
    return (f"{{dist: mixture, components: ["
            f"{{dist: exponential, mean: {cal.short * m:.8g}, weight: {cal.weight:.6f}}}, "
            f"{{dist: exponential, mean: {cal.long * m:.8g}, weight: {1 - cal.weight:.6f}}}]}}")


def _flow_end(text: str, i: int) -> int:
    """Index just past the flow mapping starting at text[i] == '{'."""
    depth = 0
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return j + 1
    raise ValueError("unbalanced braces")


def write_config(path: str | Path, cal: Calibration, command: str) -> str:
    """Rewrite the entry-stage ``los:`` of each calibrated cohort in a YAML file, comments kept.

    Each cohort block must give its entry stage's ``los: {...}`` as a flow mapping. A comment
    line ``# LoS calibrated by: <command>`` (with the fit) is put above ``cohorts:``.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    for c in cal.means:
        m = re.search(rf"^  {re.escape(c)}:[^\n]*\n", text, flags=re.M)
        if m is None:
            raise ValueError(f"cohort '{c}' not found in {path}")
        k = text.find("los: {", m.end())
        nxt = re.search(r"^  \S", text[m.end():], flags=re.M)
        if k < 0 or (nxt is not None and k > m.end() + nxt.start()):
            raise ValueError(f"cohort '{c}': no 'los: {{...}}' flow mapping in {path}")
        start = k + len("los: ")
        text = text[:start] + los_spec(cal, c) + text[_flow_end(text, start):]
    note = [f"# LoS calibrated by: {command}",
            "#   shape shared by the acute cohorts (mean m = the cohort's beds*365/admissions): "
            f"{cal.weight:.4f} x Exp({cal.short:.4f} m) + {1 - cal.weight:.4f} x Exp({cal.long:.4f} m);",
            "#   fitted share of acute NEL bed days in stays >= "
            + ", >= ".join(f"{x:g} days: {100 * cal.fitted[x]:.2f}% (target {100 * t:.2f}%)"
                           for x, t in cal.targets.items())]
    text = re.sub(r"^# LoS calibrated by: .*\n(?:#   .*\n)*", "", text, flags=re.M)
    text = re.sub(r"^cohorts:", "\n".join(note) + "\ncohorts:", text, count=1, flags=re.M)
    from sim.results import write_atomic

    write_atomic(path, text)
    return text
