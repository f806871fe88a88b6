"""The production engine: a compiled event loop over capacitated bed pools.

Plain arrays in, plain arrays out; no scenario logic and no random numbers. Event order at equal
times: capacity changes, then ends of stay (by visit index, i.e. patient index), then arrivals (by
patient index). A bed freed at time t goes at once to the head of that pool's FIFO queue; a
patient waiting to transfer keeps its current bed until then (a delayed transfer of care). A
last stay ending while discharges are closed is held to the next permitted time
(sim.discharges). When a capacity cut leaves a pool over capacity, its ``outlie`` or ``move``
rule takes the patients due to stay longest (latest departure, then highest visit index) out of
its beds at once; ``drain`` keeps them until enough leave.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from sim.discharges import stay_end
from sim.engines import kiefer_wolfowitz
from sim.engines.borrowed import borrowed
from sim.engines.radix_queue import entries_of, new_queue, peek, pop, push
from sim.engines.trace import (
    FOUND_FULL,
    LOST,
    MAX_HORIZON,
    MOVED,
    OUTLIED,
    OVERFLOWED,
    TICKS_PER_DAY,
    OccupancyPath,
    Trace,
    advance_pool,
)
from sim.metrics import census_from_diff, midnight_index

_QUEUE, _LOSE = 0, 1
_DRAIN, _OUTLIE = 0, 1  # network.DRAIN / OUTLIE; anything else moves
_ADMITTED, _QUEUED, _TURNED_AWAY = 0, 1, 2


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


@njit(cache=True, inline="always")
def _bed_pool(v, k, flags, move_to):
    """The pool whose bed visit ``v``, given a bed in pool ``k``, is in now (-1: an outlier)."""
    f = flags[v]
    if f & OUTLIED:
        return -1
    if f & MOVED:
        return move_to[k]
    return k


# An end of stay is queued as (visit << _VISIT) | (pool << 1) | (last visit of its patient), so
# that a departure needs no look-up in the per-visit arrays (random reads once they outgrow the
# caches); the visit in the high bits keeps the queue's tie order by visit index.
_VISIT = 17
_POOLS = (1 << 16) - 1


@njit(cache=True, inline="always")
def _payload(w, k, last):
    return (w << _VISIT) | (np.int64(k) << 1) | np.int64(last)


@njit(cache=True)
def _log(cnt, log_time, log_pool, log_delta, t, k, delta):
    i = cnt[0]
    log_time[i] = t
    log_pool[i] = k
    log_delta[i] = delta
    cnt[0] = i + 1


@njit(cache=True)
def _reduce(k, t, occ, cap, reduction, move_to, q, qs, flags, moved_at, write_log, cnt, log_time,
            log_pool, log_delta):
    """Take pool ``k``'s excess patients out of its beds after a capacity cut (outlie or move):
    those in service with the latest departure, then the highest visit index; each at most once."""
    keys, payloads = entries_of(q, qs)  # departure time bits: ordered as the times (>= 0)
    excess = occ[k] - cap[k]
    for _ in range(excess):
        best = -1
        bk = np.int64(-1)
        for i in range(keys.shape[0]):
            v = payloads[i] >> _VISIT
            if (payloads[i] >> 1) & _POOLS != k or flags[v] & (MOVED | OUTLIED):
                continue
            if best < 0 or keys[i] > bk or (keys[i] == bk and v > best):
                best = v
                bk = keys[i]
        if best < 0:
            return  # nobody left to take out: the rest drain
        occ[k] -= 1
        if write_log:
            _log(cnt, log_time, log_pool, log_delta, t, k, -1)
        moved_at[best] = t
        if reduction[k] == _OUTLIE:
            flags[best] |= OUTLIED
        else:
            j = move_to[k]
            flags[best] |= MOVED
            occ[j] += 1
            if write_log:
                _log(cnt, log_time, log_pool, log_delta, t, j, 1)


@njit(cache=True)
def simulate(arrival, visit_start, visit_pool, visit_los, capacity0, policy, overflow_to,
             cc_time, cc_pool, cc_capacity, horizon, reduction, move_to,
             hold_u, hold_on, hold_factor, hold_open, hold_close, first_weekday,
             used_pool, request, admit, leave, flags, moved_at, write_log, log_time, log_pool,
             log_delta, warmup, first_midnight, acc, census, tracked):
    """Replay patients through the pools until ``horizon``, filling the output arrays (see
    :class:`Trace`; per-visit outputs come in initialised to -1 / NaN / 0). With ``write_log``
    the log arrays (2m entries, 4m when patients can be moved) get every bed taken or freed;
    without, ``acc`` (per pool: time full, integrated up to) and ``census`` (zeros) get the
    occupancy path instead, with the arithmetic of metrics.occupancy_path. Beds are counted
    only in ``tracked`` pools (all, with a log): elsewhere they never run out, so a last stay
    there has no end-of-stay event, and their census is counted from the stays as they start
    and end (see OccupancyPath). Returns the number of log entries written."""
    n = arrival.shape[0]
    m = visit_pool.shape[0]
    n_pools = capacity0.shape[0]
    cap = capacity0.copy()
    occ = np.zeros(n_pools, np.int64)
    q_head = np.full(n_pools, -1, np.int64)
    q_tail = np.full(n_pools, -1, np.int64)
    q_next = np.empty(m, np.int64)  # written as a visit joins a queue

    first_of = np.zeros(m, np.bool_)
    last_of = np.zeros(m, np.bool_)
    for p in range(n):
        if visit_start[p + 1] > visit_start[p]:
            first_of[visit_start[p]] = True
            last_of[visit_start[p + 1] - 1] = True

    cnt = np.zeros(1, np.int64)  # entries written to the log

    queue, qs = new_queue(m)  # ends of stay
    # Arrays that inlined functions take in the loop, borrowed: no reference counting there.
    # The queue's own array stays alive through the loop, as _reduce takes it.
    q = borrowed(queue)
    acc_b = borrowed(acc)
    flags_b = borrowed(flags)
    stack = np.empty(m + n_pools + 1, np.int64)

    ia = 0
    ic = 0
    n_cc = cc_time.shape[0]
    moved_any = False  # until a cut moves or outlies someone, every bed is in its used_pool
    any_hold = hold_u.shape[0] > 0
    n_days = census.shape[1]
    day = 0
    # untracked pools' census: +1 at the first midnight in a bed, -1 at the first one out
    row = n_days + 1
    stay_diff = np.zeros(n_pools * row, np.int64)
    acc[:, 1] = warmup
    path = not write_log
    next_midnight = first_midnight if path and n_days > 0 else np.inf  # of census day ``day``
    ta = arrival[0] if n > 0 else np.inf  # the next arrival, capacity change
    tc = cc_time[0] if n_cc > 0 else np.inf
    while True:
        th, qs = peek(q, qs)
        t = min(ta, tc, th)
        # The occupancy path (no log kept), with occupancy_path's arithmetic: midnights before
        # t take the beds in use now; a pool's area is added up to t before its beds change at
        # t (``advance_pool``), every pool's at a capacity change and at the horizon. A change
        # that leaves a pool below capacity before and after is skipped: it would add 0.0 and
        # move the pool's integrated-up-to time, which only the next call made full reads.
        if next_midnight < t:
            tt = min(t, horizon)
            while next_midnight < tt:
                for k in range(n_pools):
                    census[k, day] = occ[k]
                day += 1
                next_midnight = first_midnight + day if day < n_days else np.inf
        if not t < horizon:
            if path:
                for k in range(n_pools):
                    advance_pool(k, horizon, occ, cap, acc_b)
            break
        sp = 0
        w = -1  # visit asking for a bed at this event
        held = -1  # visit whose bed is given up if that request does not queue
        held_pool = -1
        if tc <= th and tc <= ta:
            if path:
                for k in range(n_pools):
                    advance_pool(k, t, occ, cap, acc_b)
            k = cc_pool[ic]
            stack[sp] = k
            sp += 1
            cap[k] = cc_capacity[ic]
            ic += 1
            tc = cc_time[ic] if ic < n_cc else np.inf
            if reduction[k] != _DRAIN and occ[k] > cap[k]:
                moved_any = True
                _reduce(k, t, occ, cap, reduction, move_to, queue, qs, flags, moved_at, write_log,
                        cnt, log_time, log_pool, log_delta)
        elif th <= ta:
            payload, qs = pop(q, qs)
            held = payload >> _VISIT
            held_pool = (payload >> 1) & _POOLS
            if not payload & 1:
                w = held + 1
        else:
            p = ia
            ia += 1
            ta = arrival[ia] if ia < n else np.inf
            if visit_start[p + 1] > visit_start[p]:
                w = visit_start[p]
        outcome = _TURNED_AWAY
        if w >= 0:
            request[w] = t
            outcome, k = _choose(w, visit_pool[w], occ, cap, q_head, policy, overflow_to, flags)
            used_pool[w] = k
            if outcome == _ADMITTED:
                admit[w] = t
                if tracked[k]:
                    if path and occ[k] + 1 >= cap[k]:
                        advance_pool(k, t, occ, cap, acc_b)
                    occ[k] += 1
                    if write_log:
                        _log(cnt, log_time, log_pool, log_delta, t, k, 1)
                elif path:
                    stay_diff[k * row + midnight_index(t, first_midnight, n_days)] += 1
                has_event = tracked[k] or not last_of[w]  # else: an untracked last stay
                if has_event or path:
                    dep = t + visit_los[w]
                    if any_hold:
                        dep = stay_end(t, w, k, visit_los, hold_u, hold_on, hold_factor,
                                       hold_open, hold_close, first_weekday)
                    if has_event:
                        qs = push(q, qs, dep, _payload(w, k, last_of[w]))
                    else:  # out of its bed at its end (or in at the horizon)
                        stay_diff[k * row + midnight_index(dep, first_midnight, n_days)] -= 1
            elif outcome == _QUEUED:
                q_next[w] = -1
                if q_tail[k] >= 0:
                    q_next[q_tail[k]] = w
                else:
                    q_head[k] = w
                q_tail[k] = w
        if held >= 0 and outcome != _QUEUED:
            k = _bed_pool(held, held_pool, flags_b, move_to) if moved_any else held_pool
            # leave[held] = t: written after the loop (_left_at_end_of_stay), in visit order
            if k >= 0 and tracked[k]:
                if path and occ[k] >= cap[k]:
                    advance_pool(k, t, occ, cap, acc_b)
                occ[k] -= 1
                if write_log:
                    _log(cnt, log_time, log_pool, log_delta, t, k, -1)
                stack[sp] = k
                sp += 1
            elif k >= 0 and path:
                stay_diff[k * row + midnight_index(t, first_midnight, n_days)] -= 1
        # Serve queues of pools where beds became free, cascading through blocked transfers.
        while sp > 0:
            sp -= 1
            k = stack[sp]
            while occ[k] < cap[k] and q_head[k] >= 0:
                w = q_head[k]
                q_head[k] = q_next[w]
                if q_head[k] < 0:
                    q_tail[k] = -1
                if path and occ[k] + 1 >= cap[k]:
                    advance_pool(k, t, occ, cap, acc_b)
                occ[k] += 1
                admit[w] = t
                if write_log:
                    _log(cnt, log_time, log_pool, log_delta, t, k, 1)
                dep = t + visit_los[w]
                if any_hold:
                    dep = stay_end(t, w, k, visit_los, hold_u, hold_on, hold_factor, hold_open,
                                   hold_close, first_weekday)
                qs = push(q, qs, dep, _payload(w, k, last_of[w]))
                if not first_of[w]:
                    kp = (_bed_pool(w - 1, used_pool[w - 1], flags_b, move_to) if moved_any
                          else used_pool[w - 1])
                    leave[w - 1] = t
                    if kp >= 0 and tracked[kp]:
                        if path and occ[kp] >= cap[kp]:
                            advance_pool(kp, t, occ, cap, acc_b)
                        occ[kp] -= 1
                        if write_log:
                            _log(cnt, log_time, log_pool, log_delta, t, kp, -1)
                        stack[sp] = kp
                        sp += 1
                    elif kp >= 0 and path:
                        stay_diff[kp * row + midnight_index(t, first_midnight, n_days)] -= 1
    _left_at_end_of_stay(horizon, visit_los, used_pool, admit, leave, flags, last_of, any_hold,
                         hold_u, hold_on, hold_factor, hold_open, hold_close, first_weekday)
    for k in range(n_pools):
        if not tracked[k]:
            census_from_diff(stay_diff, k * row, census, k)
    return cnt[0]


@njit(cache=True)
def _left_at_end_of_stay(horizon, visit_los, used_pool, admit, leave, flags, last_of, any_hold,
                         hold_u, hold_on, hold_factor, hold_open, hold_close, first_weekday):
    """Every visit that gave up its bed when its stay ended before the horizon left then.

    The event loop writes only the other leaves (a bed kept until the next stage took the
    patient); writing these in visit order here instead of at each departure, at a random
    visit, saves a cache miss per departure once the arrays outgrow the caches. A stay's end is
    recomputed exactly as the loop computed it; a patient whose next request is still queued
    at the horizon keeps the bed (no leave).
    """
    m = admit.shape[0]
    for v in range(m):
        a = admit[v]
        if np.isnan(a) or not np.isnan(leave[v]):
            continue
        dep = a + visit_los[v]
        if any_hold:
            dep = stay_end(a, v, used_pool[v], visit_los, hold_u, hold_on, hold_factor,
                           hold_open, hold_close, first_weekday)
        if not dep < horizon:
            continue
        if not last_of[v] and not flags[v + 1] & LOST and np.isnan(admit[v + 1]):
            continue  # its next stage is still queued: it keeps this bed
        leave[v] = dep


def run(network, table, log: bool = True, event_loop: bool = False) -> Trace:
    """Run the compiled engine on a patient table; ``log=False`` keeps no occupancy log but
    integrates the occupancy path as it runs (``Trace.path``): less memory, one pass fewer.

    Without a log, a network whose patients visit one pool each, with no overflow or capacity
    change, is replayed by the Kiefer-Wolfowitz recursion (sim.engines.kiefer_wolfowitz), which
    gives the same trace; ``event_loop=True`` runs the event loop regardless. Outputs are
    allocated here by numpy (large arrays get transparent huge pages: fewer page faults) and
    the log is returned as views of its buffers, not copies.
    """
    if network.n_pools > _POOLS:
        raise ValueError(f"the engine takes at most {_POOLS} pools, not {network.n_pools}")
    if not network.horizon < MAX_HORIZON:
        raise ValueError(f"the engine takes horizons under {MAX_HORIZON:g} days")
    if not log and not event_loop and kiefer_wolfowitz.applies(network, table):
        return kiefer_wolfowitz.run(network, table)
    m = table.visit_pool.shape[0]
    used_pool = np.full(m, -1, np.int32)
    request = np.full(m, np.nan)
    admit = np.full(m, np.nan)
    leave = np.full(m, np.nan)
    flags = np.zeros(m, np.int8)
    moved_at = np.full(m, np.nan)
    can_move = len(network.cc_time) > 0 and bool((network.reduction != 0).any())
    n_entries = (4 if can_move else 2) * m if log else 0
    log_time = np.empty(n_entries)
    log_pool = np.empty(n_entries, np.int32)
    log_delta = np.empty(n_entries, np.int8)
    d = network.discharges
    hold_u = table.visit_hold_u if table.visit_hold_u is not None else np.empty(0)
    acc = np.zeros((network.n_pools, 2))
    census = np.zeros((network.n_pools, 0 if log else network.n_days), np.int32)
    n_log = simulate(
        table.arrival, table.visit_start, table.visit_pool, table.visit_los,
        network.capacity, network.policy, network.overflow_to,
        network.cc_time, network.cc_pool, network.cc_capacity, network.horizon,
        network.reduction, network.move_to,
        hold_u, d.on, d.factor, d.open, d.close, d.first_weekday,
        used_pool, request, admit, leave, flags, moved_at, log, log_time, log_pool, log_delta,
        network.warmup, float(np.ceil(network.warmup)), acc, census,
        np.ones(network.n_pools, np.bool_) if log else network.tracked,
    )
    return Trace(used_pool, request, admit, leave, flags,
                 log_time[:n_log], log_pool[:n_log], log_delta[:n_log], moved_at,
                 None if log else OccupancyPath(acc[:, 0] / TICKS_PER_DAY, census))
