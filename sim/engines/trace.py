"""The trace an engine leaves: what happened to every visit, and the bed-occupancy log."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from numba import njit

#: Bits of ``Trace.flags``.
FOUND_FULL = 1  # the requested pool was full (or had a queue) when the patient asked for a bed
OVERFLOWED = 2  # admitted to (or queued at, or lost from) a pool other than the one requested
LOST = 4  # turned away by a ``lose`` pool: the patient leaves the system
MOVED = 8  # taken out of its pool's beds by a capacity cut into the pool's ``move:`` target
OUTLIED = 16  # taken out of its pool's beds by a capacity cut, outlying in no pool's beds


@dataclass
class OccupancyPath:
    """What the occupancy metrics need of the log besides the stays, per pool, integrated by an
    engine as it runs when no log is kept (see metrics.occupancy_path). In pools that are not
    ``Network.tracked`` beds never run out, and the census is counted from the stays as they
    start and end: in a bed at midnight M when admit <= M < leave (no leave: in at the
    horizon), as a bed taken or freed at M is taken or freed before the census at M."""

    full_time: np.ndarray  # float64 [n_pools] days at or over capacity in the window
    census: np.ndarray  # int32 [n_pools, n_days] beds in use at each midnight of the window


@dataclass
class Trace:
    """Per-visit outcomes (NaN = did not happen before the horizon) and the occupancy log.

    ``log_time/log_pool/log_delta`` list every bed taken (+1) or freed (-1) in time order. An
    engine asked for no log leaves them empty and gives ``path`` instead.
    """

    used_pool: np.ndarray  # int32 [m] pool admitted to, queued at or lost from; -1 never asked
    request: np.ndarray  # float64 [m] time the patient asked for a bed
    admit: np.ndarray  # float64 [m] time the bed was taken
    leave: np.ndarray  # float64 [m] time the bed was freed (includes any delayed transfer)
    flags: np.ndarray  # int8 [m]
    log_time: np.ndarray
    log_pool: np.ndarray
    log_delta: np.ndarray
    moved_at: np.ndarray  # float64 [m] time a capacity cut moved or outlied the visit, else NaN
    path: OccupancyPath | None = None  # set when the engine kept no log

    def canonical_log(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The occupancy log sorted by (time, pool, delta): the same path, whatever order the
        beds taken and freed at one instant were written in."""
        o = np.lexsort((self.log_delta, self.log_pool, self.log_time))
        return self.log_time[o], self.log_pool[o], self.log_delta[o]

    def equals(self, other: Trace) -> bool:
        """Exact equality of every visit outcome (NaNs equal) and of the occupancy path."""
        if self.path is not None or other.path is not None:
            raise ValueError("compare traces that kept their occupancy log")
        for f in ("used_pool", "request", "admit", "leave", "flags", "moved_at"):
            a, b = getattr(self, f), getattr(other, f)
            if not np.array_equal(a, b, equal_nan=a.dtype.kind == "f"):
                return False
        return all(np.array_equal(a, b) for a, b in
                   zip(self.canonical_log(), other.canonical_log(), strict=True))

    def differences(self, other: Trace) -> dict[str, int]:
        """Number of visits differing per field (for test diagnostics)."""
        out = {}
        mine, theirs = self.canonical_log(), other.canonical_log()
        for f in fields(self):
            if f.name == "path":
                continue
            a, b = getattr(self, f.name), getattr(other, f.name)
            if f.name.startswith("log_"):
                i = ("log_time", "log_pool", "log_delta").index(f.name)
                a, b = mine[i], theirs[i]
            if a.shape != b.shape:
                out[f.name] = abs(len(a) - len(b))
                continue
            if a.dtype.kind == "f":
                out[f.name] = int((~((a == b) | (np.isnan(a) & np.isnan(b)))).sum())
            else:
                out[f.name] = int((a != b).sum())
        return out


#: Time full is summed in whole ticks of 2**-32 days (20 microseconds): integers, exact in
#: float64 below 2**53 (horizons under 2**21 days), so any split of the same full intervals
#: (an engine's events, another engine's, a shortcut's) sums to the same figure, bit for bit.
TICKS_PER_DAY = 2.0**32
MAX_HORIZON = 2.0**20


@njit(cache=True, inline="always")
def ticks(t):
    """Whole ticks up to time ``t`` (days), as a float64 integer."""
    return np.floor(t * TICKS_PER_DAY)


@njit(cache=True, inline="always")
def advance_pool(k, t, occ, cap, acc):
    """Pool ``k``'s time full in ticks (``acc[k, 0]``) from ``acc[k, 1]`` up to ``t``, before
    its beds or capacity change at t. One array for both (the engine passes it borrowed)."""
    t0 = acc[k, 1]
    if t > t0:
        acc[k, 0] += (ticks(t) - ticks(t0)) * np.int64(occ[k] >= cap[k])  # + 0.0: no branch
        acc[k, 1] = t
