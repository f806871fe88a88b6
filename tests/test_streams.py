"""Named streams: the compiled seed mixing gives numpy's SeedSequence streams exactly."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.streams import PURPOSES, reference_stream, stream

# Seeds and keys of one to three uint32 words, and the edges between word counts.
_INTS = st.one_of(st.integers(0, 2**32 - 1), st.integers(0, 2**96),
                  st.sampled_from([0, 1, 2**32 - 1, 2**32, 2**64 - 1, 2**64, 2**128 + 3]))


@settings(max_examples=300, deadline=None)
@given(seed=_INTS, replication=_INTS, key=_INTS, purpose=st.sampled_from(sorted(PURPOSES)))
def test_stream_state_is_seed_sequences(seed, replication, key, purpose):
    fast = stream(seed, replication, key, purpose)
    ref = reference_stream(seed, replication, key, purpose)
    assert fast.bit_generator.state == ref.bit_generator.state


def test_stream_draws_are_seed_sequences():
    fast, ref = stream(1, 7, 123456789, "los"), reference_stream(1, 7, 123456789, "los")
    assert np.array_equal(fast.random(1000), ref.random(1000))
    assert np.array_equal(fast.standard_exponential(1000), ref.standard_exponential(1000))


def test_negative_keys_are_refused_as_by_seed_sequence():
    with pytest.raises(ValueError):
        np.random.SeedSequence(entropy=1, spawn_key=(-1,))
    with pytest.raises(ValueError, match=">= 0"):
        stream(1, -1, 5, "los")
