"""Engines replay a patient table through capacitated bed pools; they draw no random numbers.

Both return a :class:`~sim.engines.trace.Trace`; given the same table they return equal traces.
"""

from sim.engines.trace import Trace

ENGINES = ("numba", "simpy")


def run_engine(name: str, network, table, log: bool = True) -> Trace:
    """Run the named engine on a patient table. ``log=False`` lets an engine keep only what the
    metrics need (the numba engine then integrates the occupancy path instead of logging it)."""
    if name == "numba":
        from sim.engines.numba_core import run

        return run(network, table, log)
    if name == "simpy":
        from sim.engines.simpy_model import run

        return run(network, table)
    raise ValueError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")


__all__ = ["ENGINES", "Trace", "run_engine"]
