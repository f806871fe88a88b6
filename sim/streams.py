"""Named random streams: one numpy Generator per (replication, cohort, purpose).

Streams are keyed, not spawned in order, so a cohort's draws do not depend on which other
cohorts a scenario has, and replication i is the same whichever worker runs it. A stream is
``PCG64(SeedSequence(entropy=seed, spawn_key=(replication, key, purpose)))``; its seed words are
mixed by a compiled copy of SeedSequence's hash (the same uint32 arithmetic, checked against
numpy in the tests), as numpy's own takes about 30 us a stream and a replication opens dozens.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import njit
from numpy.random.bit_generator import ISeedSequence

#: Purposes of random draws; the integer is part of the stream key and must never change.
PURPOSES = {
    "arrivals": 0,  # candidate inter-arrival gaps of the dominating Poisson process
    "accept": 1,  # thinning acceptance uniforms, one per candidate
    "days": 2,  # day-level overdispersion multipliers
    "routing": 3,  # pool-choice and next-stage uniforms
    "los": 4,  # length-of-stay uniforms
    "marks": 5,  # intervention uniforms (disjoint slices per intervention)
    "parameters": 6,  # input-uncertainty draws
    "discharge": 7,  # discharge-timing uniforms, one per patient (sim.discharges)
}

_POOL_SIZE = 4  # SeedSequence's default pool of uint32 words
_PCG64_WORDS = 4  # uint64 seed words a PCG64 asks for


def stream(seed: int, replication: int, key: int, purpose: str) -> np.random.Generator:
    """The Generator for one replication, cohort key (stable hash) and purpose."""
    return np.random.Generator(np.random.PCG64(_SeedState(stream_seed(seed, replication, key,
                                                                      purpose))))


def stream_seed(seed: int, replication: int, key: int, purpose: str) -> np.ndarray:
    """The four uint64 words that seed :func:`stream`'s PCG64 (for compiled draws from it,
    :func:`sim.pcg64.seeded_uniforms`, without a Generator)."""
    words = np.array(_run_words(seed, replication) + _words(key) + _words(PURPOSES[purpose]),
                     np.uint64)
    return _seed_state(words)


def reference_stream(seed: int, replication: int, key: int, purpose: str) -> np.random.Generator:
    """The same stream seeded by numpy's own SeedSequence (the definition; slower)."""
    ss = np.random.SeedSequence(entropy=seed, spawn_key=(replication, key, PURPOSES[purpose]))
    return np.random.Generator(np.random.PCG64(ss))


class _SeedState(ISeedSequence):
    """The four uint64 seed words a PCG64 asks its seed sequence for, already computed."""

    __slots__ = ("state",)

    def __init__(self, state: np.ndarray) -> None:
        self.state = state

    def generate_state(self, n_words: int, dtype: type = np.uint32) -> np.ndarray:
        if n_words != _PCG64_WORDS or np.dtype(dtype) != np.uint64:
            raise ValueError("computed seed state serves PCG64 only (4 uint64 words)")
        return self.state


def _words(n: int) -> tuple[int, ...]:
    """``n`` as SeedSequence reads an int: uint32 words from the lowest (0 is one word)."""
    if n < 0:
        raise ValueError(f"seed keys must be >= 0, got {n}")
    out = [n & 0xFFFFFFFF]
    n >>= 32
    while n:
        out.append(n & 0xFFFFFFFF)
        n >>= 32
    return tuple(out)


@lru_cache(maxsize=1024)
def _run_words(seed: int, replication: int) -> tuple[int, ...]:
    """The entropy words padded to the pool size (as with a spawn key), then the replication's."""
    run = _words(seed)
    return run + (0,) * (_POOL_SIZE - len(run)) + _words(replication)


_M32 = np.uint64(0xFFFFFFFF)
_SHIFT = np.uint64(16)


@njit(cache=True, inline="always")
def _hashmix(value, hash_const, mult):
    """SeedSequence's hashmix (uint32 arithmetic in the low bits of uint64, so that no constant
    turns it into floats): the mixed value and the next hash constant."""
    value ^= hash_const
    hash_const = (hash_const * mult) & _M32
    value = (value * hash_const) & _M32
    return value ^ (value >> _SHIFT), hash_const


@njit(cache=True)
def _seed_state(words):
    """SeedSequence's ``generate_state(_PCG64_WORDS, uint64)`` for assembled entropy ``words`` (uint32
    values in uint64): the pool mixing, then the output hash."""
    mult_a = np.uint64(0x931E8875)
    mix_l = np.uint64(0xCA01F9DD)
    mix_r = np.uint64(0x4973F715)
    hc = np.uint64(0x43B0D7E5)
    pool = np.zeros(_POOL_SIZE, np.uint64)
    n = words.shape[0]
    for i in range(_POOL_SIZE):
        pool[i], hc = _hashmix(words[i] if i < n else np.uint64(0), hc, mult_a)
    for s in range(max(n, _POOL_SIZE)):  # the pool into itself, then the remaining words
        for d in range(_POOL_SIZE):
            if s == d:
                continue
            v, hc = _hashmix(pool[s] if s < _POOL_SIZE else words[s], hc, mult_a)
            r = (mix_l * pool[d] - mix_r * v) & _M32
            pool[d] = r ^ (r >> _SHIFT)
    out = np.empty(2 * _PCG64_WORDS, np.uint32)
    hb = np.uint64(0x8B51F9DD)
    for i in range(2 * _PCG64_WORDS):
        v, hb = _hashmix(pool[i % _POOL_SIZE], hb, np.uint64(0x58F38DED))
        out[i] = np.uint32(v)
    return out.view(np.uint64)
