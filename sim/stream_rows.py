"""Chosen rows of a stream's uniforms, drawn without the rows in between.

``stream_rows(g, rows, width)`` equals ``g.random((n, width))[rows]`` for any n above the
largest row, for a fresh PCG64 Generator ``g``, but costs by the rows asked for, not by n:
PCG64 is a 128-bit linear congruential generator, so it can jump ahead k steps by composing
the step k times in O(log k) multiplications (Brown, "Random number generation with arbitrary
strides", 1994). Interventions pick a few thousand patients out of hundreds of thousands of
candidates, each with a row of uniforms indexed by candidate (common random numbers).

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
#: products) as this many uniforms cost numpy to draw: denser rows are drawn in full.
_ROW_COST = 64


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
        out[j] = (mult >> 64, mult & _MASK64, plus >> 64, plus & _MASK64)
        plus = (plus * (mult + 1)) & ((1 << 128) - 1)
        mult = (mult * mult) & ((1 << 128) - 1)
    return out


_TABLES = _jump_tables()
_MULT_HI, _MULT_LO = np.uint64(_MULT >> 64), np.uint64(_MULT & _MASK64)


@njit(cache=True, inline="always")
def _step(shi, slo, ihi, ilo):
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


def stream_rows(generator: np.random.Generator, rows: np.ndarray, width: int) -> np.ndarray:
    """``generator.random((n, width))[rows]`` for any n > max(rows), counted from a PCG64
    Generator's current state; the generator itself does not move."""
    rows = np.asarray(rows, np.int64)
    if rows.size and rows.min() < 0:
        raise ValueError("rows must be >= 0")
    bg = generator.bit_generator
    if type(bg) is not np.random.PCG64:
        raise TypeError(f"stream_rows needs a PCG64 generator, not {type(bg).__name__}")
    state = bg.state
    n = int(rows.max()) + 1 if rows.size else 0
    if rows.size * _ROW_COST > n * width:
        out = generator.random((n, width))[rows]
        bg.state = state
        return out
    s, inc = state["state"]["state"], state["state"]["inc"]
    u64 = np.uint64
    return _rows(u64(s >> 64), u64(s & _MASK64), u64(inc >> 64), u64(inc & _MASK64), rows,
                 int(width), _TABLES)
