"""The `bedflow` command: run, compare, validate and inspect scenarios from the shell."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from sim.scenario import ScenarioError, load_scenario

EXIT_CONFIG = 2
err = Console(stderr=True)


class DelayedProgress:
    """A progress bar on stderr that appears only once a run has taken more than a second."""

    def __init__(self, total: int, label: str, enabled: bool = True, delay: float = 1.0):
        self.total, self.label, self.enabled, self.delay = total, label, enabled, delay
        self.done = 0
        self.start = time.perf_counter()
        self.bar: Progress | None = None
        self.task = None

    def __call__(self, n: int) -> None:
        self.done += n
        if not self.enabled:
            return
        if self.bar is None and time.perf_counter() - self.start > self.delay:
            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeRemainingColumn(), console=err, transient=True)
            self.bar.start()
            self.task = self.bar.add_task(self.label, total=self.total, completed=self.done)
        elif self.bar is not None:
            self.bar.update(self.task, completed=self.done)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _load(paths: Sequence[str]):
    """Load scenarios; report every problem of every file, then exit 2 if any failed."""
    scenarios, failed = [], False
    for path in paths:
        try:
            scenarios.append(load_scenario(path))
        except ScenarioError as exc:
            failed = True
            err.print(f"[bold red]error:[/] {path} is not a valid scenario:", highlight=False)
            for problem in exc.problems:
                err.print(f"  {problem}", markup=False, highlight=False)
    if failed:
        raise SystemExit(EXIT_CONFIG)
    return scenarios


def _fmt(est: dict, scale: float = 1.0, digits: int = 1) -> str:
    """``mean ±half-width`` of a summary estimate, scaled."""
    mean = est["mean"]
    if mean is None:
        return "-"
    lo, hi = est["ci95"]
    if lo is None:
        return f"{mean * scale:.{digits}f}"
    return f"{mean * scale:.{digits}f} ±{(hi - lo) / 2 * scale:.{digits}f}"


#: Rows of the results table: label, summary key, scale, digits.
TABLE_ROWS = (
    ("mean occupied beds", "mean_occupancy", 1, 1),
    ("midnight census p95", "census_p95", 1, 0),
    ("% of time full", "p_full_time", 100, 1),
    ("% of arrivals finding it full", "p_full_arrival", 100, 1),
    ("mean wait for a bed (hours)", "mean_wait_days", 24, 2),
    ("waits over 12 h", "waits_over_12h", 1, 0),
    ("lost (turned away)", "lost", 1, 0),
    ("delayed transfer % of bed days", "delayed_transfer_pct", 1, 2),
    ("admissions", "admissions", 1, 0),
)


def summary_table(summary: dict) -> Table:
    """A readable metric x pool table of a summary.json document (mean ±95% CI half-width)."""
    table = Table(title=f"{summary['scenario']}: {summary['replications']} replications, "
                        f"seed {summary['seed']} (mean ±95% CI half-width)")
    table.add_column("")
    pools = summary["pools"]
    for name in pools:
        table.add_column(name, justify="right")
    table.add_row("beds", *("unlimited" if p["capacity"] is None else str(p["capacity"])
                            for p in pools.values()))
    for label, key, scale, digits in TABLE_ROWS:
        table.add_row(label, *(_fmt(p[key], scale, digits) for p in pools.values()))
    table.add_row("beds needed: STP rule (mean/0.95)",
                  *(str(p["beds_needed"]["stp_rule"]) for p in pools.values()))
    table.add_row("beds needed: risk rule (full <=5% of days)",
                  *(str(p["beds_needed"]["risk_rule"]) for p in pools.values()))
    return table


def admissions_table(summary: dict) -> Table:
    table = Table(title="admissions in the results window")
    table.add_column("cohort")
    table.add_column("admissions", justify="right")
    for name, est in summary["admissions"].items():
        table.add_row(name, _fmt(est, digits=0))
    return table


def cmd_run(args: argparse.Namespace) -> int:
    import sim

    (scenario,) = _load([args.config])
    progress = DelayedProgress(args.replications, scenario.name, enabled=not (args.json or args.quiet))
    try:
        results = sim.run(scenario, replications=args.replications, seed=args.seed,
                          engine=args.engine, jobs=args.jobs, progress=progress)
    finally:
        progress.close()
    summary = results.summary_json()
    if args.out:
        results.save(args.out, manifest_extra={"command": " ".join(sys.argv)})
        from sim import plots

        plots.write_run_plots(results, Path(args.out))
    if args.json:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
        return 0
    out = Console(width=max(Console().width, 160))
    out.print(summary_table(summary))
    out.print(admissions_table(summary))
    if args.out:
        out.print(f"run folder written to {args.out}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    scenarios = _load(args.configs)
    for path, s in zip(args.configs, scenarios, strict=True):
        print(f"{path}: ok ({s.name}: {len(s.pools)} pools, {len(s.cohorts)} cohorts)")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from sim.scenario import scenario_json_schema

    print(json.dumps(scenario_json_schema(), indent=2))
    return 0


def _common_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--replications", "-n", type=int, default=100, help="Monte Carlo replications")
    p.add_argument("--seed", type=int, default=1, help="seed of all random streams")
    p.add_argument("--engine", choices=("numba", "simpy"), default="numba")
    p.add_argument("--jobs", "-j", type=int, default=None, help="worker processes (default: all cores)")
    p.add_argument("--out", help="write a run folder (manifest, summary, census, plots) here")
    p.add_argument("--json", action="store_true", help="print summary.json to stdout and nothing else")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def build_parser() -> argparse.ArgumentParser:
    from sim import __version__

    parser = argparse.ArgumentParser(prog="bedflow", description=__doc__)
    parser.add_argument("--version", action="version", version=f"bedflow {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run a scenario's replications and report per-pool results")
    p.add_argument("config")
    _common_run_options(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("validate", help="check scenario files; exit 0 if all are valid, else 2")
    p.add_argument("configs", nargs="+")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("schema", help="print the JSON schema of scenario YAML")
    p.set_defaults(func=cmd_schema)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
