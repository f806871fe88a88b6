"""Discharge timing: weekday and hour-of-day patterns that hold a patient in the bed.

A pool's ``discharges`` rule says, per weekday, the chance that a discharge due that day goes
ahead (the best day is 1) and the hours when discharges happen. A patient whose stay ends when
discharges are closed waits in the bed until the next permitted time. Deaths are never held,
nor are transfers to a next stage (those wait for a bed, as delayed transfers). The chance is
decided by one uniform per patient stored in the table, so the engines draw nothing: a patient
with uniform u goes home on the first permitted day whose factor exceeds u.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from sim.pcg64 import stream_rows
from sim.streams import stream

#: Key of the discharge stream of census-start patients (not a cohort: they have no candidate).
_INITIAL_KEY = 0x5EED_D15C
_DIED = -3  # network.EXITS["died"]; kept here to avoid a circular import


@dataclass(frozen=True)
class DischargeRules:
    """Per-pool discharge rules as arrays (``on`` False = discharges at any time)."""

    on: np.ndarray  # bool [n_pools]
    factor: np.ndarray  # float64 [n_pools, 7] Mon..Sun, largest 1
    open: np.ndarray  # float64 [n_pools] opening time, days after midnight
    close: np.ndarray  # float64 [n_pools] closing time, days after midnight
    first_weekday: int  # weekday of day 0 (Monday = 0)

    @property
    def any(self) -> bool:
        return bool(self.on.any())

    @classmethod
    def none(cls, n_pools: int, first_weekday: int = 0) -> DischargeRules:
        return cls(np.zeros(n_pools, bool), np.ones((n_pools, 7)), np.zeros(n_pools),
                   np.ones(n_pools), first_weekday)

    @classmethod
    def compile(cls, scenario) -> DischargeRules:
        """The rules of every pool of a scenario."""
        rules = cls.none(len(scenario.pools), scenario.start.weekday())
        for k, pool in enumerate(scenario.pools.values()):
            d = pool.discharges
            if d is None or (d.weekday is None and d.hours is None):
                continue
            rules.on[k] = True
            if d.weekday is not None:
                w = np.asarray(d.weekday, dtype=float)
                rules.factor[k] = w / w.max()
            if d.hours is not None:
                rules.open[k] = d.hours[0] / 24.0
                rules.close[k] = d.hours[1] / 24.0
        return rules


@njit(cache=True)
def hold_days(end, u, first_weekday, factor, open_, close):
    """Days a discharge due at ``end`` waits for the next permitted time (0 if none).

    ``factor`` is the pool's Mon..Sun row (largest 1, so u < 1 always finds a day within a week).
    """
    day = np.floor(end)
    t = end
    for _ in range(16):
        tod = t - day
        wd = (np.int64(day) + first_weekday) % 7
        if u < factor[wd] and tod < close:
            if tod < open_:
                t = day + open_
            return t - end
        day += 1.0
        t = day + open_
    return t - end


@njit(cache=True)
def stay_end(t, w, k, visit_los, hold_u, hold_on, hold_factor, hold_open, hold_close,
             first_weekday):
    """When visit ``w``, given a bed in pool ``k`` at ``t``, frees it (before any transfer
    wait): its length of stay on, then held to the next permitted discharge time."""
    los = visit_los[w]
    if hold_on[k]:
        u = hold_u[w]
        if not np.isnan(u):
            return t + (los + hold_days(t + los, u, first_weekday, hold_factor[k], hold_open[k],
                                        hold_close[k]))
    return t + los


def hold_uniforms(network, table, seed: int, replication: int) -> np.ndarray:
    """Per visit: the patient's discharge uniform on its last visit if it may be held, else NaN
    (an empty array when no pool has discharge rules: nothing is ever held).

    One uniform per candidate of each cohort's ``discharge`` stream (indexed by candidate, so it
    follows the patient across scenarios: common random numbers); census-start patients use a
    stream of their own.
    """
    if not network.discharges.any:
        return np.empty(0)
    out = np.full(table.n_visits, np.nan)
    if table.n_patients == 0:
        return out
    u = np.empty(table.n_patients)
    for c in network.cohorts:
        sel = np.flatnonzero((table.cohort == c.index) & (table.candidate >= 0))
        if sel.size:
            cand = table.candidate[sel]
            u[sel] = stream_rows(stream(seed, replication, c.key, "discharge"), cand, 1)[:, 0]
    initial = np.flatnonzero(table.candidate < 0)
    if initial.size:
        ident = -table.candidate[initial] - 1
        u[initial] = stream_rows(stream(seed, replication, _INITIAL_KEY, "discharge"), ident,
                                 1)[:, 0]
    has_visits = table.visit_start[1:] > table.visit_start[:-1]
    eligible = np.flatnonzero(has_visits & (table.exit != _DIED))
    out[table.visit_start[eligible + 1] - 1] = u[eligible]
    return out
