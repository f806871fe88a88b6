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
def _heap_push(ht, hv, size, t, v):
    i = size
    ht[i] = t
    hv[i] = v
    while i > 0:
        parent = (i - 1) >> 1
        if ht[parent] < t or (ht[parent] == t and hv[parent] < v):
            break
        ht[i] = ht[parent]
        hv[i] = hv[parent]
        i = parent
    ht[i] = t
    hv[i] = v
    return size + 1


@njit(cache=True, inline="always")
def _heap_pop(ht, hv, size):
    size -= 1
    t = ht[size]
    v = hv[size]
    i = 0
    while True:
        child = 2 * i + 1
        if child >= size:
            break
        if child + 1 < size and (
            ht[child + 1] < ht[child] or (ht[child + 1] == ht[child] and hv[child + 1] < hv[child])
        ):
            child += 1
        if t < ht[child] or (t == ht[child] and v < hv[child]):
            break
        ht[i] = ht[child]
        hv[i] = hv[child]
        i = child
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
             cc_time, cc_pool, cc_capacity, horizon):
    """Replay patients through the pools until ``horizon``; see :class:`Trace` for outputs."""
    n = arrival.shape[0]
    m = visit_pool.shape[0]
    n_pools = capacity0.shape[0]
    cap = capacity0.copy()
    occ = np.zeros(n_pools, np.int64)
    q_head = np.full(n_pools, -1, np.int64)
    q_tail = np.full(n_pools, -1, np.int64)
    q_next = np.full(m, -1, np.int64)

    used_pool = np.full(m, -1, np.int32)
    request = np.full(m, np.nan)
    admit = np.full(m, np.nan)
    leave = np.full(m, np.nan)
    flags = np.zeros(m, np.int8)
    first_of = np.zeros(m, np.bool_)
    last_of = np.zeros(m, np.bool_)
    for p in range(n):
        if visit_start[p + 1] > visit_start[p]:
            first_of[visit_start[p]] = True
            last_of[visit_start[p + 1] - 1] = True

    log_time = np.empty(2 * m)
    log_pool = np.empty(2 * m, np.int32)
    log_delta = np.empty(2 * m, np.int8)
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
    n_log = cnt[0]
    return (used_pool, request, admit, leave, flags,
            log_time[:n_log].copy(), log_pool[:n_log].copy(), log_delta[:n_log].copy())


def run(network, table) -> Trace:
    """Run the compiled engine on a patient table."""
    out = simulate(
        table.arrival, table.visit_start, table.visit_pool, table.visit_los,
        network.capacity, network.policy, network.overflow_to,
        network.cc_time, network.cc_pool, network.cc_capacity, network.horizon,
    )
    return Trace(*out)
