"""Rows of a stream drawn by jumping ahead equal numpy's full draw, row for row."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim import pcg64 as sr
from sim.streams import PURPOSES, stream, stream_seed


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


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**70), rep=st.integers(0, 10**6), key=st.integers(0, 2**64),
       purpose=st.sampled_from(sorted(PURPOSES)), drawn=st.integers(0, 9),
       n=st.integers(0, 2000))
def test_fills_equal_numpy(seed, rep, key, purpose, drawn, n):
    """Seeded from a stream's seed words, a fill is the stream's ``random(n)`` (every lane
    count remainder, n = 0 included); from a part-used Generator, its next n draws."""
    g = stream(seed, rep, key, purpose)
    np.testing.assert_array_equal(sr.seeded_uniforms(stream_seed(seed, rep, key, purpose), n),
                                  _full(g, np.arange(n), 1)[:, 0])
    g.random(drawn)
    state = g.bit_generator.state
    got = sr.uniforms(g, n)
    assert g.bit_generator.state == state
    np.testing.assert_array_equal(got, g.random(n))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**70), key=st.integers(0, 2**64), first=st.integers(0, 1),
       n=st.integers(0, 1000))
def test_every_other_draw_is_numpys_slice(seed, key, first, n):
    """``seeded_uniforms(words, n, first, 2)`` is ``random(2n)[first::2]`` (every lane count
    remainder); a first draw outside [0, stride) is refused."""
    words = stream_seed(seed, 0, key, "routing")
    np.testing.assert_array_equal(sr.seeded_uniforms(words, n, first, 2),
                                  stream(seed, 0, key, "routing").random(2 * n)[first::2])
    with pytest.raises(ValueError):
        sr.seeded_uniforms(words, n, 2, 2)


def test_seeding_is_numpys():
    """The state and increment PCG64 sets from four seed words, words at their edges too."""
    for words in ([0, 0, 0, 0], [2**64 - 1] * 4, [1, 2**63, 2**63 - 1, 2**64 - 1],
                  list(stream_seed(3, 4, 5, "los"))):
        w = np.array(words, np.uint64)
        st = np.random.PCG64(_Words(w)).state["state"]
        assert tuple(sr.seeded(w)) == sr._split(st["state"]) + sr._split(st["inc"])


class _Words(np.random.bit_generator.ISeedSequence):
    """A seed sequence that hands PCG64 the given four words."""

    def __init__(self, words: np.ndarray) -> None:
        self.words = words

    def generate_state(self, n_words, dtype=np.uint32):
        assert n_words == 4 and np.dtype(dtype) == np.uint64
        return self.words
