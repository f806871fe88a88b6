"""Another revision's pipeline against this tree's, in one process, replication by replication.

``python benchmarks/ab_revisions.py REV [--replications N] [--scenario YAML]`` copies ``sim/``
as it was at REV into a temporary package ``sim_at_rev`` (its imports renamed), then times table
generation, engine (no log) and metrics of both, alternating which goes first, on the same
seeds. On a shared machine whose speed moves by a third within minutes, the per-replication
ratio of two runs made milliseconds apart is steady where separate runs are not.
"""

from __future__ import annotations

import argparse
import io
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from importlib import import_module
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("generate", "engine", "metrics")
_IMPORT = re.compile(r"\b(from|import) sim\b|\"sim\.")


def _rename(source: str) -> str:
    """``sim`` imports (and dotted names in strings) pointed at ``sim_at_rev``."""
    return _IMPORT.sub(lambda m: m.group(0).replace("sim", "sim_at_rev"), source)


def checkout(rev: str, into: Path) -> None:
    """``sim/`` at ``rev`` as the package ``into/sim_at_rev``; configs/ linked beside it."""
    tar = subprocess.run(["git", "archive", rev, "sim"], cwd=ROOT, check=True,
                         capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        archive.extractall(into, filter="data")
    (into / "sim").rename(into / "sim_at_rev")
    for path in (into / "sim_at_rev").rglob("*.py"):
        path.write_text(_rename(path.read_text()))
    (into / "configs").symlink_to(ROOT / "configs")


def _pipeline(package: str, scenario: Path):
    """(network, generate, run, metrics) of a package: ``sim`` or ``sim_at_rev``."""
    network = import_module(f"{package}.network").compile_network(
        import_module(f"{package}.scenario").load_scenario(scenario))
    return (network, import_module(f"{package}.demand").generate,
            import_module(f"{package}.engines.numba_core").run,
            import_module(f"{package}.metrics").replication_metrics)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("rev", help="the revision to compare with (e.g. HEAD~3, a commit)")
    p.add_argument("--replications", type=int, default=60)
    p.add_argument("--scenario", type=Path,
                   default=ROOT / "configs" / "derbyshire" / "baseline_2015_16.yaml")
    args = p.parse_args(argv)
    from sim.executors import keep_freed_memory

    keep_freed_memory()  # as in a worker
    with tempfile.TemporaryDirectory() as tmp:
        checkout(args.rev, Path(tmp))
        sys.path.insert(0, tmp)
        sides = {name: _pipeline(package, args.scenario.resolve())
                 for name, package in (("this tree", "sim"), (args.rev, "sim_at_rev"))}
        for network, generate, run, metrics in sides.values():  # compile or load
            table = generate(network, 1, 10**6)
            metrics(network, table, run(network, table, log=False))
        times = {name: np.zeros((args.replications, 3)) for name in sides}
        for r in range(args.replications):
            for name in (list(sides) if r % 2 else list(sides)[::-1]):
                network, generate, run, metrics = sides[name]
                t0 = time.process_time()
                table = generate(network, 1, r)
                t1 = time.process_time()
                trace = run(network, table, log=False)
                t2 = time.process_time()
                metrics(network, table, trace, r)
                times[name][r] = (t1 - t0, t2 - t1, time.process_time() - t2)
                del table, trace
    print(f"{args.scenario.name}, {args.replications} replications, CPU ms per replication "
          "(medians):")
    for name, t in times.items():
        cells = ", ".join(f"{s} {np.median(t[:, i]) * 1e3:.2f}" for i, s in enumerate(STAGES))
        print(f"  {name}: {cells}, total {np.median(t.sum(axis=1)) * 1e3:.2f}")
    a, b = (t.sum(axis=1) for t in times.values())
    q1, med, q3 = np.percentile(a / b, [25, 50, 75])
    print(f"this tree / {args.rev}, per replication: median {med:.4f} (quartiles {q1:.4f}, "
          f"{q3:.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
