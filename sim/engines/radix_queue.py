"""The engine's event queue: a radix heap of ends of stay, ordered by (time, visit index).

Ends of stay are popped in time order and never scheduled before the last one popped, so a
monotone queue works: keys are the bits of non-negative float64 times (ordered as integers),
read as 6-bit digits. An entry sits in the bucket (level, digit) of the highest digit where its
key differs from ``last``, and that digit's value; ``last`` is at most every key in a bucket.
The least keys are the *run*, sorted by (key, visit), popped from its front; a key at most
``last`` is inserted there. When the run is empty the least non-empty bucket is taken: one of
a single chunk is sorted into the run, and ``last`` becomes its greatest key (every other
bucket stays valid: they hold greater keys with the same higher digits); a larger one is
emptied into lower buckets with ``last`` its least key, each entry at least a level down, so an
entry moves a few times (base 64: about log64 of the queue's size) instead of a binary heap's
log2 sift of unpredictable comparisons. Buckets are linked chunks of ``CHUNK`` entries, read
and written in sequence: linked single entries were faster on small queues but missed the
cache on every move once the queue outgrew it (100x the Derbyshire baseline: 2.5x slower).
Each bucket keeps its least key as entries arrive, so finding the next time reads one word.

The queue is one int64 array (:func:`new_queue`; one array, because numba cannot drop the
reference counting of several arrays passed to inlined functions in a hot loop; the engine
passes it ``sim.engines.borrowed``, with no count at all) and a tuple of
scalars that every call takes and returns, kept in registers by the compiled caller:
``(last, bit set of non-empty levels, entries, free chunk list, chunks used, least key
outside the run or -1 if not known, run start, run end, offset of the chunks' links, offset
of the entries)``. Array layout: per bucket (``LEVELS`` x 64) its chunk being filled, the
entries in that chunk and its least key; one bit set of non-empty digits per level; the run's
keys, then its visits (capacity of each); the next chunk of each chunk (its bucket's, or the
free list's); then (key, visit) pairs, ``CHUNK`` per chunk. The hot functions index it with
:func:`sim.unchecked.load` and :func:`~sim.unchecked.store`, which skip numba's wraparound of
negative indices (every index here is >= 0).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from sim.unchecked import load, store

DIGIT = 6  # bits per level: 64 buckets a level, one int64 bit set of them
LEVELS = (64 + DIGIT - 1) // DIGIT
_WIDTH = 1 << DIGIT  # buckets a level
_MASK = _WIDTH - 1
CHUNK = 32  # entries per chunk of a bucket
_HEAD = 3  # per bucket: its chunk being filled, the entries in that chunk, its least key
_BITS = _HEAD * LEVELS * _WIDTH  # after the buckets' heads: the levels' bit sets
_RUN = _BITS + LEVELS  # the run: the least keys, sorted


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
    capacity = max(capacity, 1)
    n_chunks = capacity // CHUNK + LEVELS * _WIDTH + 1
    nexts = _RUN + 2 * capacity
    entries = nexts + n_chunks
    q = np.empty(entries + 2 * CHUNK * n_chunks, np.int64)
    q[0:_BITS:_HEAD] = -1
    q[1:_BITS:_HEAD] = 0
    q[_BITS:_RUN] = 0
    return q, (np.int64(0), np.int64(0), np.int64(0), np.int64(-1), np.int64(0), np.int64(-1),
               np.int64(0), np.int64(0), np.int64(nexts), np.int64(entries))


@njit(cache=True, inline="always")
def _append(q, nexts, entries, free, used, key, v, last, lmask):
    """Add (key, v), key > last, to its bucket; returns the free chunk list, the chunks used
    and the levels' bit set."""
    level = (63 - _clz(key ^ last)) // DIGIT
    digit = (key >> (DIGIT * level)) & _MASK
    b = _HEAD * (level * _WIDTH + digit)
    h = load(q, b)
    g = load(q, b + 1)
    least = load(q, b + 2)
    store(q, b + 2, key if h < 0 or key < least else least)
    if h < 0 or g == CHUNK:
        if h < 0:
            store(q, _BITS + level, load(q, _BITS + level) | (np.int64(1) << digit))
            lmask |= np.int64(1) << level
        if free >= 0:
            c = free
            free = load(q, nexts + c)
        else:
            c = used
            used += 1
        store(q, nexts + c, h)
        h = c
        store(q, b, c)
        g = 0
    e = entries + 2 * (h * CHUNK + g)
    store(q, e, key)
    store(q, e + 1, v)
    store(q, b + 1, g + 1)
    return free, used, lmask


