"""The engine's event queue: a radix heap of ends of stay, ordered by (time, visit index).

Ends of stay are popped in time order and never scheduled before the last one popped, so a
monotone queue works: keys are the bits of non-negative float64 times (ordered as integers),
read as 6-bit digits. An entry sits in the bucket (level, digit) of the highest digit where its
key differs from the last key popped, and that digit's value; entries equal to the last key
popped are the *tie run*, kept sorted by visit. Popping, when the tie run is empty, empties the
least non-empty bucket into lower ones, each entry at least a level down, so an entry moves a
few times (base 64: about log64 of the queue's size) instead of a binary heap's log2 sift of
unpredictable comparisons. Entries are linked nodes (key, visit, next) so moving one rewrites
two links, not the entry.

The queue is one int64 array (:func:`new_queue`; one array, because numba cannot drop the
reference counting of several arrays passed to inlined functions in a hot loop) and a tuple of
scalars that every call takes and returns, kept in registers by the compiled caller:
``(last key popped, bit set of non-empty levels, entries, free node list, nodes used, least key
outside the tie run or -1 if not known, tie run start, tie run end)``. Array layout: bucket heads
(``LEVELS`` x 64), one bit set of non-empty digits per level, the tie run's visits, then three
int64s per node.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

DIGIT = 6  # bits per level: 64 buckets a level, one int64 bit set of them
LEVELS = (64 + DIGIT - 1) // DIGIT
_BITS = LEVELS * 64  # bit sets of non-empty digits, one per level
_TIES = _BITS + LEVELS  # the tie run
_BIG = np.int64(9223372036854775807)


@intrinsic
def _bits(typingctx, x):
    """The IEEE-754 bits of a float64 as an int64 (order-preserving for x >= 0)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))
    return types.int64(types.float64), codegen


@intrinsic
def time_of(typingctx, x):
    """The float64 whose bits are ``x`` (the time of a key)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())
    return types.float64(types.int64), codegen


@intrinsic
def _ctz(typingctx, x):
    def codegen(context, builder, signature, args):
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 0))
    return types.int64(types.int64), codegen


@intrinsic
def _clz(typingctx, x):
    def codegen(context, builder, signature, args):
        return builder.ctlz(args[0], ir.Constant(ir.IntType(1), 0))
    return types.int64(types.int64), codegen


@njit(cache=True)
def new_queue(capacity):
    """The array and scalars of an empty queue for at most ``capacity`` entries at once."""
    q = np.empty(_TIES + capacity + 3 * (capacity + 1), np.int64)
    q[:_BITS] = -1
    q[_BITS:_TIES] = 0
    nodes = _TIES + capacity
    return q, (np.int64(0), np.int64(0), np.int64(0), np.int64(-1), np.int64(0), np.int64(-1),
               np.int64(0), np.int64(0), np.int64(nodes))


@njit(cache=True, inline="always")
def _link(q, nodes, node, key, last, lmask):
    """Put ``node`` (key != last) at the head of its bucket; returns the levels' bit set."""
    level = (63 - _clz(key ^ last)) // DIGIT
    digit = (key >> (DIGIT * level)) & 63
    b = level * 64 + digit
    q[nodes + 3 * node + 2] = q[b]
    q[b] = node
    q[_BITS + level] |= np.int64(1) << digit
    return lmask | (np.int64(1) << level)


@njit(cache=True, inline="always")
def _tie(q, lo, hi, v):
    """Insert visit ``v`` into the sorted tie run [lo, hi); returns its new bounds. The run
    grows down while it has room there, so it never outgrows the queue's capacity."""
    if lo > 0:
        i = lo - 1
        while i + 1 < hi and q[_TIES + i + 1] < v:
            q[_TIES + i] = q[_TIES + i + 1]
            i += 1
        q[_TIES + i] = v
        return lo - 1, hi
    i = hi
    while i > lo and q[_TIES + i - 1] > v:
        q[_TIES + i] = q[_TIES + i - 1]
        i -= 1
    q[_TIES + i] = v
    return lo, hi + 1


@njit(cache=True, inline="always")
def push(q, qs, t, v):
    """Schedule visit ``v``'s end of stay at ``t`` (>= 0 and >= the last time popped)."""
    last, lmask, size, free, used, least, lo, hi, nodes = qs
    key = _bits(t)
    if key == last:
        lo, hi = _tie(q, lo, hi, v)
    else:
        if free >= 0:
            node = free
            free = q[nodes + 3 * node + 2]
        else:
            node = used
            used += 1
        q[nodes + 3 * node] = key
        q[nodes + 3 * node + 1] = v
        lmask = _link(q, nodes, node, key, last, lmask)
        if least >= 0 and key < least:
            least = key
    return last, lmask, size + 1, free, used, least, lo, hi, nodes


@njit(cache=True, inline="always")
def peek(q, qs):
    """Time of the next end of stay (inf if none), and the state (the least key now known)."""
    last, lmask, size, free, used, least, lo, hi, nodes = qs
    if hi > lo:
        return time_of(last), qs
    if size == 0:
        return np.inf, qs
    if least < 0:
        level = _ctz(lmask)
        node = q[level * 64 + _ctz(q[_BITS + level])]
        least = _BIG
        while node >= 0:
            k = q[nodes + 3 * node]
            least = k if k < least else least
            node = q[nodes + 3 * node + 2]
    return time_of(least), (last, lmask, size, free, used, least, lo, hi, nodes)


@njit(cache=True, inline="always")
def pop(q, qs):
    """Remove the next end of stay (after :func:`peek`); returns its visit index and the state."""
    _, qs = peek(q, qs)
    last, lmask, size, free, used, least, lo, hi, nodes = qs
    if hi == lo:  # the least bucket moves down; its least key becomes the last popped
        last = least
        least = -1
        level = _ctz(lmask)
        bits = q[_BITS + level]
        b = level * 64 + _ctz(bits)
        bits &= bits - 1
        q[_BITS + level] = bits
        if bits == 0:
            lmask &= lmask - 1
        node = q[b]
        q[b] = -1
        lo = hi = np.int64(0)
        while node >= 0:
            nxt = q[nodes + 3 * node + 2]
            k = q[nodes + 3 * node]
            if k == last:
                q[_TIES + hi] = q[nodes + 3 * node + 1]
                hi += 1
                q[nodes + 3 * node + 2] = free
                free = node
            else:
                lmask = _link(q, nodes, node, k, last, lmask)
            node = nxt
        if hi > 1:
            q[_TIES:_TIES + hi].sort()
    v = q[_TIES + lo]
    return v, (last, lmask, size - 1, free, used, least, lo + 1, hi, nodes)


@njit(cache=True)
def entries_of(q, qs):
    """Every queued (key, visit) pair, as two arrays (in no particular order)."""
    last, _, n, _, _, _, lo, hi, nodes = qs
    keys = np.empty(n, np.int64)
    visits = np.empty(n, np.int64)
    i = 0
    for j in range(lo, hi):
        keys[i] = last
        visits[i] = q[_TIES + j]
        i += 1
    for b in range(_BITS):
        node = q[b]
        while node >= 0:
            keys[i] = q[nodes + 3 * node]
            visits[i] = q[nodes + 3 * node + 1]
            i += 1
            node = q[nodes + 3 * node + 2]
    return keys, visits
