"""The production engine: a compiled event loop over capacitated bed pools.

Plain arrays in, plain arrays out; no scenario logic and no random numbers. Event order at equal
times: capacity changes, then ends of stay (by visit index, i.e. patient index), then arrivals (by
patient index). A bed freed at time t goes at once to the head of that pool's FIFO queue; a
patient waiting to transfer keeps its current bed until then (a delayed transfer of care).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from sim.engines.trace import FOUND_FULL, LOST, OVERFLOWED, Trace

_QUEUE, _LOSE = 0, 1
_ADMITTED, _QUEUED, _TURNED_AWAY = 0, 1, 2


@njit(cache=True, inline="always")
def _before(t1, v1, t2, v2):
    """Heap order: earlier time first, then lower visit index."""
    return t1 < t2 or (t1 == t2 and v1 < v2)


@njit(cache=True, inline="always")
def _heap_push(ht, hv, size, t, v):
    """Push (t, v) on a 4-ary min-heap (shallower than a binary heap: fewer cache misses)."""
    i = size
    while i > 0:
        parent = (i - 1) >> 2
        if not _before(t, v, ht[parent], hv[parent]):
            break
        ht[i] = ht[parent]
        hv[i] = hv[parent]
        i = parent
    ht[i] = t
    hv[i] = v
    return size + 1


@njit(cache=True, inline="always")
def _heap_pop(ht, hv, size):
    """Remove the minimum of a 4-ary min-heap; returns the new size."""
    size -= 1
    t = ht[size]
    v = hv[size]
    i = 0
    while True:
        first = 4 * i + 1
        if first >= size:
            break
        best = first
        bt = ht[first]
        bv = hv[first]
        last = min(first + 4, size)
        for c in range(first + 1, last):
            if _before(ht[c], hv[c], bt, bv):
                best = c
                bt = ht[c]
                bv = hv[c]
        if not _before(bt, bv, t, v):
            break
        ht[i] = bt
        hv[i] = bv
        i = best
    ht[i] = t
    hv[i] = v
    return size


@njit(cache=True)
def _choose(w, kk, occ, cap, q_head, policy, overflow_to, flags):
    """Where a bed request for visit ``w`` at pool ``kk`` ends up: (outcome, pool)."""
    full = occ[kk] >= cap[kk] or q_head[kk] >= 0
    if full:
        flags[w] |= FOUND_FULL
    while full:
        if policy[kk] == _QUEUE:
            return _QUEUED, kk
        if policy[kk] == _LOSE:
            flags[w] |= LOST
            return _TURNED_AWAY, kk
        kk = overflow_to[kk]
        flags[w] |= OVERFLOWED
        full = occ[kk] >= cap[kk] or q_head[kk] >= 0
    return _ADMITTED, kk


@njit(cache=True)
def _log(cnt, log_time, log_pool, log_delta, t, k, delta):
    i = cnt[0]
    log_time[i] = t
    log_pool[i] = k
    log_delta[i] = delta
    cnt[0] = i + 1


@njit(cache=True)
def simulate(arrival, visit_start, visit_pool, visit_los, capacity0, policy, overflow_to,
             cc_time, cc_pool, cc_capacity, horizon,
             used_pool, request, admit, leave, flags, log_time, log_pool, log_delta):
    """Replay patients through the pools until ``horizon``, filling the output arrays (see
    :class:`Trace`; per-visit outputs come in initialised to -1 / NaN / 0, the log arrays hold
    2m entries); returns the number of log entries written."""
    n = arrival.shape[0]
    m = visit_pool.shape[0]
    n_pools = capacity0.shape[0]
    cap = capacity0.copy()
    occ = np.zeros(n_pools, np.int64)
    q_head = np.full(n_pools, -1, np.int64)
    q_tail = np.full(n_pools, -1, np.int64)
    q_next = np.full(m, -1, np.int64)

    first_of = np.zeros(m, np.bool_)
    last_of = np.zeros(m, np.bool_)
    for p in range(n):
        if visit_start[p + 1] > visit_start[p]:
            first_of[visit_start[p]] = True
            last_of[visit_start[p + 1] - 1] = True

    cnt = np.zeros(1, np.int64)  # entries written to the log

    ht = np.empty(m + 1)
    hv = np.empty(m + 1, np.int64)
    hsize = 0
    stack = np.empty(m + n_pools + 1, np.int64)

    ia = 0
    ic = 0
    n_cc = cc_time.shape[0]
    while True:
        ta = arrival[ia] if ia < n else np.inf
        tc = cc_time[ic] if ic < n_cc else np.inf
        th = ht[0] if hsize > 0 else np.inf
        t = min(ta, tc, th)
        if not t < horizon:
            break
        sp = 0
        w = -1  # visit asking for a bed at this event
        held = -1  # visit whose bed is given up if that request does not queue
        if tc <= th and tc <= ta:
            stack[sp] = cc_pool[ic]
            sp += 1
            cap[cc_pool[ic]] = cc_capacity[ic]
            ic += 1
        elif th <= ta:
            held = hv[0]
            hsize = _heap_pop(ht, hv, hsize)
            if not last_of[held]:
                w = held + 1
        else:
            p = ia
            ia += 1
            if visit_start[p + 1] > visit_start[p]:
                w = visit_start[p]
        outcome = _TURNED_AWAY
        if w >= 0:
            request[w] = t
            outcome, k = _choose(w, visit_pool[w], occ, cap, q_head, policy, overflow_to, flags)
            used_pool[w] = k
            if outcome == _ADMITTED:
                occ[k] += 1
                admit[w] = t
                _log(cnt, log_time, log_pool, log_delta, t, k, 1)
                hsize = _heap_push(ht, hv, hsize, t + visit_los[w], w)
            elif outcome == _QUEUED:
                if q_tail[k] >= 0:
                    q_next[q_tail[k]] = w
                else:
                    q_head[k] = w
                q_tail[k] = w
        if held >= 0 and outcome != _QUEUED:
            k = used_pool[held]
            leave[held] = t
            occ[k] -= 1
            _log(cnt, log_time, log_pool, log_delta, t, k, -1)
            stack[sp] = k
            sp += 1
        # Serve queues of pools where beds became free, cascading through blocked transfers.
        while sp > 0:
            sp -= 1
            k = stack[sp]
            while occ[k] < cap[k] and q_head[k] >= 0:
                w = q_head[k]
                q_head[k] = q_next[w]
                if q_head[k] < 0:
                    q_tail[k] = -1
                occ[k] += 1
                admit[w] = t
                _log(cnt, log_time, log_pool, log_delta, t, k, 1)
                hsize = _heap_push(ht, hv, hsize, t + visit_los[w], w)
                if not first_of[w]:
                    kp = used_pool[w - 1]
                    leave[w - 1] = t
                    occ[kp] -= 1
                    _log(cnt, log_time, log_pool, log_delta, t, kp, -1)
                    stack[sp] = kp
                    sp += 1
    return cnt[0]


def run(network, table) -> Trace:
    """Run the compiled engine on a patient table.

    Outputs are allocated here by numpy (large arrays get transparent huge pages: fewer page
    faults) and the log is returned as views of its buffers, not copies.
    """
    m = table.visit_pool.shape[0]
    used_pool = np.full(m, -1, np.int32)
    request = np.full(m, np.nan)
    admit = np.full(m, np.nan)
    leave = np.full(m, np.nan)
    flags = np.zeros(m, np.int8)
    log_time = np.empty(2 * m)
    log_pool = np.empty(2 * m, np.int32)
    log_delta = np.empty(2 * m, np.int8)
    n_log = simulate(
        table.arrival, table.visit_start, table.visit_pool, table.visit_los,
        network.capacity, network.policy, network.overflow_to,
        network.cc_time, network.cc_pool, network.cc_capacity, network.horizon,
        used_pool, request, admit, leave, flags, log_time, log_pool, log_delta,
    )
    return Trace(used_pool, request, admit, leave, flags,
                 log_time[:n_log], log_pool[:n_log], log_delta[:n_log])
