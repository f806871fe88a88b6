"""Rows of a stream drawn by jumping ahead equal numpy's full draw, row for row."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim import stream_rows as sr
from sim.streams import stream


def _full(generator: np.random.Generator, rows: np.ndarray, width: int) -> np.ndarray:
    """The definition: every row drawn, the asked ones kept (from a copy of the state)."""
    copy = np.random.Generator(np.random.PCG64())
    copy.bit_generator.state = generator.bit_generator.state
    n = int(rows.max()) + 1 if rows.size else 0
    return copy.random((n, width))[rows]


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**64), drawn=st.integers(0, 40), width=st.integers(0, 6),
       n=st.integers(1, 200_000), picks=st.lists(st.floats(0.0, 1.0, exclude_max=True),
                                                  max_size=40))
def test_rows_equal_the_full_draw(seed, drawn, width, n, picks):
    """Sparse rows (jumped to), dense rows (drawn in full), repeats and any order; from a fresh
    or a part-used generator, which does not move."""
    g = np.random.Generator(np.random.PCG64(seed))
    g.random(drawn)
    rows = (np.array(picks) * n).astype(np.int64)
    state = g.bit_generator.state
    got = sr.stream_rows(g, rows, width)
    assert g.bit_generator.state == state
    want = _full(g, rows, width)
    assert got.shape == want.shape == (len(rows), width)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("gap", [1, sr._STEP_BELOW - 1, sr._STEP_BELOW, 1000, 2**40 + 17])
def test_jumps_of_every_length_land_on_the_row(gap):
    """Distances just below and at the stepping limit, and far beyond any real stream; the far
    row is checked against numpy's own jump (``PCG64.advance``)."""
    g = stream(1, 2, 3, "routing")
    rows = np.array([0, gap, 2 * gap], np.int64)
    got = sr._rows(*_words(g), rows, 2, sr._TABLES)  # the jumping path, whatever the density
    ref = np.random.Generator(np.random.PCG64())
    want = []
    for r in rows:
        ref.bit_generator.state = g.bit_generator.state
        ref.bit_generator.advance(int(r) * 2)
        want.append(ref.random(2))
    np.testing.assert_array_equal(got, np.array(want))


def _words(g: np.random.Generator) -> tuple[np.uint64, ...]:
    s = g.bit_generator.state["state"]
    return tuple(np.uint64((x >> shift) & sr._MASK64) for x in (s["state"], s["inc"])
                 for shift in (64, 0))


def test_negative_rows_and_other_generators_are_refused():
    with pytest.raises(ValueError):
        sr.stream_rows(stream(1, 0, 0, "los"), np.array([3, -1]), 1)
    with pytest.raises(TypeError):
        sr.stream_rows(np.random.Generator(np.random.Philox(0)), np.array([1]), 1)
