"""Stable counting sort of indices by small integer keys, shared by the table-building code."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def group_by(keys, k):
    """Indices grouped by key (< k), ascending within a group, so ``flatnonzero(keys == g)`` is
    ``order[start[g]:start[g+1]]``; also the group starts and each index's rank in its group."""
    n = keys.shape[0]
    start = np.zeros(k + 1, np.int64)
    for i in range(n):
        start[keys[i] + 1] += 1
    for g in range(k):
        start[g + 1] += start[g]
    pos = start[:-1].copy()
    order = np.empty(n, np.int64)
    rank = np.empty(n, np.int64)
    for i in range(n):
        g = keys[i]
        order[pos[g]] = i
        rank[i] = pos[g] - start[g]
        pos[g] += 1
    return order, start, rank