@njit(cache=True, inline="always")
def _insert(q, run, lo, hi, key, v):
    """Insert (key, v) into the sorted run [lo, hi) (keys at ``_RUN + i``, visits at
    ``_RUN + run + i``); returns its new bounds. The run is moved to the start of its space
    when it reaches the end, so it never outgrows the queue's capacity (``run``)."""
    if hi == run:
        for j in range(hi - lo):
            store(q, _RUN + j, load(q, _RUN + lo + j))
            store(q, _RUN + run + j, load(q, _RUN + run + lo + j))
        hi -= lo
        lo = 0
    i = hi
    while i > lo:
        k = load(q, _RUN + i - 1)
        if k < key or (k == key and load(q, _RUN + run + i - 1) < v):
            break
        store(q, _RUN + i, k)
        store(q, _RUN + run + i, load(q, _RUN + run + i - 1))
        i -= 1
    store(q, _RUN + i, key)
    store(q, _RUN + run + i, v)
    return lo, hi + 1


@njit(cache=True, inline="always")
def push(q, qs, t, v):
    """Schedule visit ``v``'s end of stay at ``t`` (>= 0 and >= the last time popped)."""
    last, lmask, size, free, used, least, lo, hi, nexts, entries = qs
    key = _bits(t)
    if key <= last:
        lo, hi = _insert(q, (nexts - _RUN) >> 1, lo, hi, key, v)
    else:
        free, used, lmask = _append(q, nexts, entries, free, used, key, v, last, lmask)
        if least >= 0 and key < least:
            least = key
    return last, lmask, size + 1, free, used, least, lo, hi, nexts, entries


@njit(cache=True, inline="always")
def peek(q, qs):
    """Time of the next end of stay (inf if none), and the state (the least key now known)."""
    last, lmask, size, free, used, least, lo, hi, nexts, entries = qs
    if hi > lo:
        return time_of(load(q, _RUN + lo)), qs
    if size == 0:
        return np.inf, qs
    if least < 0:
        level = _ctz(lmask)
        least = load(q, _HEAD * (level * _WIDTH + _ctz(load(q, _BITS + level))) + 2)
    return time_of(least), (last, lmask, size, free, used, least, lo, hi, nexts, entries)


@njit(cache=True, inline="always")
def pop(q, qs):
    """Remove the next end of stay (after :func:`peek`); returns its visit index and the state."""
    _, qs = peek(q, qs)
    last, lmask, size, free, used, least, lo, hi, nexts, entries = qs
    run = (nexts - _RUN) >> 1
    if hi == lo:  # the run is empty: the least bucket becomes it, or moves down
        level = _ctz(lmask)
        bits = load(q, _BITS + level)
        b = _HEAD * (level * _WIDTH + _ctz(bits))
        bits &= bits - 1
        store(q, _BITS + level, bits)
        if bits == 0:
            lmask &= lmask - 1
        c = load(q, b)
        f = load(q, b + 1)
        store(q, b, -1)
        store(q, b + 1, 0)
        lo = hi = np.int64(0)
        if load(q, nexts + c) < 0:  # one chunk: sorted into the run, its greatest key the last
            e = entries + 2 * c * CHUNK
            for j in range(f):
                lo, hi = _insert(q, run, lo, hi, load(q, e + 2 * j), load(q, e + 2 * j + 1))
            store(q, nexts + c, free)
            free = c
            last = load(q, _RUN + hi - 1)
        else:  # its least key becomes the last popped; the others move down
            last = least
            while c >= 0:
                e = entries + 2 * c * CHUNK
                for j in range(f):
                    k = load(q, e + 2 * j)
                    if k == last:
                        store(q, _RUN + hi, k)
                        store(q, _RUN + run + hi, load(q, e + 2 * j + 1))
                        hi += 1
                    else:
                        free, used, lmask = _append(q, nexts, entries, free, used, k,
                                                    load(q, e + 2 * j + 1), last, lmask)
                nxt = load(q, nexts + c)
                store(q, nexts + c, free)  # the chunk is read: free it
                free = c
                c = nxt
                f = CHUNK
            if hi > 1:
                q[_RUN + run:_RUN + run + hi].sort()
        least = -1
    v = load(q, _RUN + run + lo)
    return v, (last, lmask, size - 1, free, used, least, lo + 1, hi, nexts, entries)


@njit(cache=True)
def entries_of(q, qs):
    """Every queued (key, visit) pair, as two arrays (in no particular order)."""
    last, _, n, _, _, _, lo, hi, nexts, entries = qs
    run = (nexts - _RUN) >> 1
    keys = np.empty(n, np.int64)
    visits = np.empty(n, np.int64)
    i = 0
    for j in range(lo, hi):
        keys[i] = q[_RUN + j]
        visits[i] = q[_RUN + run + j]
        i += 1
    for b in range(0, _BITS, _HEAD):
        c = q[b]
        f = q[b + 1]
        while c >= 0:
            e = entries + 2 * c * CHUNK
            for j in range(f):
                keys[i] = q[e + 2 * j]
                visits[i] = q[e + 2 * j + 1]
                i += 1
            c = q[nexts + c]
            f = CHUNK
    return keys, visits
