"""The engine's event queue: a radix heap of ends of stay, ordered by (time, visit index).

Ends of stay are popped in time order and never scheduled before the last one popped, so a
monotone queue works: keys are the bits of non-negative float64 times (ordered as integers),
and an entry sits in the bucket of the highest bit where its key differs from the last key
popped. Popping empties the lowest non-empty bucket into lower ones: sequential copies without
data-dependent branches, in place of a binary heap's unpredictable comparisons. Buckets are
linked chunks of ``CHUNK`` entries. Entries with equal times (bucket 0) leave in visit order.

The queue is one int64 array (:func:`new_queue`; one array, because numba cannot drop the
reference counting of several arrays passed to inlined functions in a hot loop) and a tuple of
scalars that every call takes and returns, kept in registers by the compiled caller:
``(last key popped, bit set of non-empty buckets 1..63, entries, free chunk list, chunks used,
least key outside bucket 0 or -1 if not known, offset of the entries)``. Array layout: entries
per bucket, each bucket's chunk being filled, entries in that chunk, next chunk of each chunk
(its bucket's, or the free list's), then (key, visit) pairs, ``CHUNK`` per chunk.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

CHUNK = 32
N_BUCKETS = 65
_COUNT, _HEAD, _FILL, _NEXT = 0, N_BUCKETS, 2 * N_BUCKETS, 3 * N_BUCKETS
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
    n_chunks = capacity // CHUNK + N_BUCKETS + 1
    entries = _NEXT + n_chunks
    q = np.empty(entries + 2 * CHUNK * n_chunks, np.int64)
    q[_COUNT:_HEAD] = 0
    q[_HEAD:_FILL] = -1
    q[_FILL:_NEXT] = 0
    return q, (np.int64(0), np.int64(0), np.int64(0), np.int64(-1), np.int64(0), np.int64(-1),
               np.int64(entries))


@njit(cache=True, inline="always")
def _bucket(key, last):
    x = key ^ last
    return 0 if x == 0 else 64 - _clz(x)


@njit(cache=True, inline="always")
def _append(q, entries, free, used, b, key, v):
    """Add (key, v) to bucket ``b``; returns the free list head and chunks used."""
    h = q[_HEAD + b]
    g = q[_FILL + b]
    if h < 0 or g == CHUNK:
        if free >= 0:
            h = free
            free = q[_NEXT + h]
        else:
            h = used
            used += 1
        q[_NEXT + h] = q[_HEAD + b]
        q[_HEAD + b] = h
        g = 0
    e = entries + 2 * (h * CHUNK + g)
    q[e] = key
    q[e + 1] = v
    q[_FILL + b] = g + 1
    q[_COUNT + b] += 1
    return free, used


@njit(cache=True, inline="always")
def push(q, qs, t, v):
    """Schedule visit ``v``'s end of stay at ``t`` (>= 0 and >= the last time popped)."""
    last, mask, size, free, used, least, entries = qs
    key = _bits(t)
    b = _bucket(key, last)
    free, used = _append(q, entries, free, used, b, key, v)
    if b > 0:
        mask |= np.int64(1) << b
        if least >= 0 and key < least:
            least = key
    return last, mask, size + 1, free, used, least, entries


@njit(cache=True, inline="always")
def peek(q, qs):
    """Time of the next end of stay (inf if none), and the state (the least key now known)."""
    last, mask, size, free, used, least, entries = qs
    if q[_COUNT] > 0:
        return time_of(last), qs
    if size == 0:
        return np.inf, qs
    if least < 0:
        b = _ctz(mask)
        c = q[_HEAD + b]
        f = q[_FILL + b]
        least = _BIG
        while c >= 0:
            e = entries + 2 * c * CHUNK
            for j in range(f):
                k = q[e + 2 * j]
                least = k if k < least else least
            c = q[_NEXT + c]
            f = CHUNK
    return time_of(least), (last, mask, size, free, used, least, entries)


@njit(cache=True, inline="always")
def pop(q, qs):
    """Remove the next end of stay (after :func:`peek`); returns its visit index and the state."""
    _, qs = peek(q, qs)
    last, mask, size, free, used, least, entries = qs
    if q[_COUNT] == 0:  # the lowest bucket moves down; its least key becomes the last popped
        last = least
        least = _BIG  # the least key moved outside bucket 0: all buckets above hold larger ones
        b = _ctz(mask)
        mask &= ~(np.int64(1) << b)
        c = q[_HEAD + b]
        f = q[_FILL + b]
        q[_HEAD + b] = -1
        q[_FILL + b] = 0
        q[_COUNT + b] = 0
        while c >= 0:
            e = entries + 2 * c * CHUNK
            for j in range(f):
                k = q[e + 2 * j]
                nb = _bucket(k, last)
                free, used = _append(q, entries, free, used, nb, k, q[e + 2 * j + 1])
                mask |= (np.int64(1) << nb) & np.int64(-2)
                least = k if (nb > 0) & (k < least) else least
            nxt = q[_NEXT + c]
            q[_NEXT + c] = free
            free = c
            c = nxt
            f = CHUNK
        if least == _BIG:
            least = -1  # everything moved to bucket 0: the rest, if any, is not scanned yet
    h = q[_HEAD]  # bucket 0 holds equal times: the least visit index goes first
    g = q[_FILL]
    end = entries + 2 * (h * CHUNK + g - 1)
    if q[_COUNT] == 1:  # the usual case: no tie
        v = q[end + 1]
    else:
        best = -1
        v = _BIG
        c = h
        f = g
        while c >= 0:
            e = entries + 2 * c * CHUNK
            for j in range(f):
                if q[e + 2 * j + 1] < v:
                    v = q[e + 2 * j + 1]
                    best = e + 2 * j
            c = q[_NEXT + c]
            f = CHUNK
        q[best] = q[end]
        q[best + 1] = q[end + 1]
    if g == 1:
        nxt = q[_NEXT + h]
        q[_NEXT + h] = free
        free = h
        q[_HEAD] = nxt
        q[_FILL] = CHUNK if nxt >= 0 else 0
    else:
        q[_FILL] = g - 1
    q[_COUNT] -= 1
    return v, (last, mask, size - 1, free, used, least, entries)


@njit(cache=True)
def entries_of(q, qs):
    """Every queued (key, visit) pair, as two arrays (in no particular order)."""
    entries = qs[6]
    n = qs[2]
    keys = np.empty(n, np.int64)
    visits = np.empty(n, np.int64)
    i = 0
    for b in range(N_BUCKETS):
        c = q[_HEAD + b]
        f = q[_FILL + b]
        while c >= 0:
            e = entries + 2 * c * CHUNK
            for j in range(f):
                keys[i] = q[e + 2 * j]
                visits[i] = q[e + 2 * j + 1]
                i += 1
            c = q[_NEXT + c]
            f = CHUNK
    return keys, visits
