"""The engine's shortcut for pools that patients visit once: the Kiefer-Wolfowitz recursion.

When every patient has at most one visit, pools neither overflow nor change capacity, and no
log is asked for, a pool is a FIFO G/G/c queue (or loss system) fed only by its own arrivals:
a patient's bed comes free at the least of the c times its beds next come free (a 4-ary
tournament tree), so each patient costs one replace-top instead of an arrival and an end-of-stay
event. Which of several beds coming free at the same time is taken does not show in any output. It fills
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
from sim.metrics import midnight_index
from sim.network import LOSE, OVERFLOW, UNLIMITED
from sim.unchecked import load, store

__all__ = ["applies", "replay", "run"]


#: Bytes of tournament trees (all pools) up to which the recursion is used: they stay in a
#: core's L2 cache. Beyond, every level is a cache miss, while the event loop's queue is read
#: in sequence: at 100x the Derbyshire baseline's beds (trees of 4 MiB) the recursion took
#: 1.45x the event loop's time, at 10x (0.4 MiB) 0.82x, at 1x 0.75x (one run, side by side, with
#: binary trees; the 4-ary ones are about 1.4x faster in cache).
MAX_TREE_BYTES = 1 << 20


def applies(network, table) -> bool:
    """Whether the recursion replays this table exactly (one visit at most per patient, no
    overflow, no capacity changes, so no moves or outliers, and a number of beds in every pool
    whose beds the engine counts) and faster than the event loop (trees in cache)."""
    if len(network.cc_time) or (network.policy == OVERFLOW).any():
        return False
    if (network.capacity[network.tracked] >= UNLIMITED).any():
        return False
    tree_bytes = 16 * int(_tree_offsets(network)[-1])  # a node: a time and a leaf, 8 bytes each
    return tree_bytes <= MAX_TREE_BYTES and _at_most_one_visit(table.visit_start)


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
def _replace_least(val, leaf, lo, x):
    """Put ``x`` in place of the least free time in the 4-ary tournament tree at ``lo``: the
    winner's leaf takes x and its path to the root is replayed, three siblings per level, for
    a fixed number of levels. Each node holds its subtree's least time and the leaf it is at;
    siblings are read through their leaf, so that every load is used whatever the comparisons
    give and LLVM keeps selects (a load used on one side only became a branch that mispredicts
    near capacity: 2x slower). The siblings' least is found off the chain of dependent
    comparisons that runs from leaf to root, one comparison a level. Indices are all >= 0."""
    i = load(leaf, lo + 1)
    store(val, lo + i, x)
    v = x
    win = i
    while i > 1:
        l1 = load(leaf, lo + (i ^ 1))
        l2 = load(leaf, lo + (i ^ 2))
        l3 = load(leaf, lo + (i ^ 3))
        v1 = load(val, lo + l1)
        v2 = load(val, lo + l2)
        v3 = load(val, lo + l3)
        least = min(v1, v2)
        at = l2 if v2 < v1 else l1
        at = l3 if v3 < least else at
        least = min(least, v3)
        win = at if least < v else win
        v = min(v, least)
        i >>= 2
        store(val, lo + i, v)
        store(leaf, lo + i, win)


@njit(cache=True, inline="always")
def _add_stay(diff, row, start, end, first_midnight, n_days):
    """A stay in a bed at the midnights in [start, end), in a pool's census differences
    (``diff[row:row + n_days + 1]``)."""
    i = row + midnight_index(start, first_midnight, n_days)
    store(diff, i, load(diff, i) + 1)
    j = row + midnight_index(end, first_midnight, n_days)
    store(diff, j, load(diff, j) - 1)


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
    val = np.full(lo[n_pools], np.inf)  # a node's least free time below it (no bed: inf)
    leaf = np.zeros(lo[n_pools], np.int64)  # the leaf it is at
    for k in range(n_pools):
        width = (lo[k + 1] - lo[k]) // 2
        for i in range(width):
            leaf[lo[k] + width + i] = width + i
            if i < capacity[k]:
                val[lo[k] + width + i] = -np.inf
        level = width >> 2  # nodes level .. 2 level - 1, from the leaves' parents to the root
        while level >= 1:
            for i in range(level, 2 * level):
                best = 4 * i
                for c in range(4 * i + 1, 4 * i + 4):
                    if val[lo[k] + c] < val[lo[k] + best]:
                        best = c
                val[lo[k] + i] = val[lo[k] + best]
                leaf[lo[k] + i] = leaf[lo[k] + best]
            level >>= 2
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
            _add_stay(diff, k * row, a, dep, first_midnight, n_days)
            continue
        root = load(lo, k) + 1
        f = load(val, root)
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
        _replace_least(val, leaf, root - 1, dep)
        store(full_since, k, a if load(val, root) > a else np.inf)
        store(admit, w, start if start < horizon else np.nan)
        store(leave, w, dep if dep < horizon else np.nan)
        # in a bed at the midnights in [start, dep); none if it starts after the horizon
        _add_stay(diff, k * row, start, dep, first_midnight, n_days)
    for w in range(reached, m):
        used_pool[w] = -1
        request[w] = np.nan
        admit[w] = np.nan
        leave[w] = np.nan
        flags[w] = 0
        moved_at[w] = np.nan
    for k in range(n_pools):
        run = np.int64(0)
        for d in range(n_days):
            run += diff[k * row + d]
            census[k, d] = run
        if not tracked[k]:
            continue
        if capacity[k] == 0:  # full throughout
            full[k] = max(t_hi - t_lo, 0.0)
        else:
            f = val[lo[k] + 1]
            full[k] += _full_ticks(full_since[k], f, t_lo, horizon)
        acc[k, 0] = full[k]
