"""Small scenario builders shared by the tests."""

from __future__ import annotations

from typing import Any

from sim.scenario import Scenario, scenario_from_dict


def single_pool(per_year: float, los: dict[str, Any], capacity: int | None = None,
                when_full: str = "queue", warmup: float = 100.0, run: float = 1000.0,
                name: str = "test") -> Scenario:
    """One cohort, one stage, one pool: the classic queueing-theory set-ups."""
    return scenario_from_dict({
        "name": name, "start": "2020-01-01", "warmup_days": warmup, "run_days": run,
        "pools": {"ward": {"capacity": capacity, "when_full": when_full}},
        "cohorts": {"patients": {"arrivals": {"per_year": per_year},
                                 "pathway": [{"stage": "stay", "pool": "ward", "los": los}]}},
    })


def two_stage(capacities: tuple[int | None, int | None] = (None, None),
              policies: tuple[str, str] = ("queue", "queue"), per_year: float = 3650.0,
              p_next: float = 0.4, warmup: float = 100.0, run: float = 600.0) -> Scenario:
    """Acute then (for a fraction) rehab: a two-stage pathway that can block."""
    return scenario_from_dict({
        "name": "two-stage", "start": "2020-01-01", "warmup_days": warmup, "run_days": run,
        "pools": {"acute": {"capacity": capacities[0], "when_full": policies[0]},
                  "rehab": {"capacity": capacities[1], "when_full": policies[1]}},
        "cohorts": {"patients": {"arrivals": {"per_year": per_year}, "pathway": [
            {"stage": "acute", "pool": "acute", "los": {"dist": "exponential", "mean": 3.0},
             "next": {"rehab": p_next, "home": 1 - p_next}},
            {"stage": "rehab", "pool": "rehab", "los": {"dist": "lognormal", "mean": 8.0, "cv": 1.2}},
        ]}},
    })


def erlang_b(c: int, a: float) -> float:
    """Erlang B blocking probability of c servers with offered load a (stable recursion)."""
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    return b
