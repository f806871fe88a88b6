"""bedflow: discrete-event simulation of hospital bed flow for capacity planning."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("bedflow")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+local"

from sim.experiment import compare, run  # noqa: E402
from sim.scenario import ScenarioError, load_scenario  # noqa: E402

__all__ = ["ScenarioError", "__version__", "compare", "load_scenario", "run"]
