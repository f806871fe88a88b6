"""The trace an engine leaves: what happened to every visit, and the bed-occupancy log."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

#: Bits of ``Trace.flags``.
FOUND_FULL = 1  # the requested pool was full (or had a queue) when the patient asked for a bed
OVERFLOWED = 2  # admitted to (or queued at, or lost from) a pool other than the one requested
LOST = 4  # turned away by a ``lose`` pool: the patient leaves the system


@dataclass
class Trace:
    """Per-visit outcomes (NaN = did not happen before the horizon) and the occupancy log.

    ``log_time/log_pool/log_delta`` list every bed taken (+1) or freed (-1) in time order.
    """

    used_pool: np.ndarray  # int32 [m] pool admitted to, queued at or lost from; -1 never asked
    request: np.ndarray  # float64 [m] time the patient asked for a bed
    admit: np.ndarray  # float64 [m] time the bed was taken
    leave: np.ndarray  # float64 [m] time the bed was freed (includes any delayed transfer)
    flags: np.ndarray  # int8 [m]
    log_time: np.ndarray
    log_pool: np.ndarray
    log_delta: np.ndarray

    def equals(self, other: Trace) -> bool:
        """Exact equality of every visit outcome (NaNs equal) and of the occupancy path."""
        for f in ("used_pool", "request", "admit", "leave", "flags"):
            if not np.array_equal(getattr(self, f), getattr(other, f), equal_nan=f != "used_pool" and f != "flags"):
                return False
        return True

    def differences(self, other: Trace) -> dict[str, int]:
        """Number of visits differing per field (for test diagnostics)."""
        out = {}
        for f in fields(self):
            if f.name.startswith("log_"):
                continue
            a, b = getattr(self, f.name), getattr(other, f.name)
            if a.dtype.kind == "f":
                out[f.name] = int((~((a == b) | (np.isnan(a) & np.isnan(b)))).sum())
            else:
                out[f.name] = int((a != b).sum())
        return out
