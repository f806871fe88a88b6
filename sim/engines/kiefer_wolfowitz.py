"""The engine's shortcut for pools that patients visit once: the Kiefer-Wolfowitz recursion.

When every patient has at most one visit, pools neither overflow nor change capacity, and no
log is asked for, a pool is a FIFO G/G/c queue (or loss system) fed only by its own arrivals:
a patient's bed comes free at the least of the c times its beds next come free (a 4-ary
tournament tree), so each patient costs one replace-top instead of an arrival and an end-of-stay
event; which of several beds coming free at the same time is taken shows in no output. It fills
the same outputs as :func:`sim.engines.numba_core.simulate` with the same arithmetic: start =
max(arrival, least free time), end = the engine's departure; a pool is full from an arrival
until its least free time or its next arrival; time full is summed in ticks (trace.ticks), so
that any split of the same full intervals gives the same sum, bit for bit.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from sim.discharges import stay_end
from sim.engines.trace import FOUND_FULL, LOST, TICKS_PER_DAY, OccupancyPath, Trace, ticks
from sim.metrics import add_stay, census_from_diff
from sim.network import LOSE, OVERFLOW, UNLIMITED
from sim.unchecked import load, store

__all__ = ["applies", "replay", "run"]


#: Bytes of tournament trees (all pools: a time per leaf, a leaf per inner node, 8 bytes each) up
#: to which the recursion is used: they stay in a core's L2 cache (2 MiB here). Beyond, every
#: level is a cache miss, while the event loop's queue is read in sequence. One pool of W
#: leaves, side by side with the event loop (recursion / event loop): 0.52 at 16,384 leaves,
#: 0.63 at 65,536 (0.7 MiB), 1.08 at 262,144 (2.8 MiB), 2.12 at 1,048,576; 100x the Derbyshire
#: baseline's beds (two trees of 65,536 leaves, 1.4 MiB) 0.60.
MAX_TREE_BYTES = 2 << 20


def applies(network, table) -> bool:
    """Whether the recursion replays this table exactly (one visit at most per patient, no
    overflow, no capacity changes, so no moves or outliers, and a number of beds in every pool
    whose beds the engine counts) and faster than the event loop (trees in cache)."""
    if len(network.cc_time) or (network.policy == OVERFLOW).any():
        return False
    if (network.capacity[network.tracked] >= UNLIMITED).any():
        return False
    return (_tree_bytes(_tree_offsets(network)) <= MAX_TREE_BYTES
            and _at_most_one_visit(table.visit_start))


def _tree_bytes(lo: np.ndarray) -> int:
    """Bytes the replay touches in the trees at offsets ``lo``: W leaves' times and the
    (W - 1) / 3 inner nodes' leaves of each."""
    widths = np.diff(lo) // 2
    return int((8 * widths + 8 * ((widths - 1).clip(0) // 3)).sum())


def _tree_offsets(network) -> np.ndarray:
    """Where each pool's tree starts in one array of nodes (pool k: nodes lo[k] + 1 ..
    lo[k + 1] - 1): twice its leaves, the least power of four >= its beds (one leaf for none);
    no tree for pools whose beds the engine does not count. With W leaves the root is node 1,
    node i's children are 4i .. 4i + 3 and the leaves are W .. 2W - 1 (half the nodes below W
    are unused: siblings are i ^ 1, i ^ 2, i ^ 3 and the parent i >> 2, as in a binary heap)."""
    widths = [1 << (2 * ((max(int(c) - 1, 0).bit_length() + 1) // 2)) if tracked else 0
              for c, tracked in zip(network.capacity, network.tracked, strict=True)]
    return np.concatenate(([0], np.cumsum(2 * np.array(widths, np.int64)))).astype(np.int64)


def run(network, table) -> Trace:
    """The trace, without a log, of a table the recursion :func:`applies` to."""
    m = table.visit_pool.shape[0]
    outputs = (np.empty(m, np.int32), np.empty(m), np.empty(m), np.empty(m), np.empty(m, np.int8),
               np.empty(m))  # used_pool, request, admit, leave, flags, moved_at
    acc = np.zeros((network.n_pools, 2))
    census = np.zeros((network.n_pools, network.n_days), np.int32)
    d = network.discharges
    hold_u = table.visit_hold_u if table.visit_hold_u is not None else np.empty(0)
    replay(table.arrival, table.visit_start, table.visit_pool, table.visit_los,
           network.capacity, network.policy, network.horizon, network.tracked,
           _tree_offsets(network),
           hold_u, d.on, d.factor, d.open, d.close, d.first_weekday, *outputs,
           network.warmup, float(np.ceil(network.warmup)), acc, census)
    no_log = (np.empty(0), np.empty(0, np.int32), np.empty(0, np.int8))
    return Trace(*outputs[:5], *no_log, outputs[5], OccupancyPath(acc[:, 0] / TICKS_PER_DAY,
                                                                  census))


@njit(cache=True)
def _at_most_one_visit(visit_start):
    for p in range(visit_start.shape[0] - 1):
        if visit_start[p + 1] - visit_start[p] > 1:
            return False
    return True


@njit(cache=True, inline="always")
def _level(val, lo, v, win, l1, l2, l3):
    """One level of a replay: the least time (and its leaf) of the path's ``v`` (at ``win``)
    and three siblings' (at their leaves ``l1``, ``l2``, ``l3``). The siblings' least is
    found off the chain of dependent comparisons that runs from leaf to root."""
    v1 = load(val, lo + l1)
    v2 = load(val, lo + l2)
    v3 = load(val, lo + l3)
    least = min(v1, v2)
    at = l2 if v2 < v1 else l1
    at = l3 if v3 < least else at
    least = min(least, v3)
    return min(v, least), (at if least < v else win)


@njit(cache=True, inline="always")
def _replace_least(val, leaf, lo, x):
    """Put ``x`` in place of the least free time in the 4-ary tournament tree at ``lo`` and
    return the new least: the winner's leaf takes x and its path to the root is replayed, three
    siblings per level. Only leaves hold times (``val``) and only inner nodes their subtree's
    winning leaf (``leaf``; node 1 of a one-leaf tree is its own), which halves what the
    replay touches; siblings are read through their leaf, so that every load is used whatever
    the comparisons give and LLVM keeps selects (a load used on one side only became a branch
    that mispredicts near capacity: 2x slower). Indices are all >= 0."""
    i = load(leaf, lo + 1)
    store(val, lo + i, x)
    v, win = x, i
    if i > 1:
        v, win = _level(val, lo, v, win, i ^ 1, i ^ 2, i ^ 3)  # the siblings are leaves
        i >>= 2
        store(leaf, lo + i, win)
        while i > 1:
            v, win = _level(val, lo, v, win, load(leaf, lo + (i ^ 1)),
                            load(leaf, lo + (i ^ 2)), load(leaf, lo + (i ^ 3)))
            i >>= 2
            store(leaf, lo + i, win)
    return v


@njit(cache=True, inline="always")
def _full_ticks(since, until, t_lo, horizon):
    """Ticks of [since, until) within the window [warmup, horizon) (``t_lo``: ticks(warmup);
    0 when empty, as when ``since`` is inf: not full)."""
    return max(ticks(min(until, horizon)) - max(ticks(since), t_lo), 0.0)


@njit(cache=True)
def replay(arrival, visit_start, visit_pool, visit_los, capacity, policy, horizon, tracked, lo,
           hold_u, hold_on, hold_factor, hold_open, hold_close, first_weekday,
           used_pool, request, admit, leave, flags, moved_at, warmup, first_midnight, acc,
           census):
    """Write every per-visit output (the arrays come uninitialised), ``acc[:, 0]`` (time full,
    in ticks) and ``census`` as numba_core.simulate does on such a network without a log (same
    arguments; ``lo``: the trees' offsets, _tree_offsets)."""
    n = arrival.shape[0]
    n_pools = capacity.shape[0]
    n_days = census.shape[1]
    val = np.full(lo[n_pools], np.inf)  # a leaf's bed's next free time (no bed: inf)
    leaf = np.ones(lo[n_pools], np.int64)  # an inner node's winning leaf
    least = np.full(n_pools, np.inf)  # each tree's least time
    for k in range(n_pools):
        width = (lo[k + 1] - lo[k]) // 2
        for i in range(min(capacity[k], width)):
            val[lo[k] + width + i] = -np.inf
        level = width >> 2  # nodes level .. 2 level - 1, from the leaves' parents to the root
        while level >= 1:
            for i in range(level, 2 * level):
                best = -1
                for c in range(4 * i, 4 * i + 4):
                    at = c if level * 4 == width else leaf[lo[k] + c]
                    if best < 0 or val[lo[k] + at] < val[lo[k] + best]:
                        best = at
                leaf[lo[k] + i] = best
            level >>= 2
        if width:
            least[k] = val[lo[k] + leaf[lo[k] + 1]]
    # The arrival a pool has been full since (inf: not full). Sums, selects and min/max, not
    # branches, in the loop: whether a patient finds the pool full is a coin toss near capacity.
    full_since = np.full(n_pools, np.inf)
    full = np.zeros(n_pools)  # ticks
    row = n_days + 1  # per pool: +1 at the first midnight in a bed, -1 at the first one out
    diff = np.zeros(n_pools * row, np.int64)
    t_lo = ticks(warmup)
    t_hi = ticks(horizon)
    any_hold = hold_u.shape[0] > 0  # (a call per patient costs more than its sum)
    m = visit_pool.shape[0]
    reached = m  # visits from here on belong to patients arriving at or after the horizon
    for p in range(n):
        a = load(arrival, p)
        w = load(visit_start, p)
        if not a < horizon:
            reached = w
            break
        if load(visit_start, p + 1) == w:
            continue
        k = load(visit_pool, w)
        store(request, w, a)
        store(used_pool, w, k)
        store(moved_at, w, np.nan)
        if not load(tracked, k):
            store(flags, w, 0)
            store(admit, w, a)
            dep = a + load(visit_los, w)
            if any_hold:
                dep = stay_end(a, w, k, visit_los, hold_u, hold_on, hold_factor, hold_open,
                               hold_close, first_weekday)
            store(leave, w, dep if dep < horizon else np.nan)
            # in a bed at the midnights in [admit, dep); to the horizon if it leaves after it
            add_stay(diff, k * row, a, dep, first_midnight, n_days)
            continue
        f = load(least, k)
        # full from full_since until its least free time or this arrival (in the window)
        store(full, k, load(full, k) + _full_ticks(load(full_since, k), min(f, a), t_lo, horizon))
        found_full = f > a
        store(flags, w, FOUND_FULL * found_full)
        if found_full and (policy[k] == LOSE or capacity[k] == 0):  # lost, or never a bed
            flags[w] = FOUND_FULL | (LOST if policy[k] == LOSE else 0)
            admit[w] = np.nan
            leave[w] = np.nan
            full_since[k] = a
            continue
        start = max(a, f)
        dep = start + load(visit_los, w)
        if any_hold:
            dep = stay_end(start, w, k, visit_los, hold_u, hold_on, hold_factor, hold_open,
                           hold_close, first_weekday)
        f = _replace_least(val, leaf, load(lo, k), dep)
        store(least, k, f)
        store(full_since, k, a if f > a else np.inf)
        store(admit, w, start if start < horizon else np.nan)
        store(leave, w, dep if dep < horizon else np.nan)
        # in a bed at the midnights in [start, dep); none if it starts after the horizon
        add_stay(diff, k * row, start, dep, first_midnight, n_days)
    for w in range(reached, m):
        used_pool[w] = -1
        request[w] = np.nan
        admit[w] = np.nan
        leave[w] = np.nan
        flags[w] = 0
        moved_at[w] = np.nan
    for k in range(n_pools):
        census_from_diff(diff, k * row, census, k)
        if not tracked[k]:
            continue
        if capacity[k] == 0:  # full throughout
            full[k] = max(t_hi - t_lo, 0.0)
        else:
            f = least[k]
            full[k] += _full_ticks(full_since[k], f, t_lo, horizon)
        acc[k, 0] = full[k]
