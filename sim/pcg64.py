"""numpy's PCG64 uniforms drawn in compiled code, value for value.

- ``uniforms(g, n)`` equals ``g.random(n)``, and ``seeded_uniforms(words, n)`` the same for
  the PCG64 that ``words`` seed (``sim.streams.stream_seed``) without making a Generator. A
  fill steps four interleaved lanes (draws 4i + j), each jumping four steps at a time: the
  four chains of dependent 128-bit multiplications overlap, where numpy's fill waits on one.
  ``seeded_uniforms(words, n, first, 2)`` takes every other draw, its lanes jumping eight
  steps: one multiplication a draw kept, so the unused half costs nothing.
- ``stream_rows(g, rows, width)`` equals ``g.random((n, width))[rows]`` for any n above the
  largest row, costing by the rows asked for when they are sparse: PCG64 is a 128-bit linear
  congruential generator, so it can jump ahead k steps by composing the step k times in
  O(log k) multiplications (Brown, "Random number generation with arbitrary strides", 1994).
  Interventions pick a few thousand patients out of hundreds of thousands of candidates,
  each with a row of uniforms indexed by candidate (common random numbers).

numpy's PCG64 (XSL-RR 128/64) steps ``state = state * MULT + inc`` mod 2^128 and outputs
``rotr64(hi ^ lo, hi >> 58)`` of the new state; ``random()`` takes ``(output >> 11) * 2^-53``.
128-bit values are (hi, lo) pairs of uint64 here; the tests compare with numpy draw for draw.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

_MULT = 0x2360ED051FC65DA44385DF649FCCF645  # PCG_DEFAULT_MULTIPLIER_128
_MASK64 = (1 << 64) - 1
_JUMPS = 64  # jumps of 2^j steps, j < 64: any int64 distance
_STEP_BELOW = 16  # shorter distances are stepped, not jumped
#: A row costs about as much to jump to (sorted, then about log2 of the distance in 128-bit
#: products) as this many uniforms cost to draw: denser rows are drawn in full.
_ROW_COST = 64


def _split(x: int) -> tuple[np.uint64, np.uint64]:
    """A 128-bit int as its (hi, lo) uint64 words."""
    return np.uint64(x >> 64), np.uint64(x & _MASK64)


@intrinsic
def _mulhi(typingctx, a, b):
    """High 64 bits of the 128-bit product of two uint64."""
    def codegen(context, builder, signature, args):
        i128 = ir.IntType(128)
        p = builder.mul(builder.zext(args[0], i128), builder.zext(args[1], i128))
        return builder.trunc(builder.lshr(p, ir.Constant(i128, 64)), ir.IntType(64))
    return types.uint64(types.uint64, types.uint64), codegen


@njit(cache=True, inline="always")
def _mul(ahi, alo, bhi, blo):
    """(a * b) mod 2^128."""
    return _mulhi(alo, blo) + ahi * blo + alo * bhi, alo * blo


@njit(cache=True, inline="always")
def _add(ahi, alo, bhi, blo):
    """(a + b) mod 2^128."""
    lo = alo + blo
    return ahi + bhi + np.uint64(lo < alo), lo


def _jump_tables() -> np.ndarray:
    """Per j: MULT^(2^j) and 1 + MULT + ... + MULT^(2^j - 1) mod 2^128, as (hi, lo) words.

    Jumping 2^j steps takes state to MULT^(2^j) state + (that sum) inc."""
    out = np.empty((_JUMPS, 4), np.uint64)
    mult, plus = _MULT, 1
    for j in range(_JUMPS):
        out[j] = _split(mult) + _split(plus)
        plus = (plus * (mult + 1)) & ((1 << 128) - 1)
        mult = (mult * mult) & ((1 << 128) - 1)
    return out


_TABLES = _jump_tables()
_MULT_HI, _MULT_LO = _split(_MULT)


@njit(cache=True, inline="always")
def _step(shi, slo, ihi, ilo):
    """The state one step on: state * MULT + inc."""
    hi, lo = _mul(shi, slo, _MULT_HI, _MULT_LO)
    return _add(hi, lo, ihi, ilo)


@njit(cache=True, inline="always")
def _jump(shi, slo, ihi, ilo, k, tables):
    """The state ``k`` steps on."""
    j = 0
    while k:
        if k & 1:
            hi, lo = _mul(tables[j, 0], tables[j, 1], shi, slo)
            phi, plo = _mul(tables[j, 2], tables[j, 3], ihi, ilo)
            shi, slo = _add(hi, lo, phi, plo)
        k >>= 1
        j += 1
    return shi, slo


@njit(cache=True, inline="always")
def _uniform(shi, slo):
    """``random()`` of the state just stepped to."""
    x = shi ^ slo
    rot = shi >> np.uint64(58)
    x = (x >> rot) | (x << ((np.uint64(64) - rot) & np.uint64(63)))
    return np.float64(x >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=True)
def _rows(shi, slo, ihi, ilo, rows, width, tables):
    """Rows ``rows`` (any order, repeats allowed) of the (n, width) uniforms from a state."""
    out = np.empty((rows.shape[0], width))
    order = np.argsort(rows)
    pos = 0  # draws made so far
    prev = -1
    for i in range(order.shape[0]):
        r = rows[order[i]]
        if r == prev:  # the row just drawn
            out[order[i]] = out[order[i - 1]]
            continue
        k = r * width - pos
        if k < _STEP_BELOW:
            for _ in range(k):
                shi, slo = _step(shi, slo, ihi, ilo)
        else:
            shi, slo = _jump(shi, slo, ihi, ilo, k, tables)
        for c in range(width):
            shi, slo = _step(shi, slo, ihi, ilo)
            out[order[i], c] = _uniform(shi, slo)
        pos = (r + 1) * width
        prev = r
    return out


def _state(generator: np.random.Generator) -> tuple[int, int]:
    """The (state, increment) of a PCG64 Generator, as Python ints."""
    bg = generator.bit_generator
    if type(bg) is not np.random.PCG64:
        raise TypeError(f"compiled draws need a PCG64 generator, not {type(bg).__name__}")
    st = bg.state["state"]
    return st["state"], st["inc"]


#: Lane jumps for draws every ``stride`` (1: every draw; 2: every other one): four lanes, each
#: 4 x stride steps at a time, the jumps of 2^2 and 2^3 steps.
_LANE_JUMPS = {1: _TABLES[2], 2: _TABLES[3]}


@njit(cache=True, inline="always")
def _lane(shi, slo, mhi, mlo, phi, plo):
    """A lane's uniform, and its state a lane's jump on (``m``: its multiplier, ``p``: its sum
    times inc)."""
    hi, lo = _mul(mhi, mlo, shi, slo)
    hi, lo = _add(hi, lo, phi, plo)
    return _uniform(shi, slo), hi, lo


@njit(cache=True)
def _fill_every(shi, slo, ihi, ilo, n, first, stride, jump):
    """Draws ``first``, ``first + stride``, ... (``n`` of them) after state s of the generator
    with increment inc: four interleaved lanes, their states in scalars so that the
    multiplications of the four chains overlap (``jump``: the lanes' jump, _LANE_JUMPS)."""
    phi, plo = _mul(jump[2], jump[3], ihi, ilo)
    for _ in range(first + 1):
        shi, slo = _step(shi, slo, ihi, ilo)
    ah, al = shi, slo
    for _ in range(stride):
        shi, slo = _step(shi, slo, ihi, ilo)
    bh, bl = shi, slo
    for _ in range(stride):
        shi, slo = _step(shi, slo, ihi, ilo)
    ch, cl = shi, slo
    for _ in range(stride):
        shi, slo = _step(shi, slo, ihi, ilo)
    dh, dl = shi, slo
    mhi, mlo = jump[0], jump[1]
    out = np.empty(n + 3)
    for d in range(0, n, 4):
        out[d], ah, al = _lane(ah, al, mhi, mlo, phi, plo)
        out[d + 1], bh, bl = _lane(bh, bl, mhi, mlo, phi, plo)
        out[d + 2], ch, cl = _lane(ch, cl, mhi, mlo, phi, plo)
        out[d + 3], dh, dl = _lane(dh, dl, mhi, mlo, phi, plo)
    return out[:n]


def _fill(shi, slo, ihi, ilo, n):
    """The ``n`` uniforms after state s of the generator with increment inc."""
    return _fill_every(shi, slo, ihi, ilo, n, 0, 1, _LANE_JUMPS[1])


@njit(cache=True)
def seeded(words):
    """PCG64's (state hi, lo, increment hi, lo) from the four uint64 words its seed sequence
    gives, as numpy's ``pcg64_set_seed``: state 0, increment (initseq << 1) | 1, a step, the
    initial state added, a step."""
    ihi = (words[2] << np.uint64(1)) | (words[3] >> np.uint64(63))
    ilo = (words[3] << np.uint64(1)) | np.uint64(1)
    shi, slo = _add(ihi, ilo, words[0], words[1])  # the step from state 0 gives inc
    shi, slo = _step(shi, slo, ihi, ilo)
    return shi, slo, ihi, ilo


@njit(cache=True)
def _seeded_fill(words, n, first, stride, jump):
    shi, slo, ihi, ilo = seeded(words)
    return _fill_every(shi, slo, ihi, ilo, n, first, stride, jump)


def seeded_uniforms(words: np.ndarray, n: int, first: int = 0, stride: int = 1) -> np.ndarray:
    """``random(n * stride)[first::stride]`` of the PCG64 seeded with ``words`` (see
    :func:`seeded`): stride 1 or 2, ``0 <= first < stride``; every other draw costs half."""
    if not 0 <= first < stride:
        raise ValueError(f"first must be in [0, stride), got {first} with stride {stride}")
    return _seeded_fill(words, n, first, stride, _LANE_JUMPS[stride])


def uniforms(generator: np.random.Generator, n: int) -> np.ndarray:
    """``generator.random(n)``, counted from a PCG64 Generator's current state; the generator
    itself does not move."""
    s, inc = _state(generator)
    return _fill(*_split(s), *_split(inc), int(n))


def stream_rows(generator: np.random.Generator, rows: np.ndarray, width: int) -> np.ndarray:
    """``generator.random((n, width))[rows]`` for any n > max(rows), counted from a PCG64
    Generator's current state; the generator itself does not move."""
    rows = np.asarray(rows, np.int64)
    if rows.size and rows.min() < 0:
        raise ValueError("rows must be >= 0")
    s, inc = _state(generator)
    n = int(rows.max()) + 1 if rows.size else 0
    if rows.size * _ROW_COST > n * width:  # dense: every row drawn, the asked ones kept
        return _fill(*_split(s), *_split(inc), n * width).reshape(n, width)[rows]
    return _rows(*_split(s), *_split(inc), rows, int(width), _TABLES)
