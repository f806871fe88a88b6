"""bedflow: discrete-event simulation of hospital bed flow for capacity planning."""

from typing import Any

from sim.compile_cache import use_source_keyed_cache

use_source_keyed_cache()  # before any module below defines a cached numba function

from sim.experiment import compare, run  # noqa: E402
from sim.scenario import ScenarioError, load_scenario  # noqa: E402

__all__ = ["ScenarioError", "__version__", "compare", "load_scenario", "run"]


def __getattr__(name: str) -> Any:
    """``sim.__version__``, looked up on first use (importlib.metadata costs ~40 ms to import)."""
    if name != "__version__":
        raise AttributeError(f"module 'sim' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        value = version("bedflow")
    except PackageNotFoundError:  # running from a source tree without installing
        value = "0.0.0+local"
    globals()["__version__"] = value
    return value
