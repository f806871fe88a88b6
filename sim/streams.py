"""Named random streams: one numpy Generator per (replication, cohort, purpose).

Streams are keyed, not spawned in order, so a cohort's draws do not depend on which other
cohorts a scenario has, and replication i is the same whichever worker runs it.
"""

from __future__ import annotations

import numpy as np

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


def stream(seed: int, replication: int, key: int, purpose: str) -> np.random.Generator:
    """The Generator for one replication, cohort key (stable hash) and purpose."""
    ss = np.random.SeedSequence(entropy=seed, spawn_key=(replication, key, PURPOSES[purpose]))
    return np.random.Generator(np.random.PCG64(ss))
