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

from sim.executors import ExecutorError, keep_freed_memory
from sim.scenario import ScenarioError, load_scenario

EXIT_CONFIG = 2
err = Console(stderr=True)


def error(message: str) -> None:
    """Print an error line to stderr as plain text (never wrapped, no markup)."""
    print(f"error: {message}", file=sys.stderr)


def note(message: str) -> None:
    """Print an informational line to stderr as plain text."""
    print(message, file=sys.stderr)


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

    def __enter__(self) -> DelayedProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _load(paths: Sequence[str]):
    """Load scenarios; report every problem of every file, then exit 2 if any failed."""
    scenarios, failed = [], False
    for path in paths:
        try:
            scenarios.append(load_scenario(path))
        except ScenarioError as exc:
            failed = True
            error(f"{path} is not a valid scenario:")
            for problem in exc.problems:
                note(f"  {problem}")
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
    extra: dict = {"command": " ".join(sys.argv)}
    talk = not (args.json or args.quiet)
    if args.warmup is not None:
        scenario, extra["warmup"] = _choose_warmup(scenario, args, talk)
    if args.precision is not None:
        checked = _precision_metrics(scenario, args.precision_metric)
        if checked is None:
            return EXIT_CONFIG
        results, extra["precision"] = _run_to_precision(scenario, args, checked, talk)
    else:
        with DelayedProgress(args.replications, scenario.name, enabled=talk) as progress:
            results = sim.run(scenario, replications=args.replications, seed=args.seed,
                              engine=args.engine, jobs=args.jobs, progress=progress,
                              scheduler=args.scheduler)
    summary = results.summary_json()
    if args.out:
        results.save(args.out, manifest_extra=extra)
        from sim import plots

        plots.write_run_plots(results, Path(args.out), args.jobs)
    if args.json:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
        return 0
    out = Console(width=max(Console().width, 160))
    out.print(summary_table(summary))
    out.print(admissions_table(summary))
    if args.out:
        out.print(f"run folder written to {args.out}")
    return 0


def _choose_warmup(scenario, args: argparse.Namespace, talk: bool):
    """The scenario with the warm-up of ``--warmup`` (days, or ``auto``: MSER-5 on pilot runs)."""
    from sim.warmup import BATCH, choose_warmup

    if args.warmup == "auto":
        pilots = 5
        choice = choose_warmup(scenario, replications=pilots, seed=args.seed, jobs=args.jobs)
        days = float(choice.days)
        info = {"method": f"MSER-{BATCH} on the mean midnight census of {pilots} pilot "
                          "replications started empty (the largest truncation over pools)",
                "days": days, "by_pool": choice.by_pool, "pilot_replications": pilots,
                "scenario_warmup_days": scenario.warmup_days}
        if talk:
            note(f"warm-up: MSER-{BATCH} chose {choice.days} days "
                 f"({', '.join(f'{p} {d}' for p, d in choice.by_pool.items())})")
    else:
        days = float(args.warmup)
        info = {"method": "given", "days": days, "scenario_warmup_days": scenario.warmup_days}
    updated = scenario.model_copy(update={"warmup_days": days})
    updated._source = scenario.source_path
    return updated, info


def _precision_metrics(scenario, given: list[str] | None) -> list[tuple[str, str]] | None:
    """``POOL:METRIC`` options as pairs (default: every pool's mean occupancy); None if invalid."""
    from sim.metrics import POOL_METRICS

    if not given:
        return [(p, "mean_occupancy") for p in scenario.pools]
    out, bad = [], []
    for text in given:
        pool, _, metric = text.partition(":")
        metric = metric or "mean_occupancy"
        if pool not in scenario.pools or metric not in POOL_METRICS:
            bad.append(text)
        out.append((pool, metric))
    for text in bad:
        error(f"--precision-metric {text}: expected POOL[:METRIC] with a pool of the scenario "
              f"({', '.join(scenario.pools)}) and a metric of: {', '.join(POOL_METRICS)}")
    return None if bad else out


def _run_to_precision(scenario, args: argparse.Namespace, checked, talk: bool):
    from sim.warmup import run_scenario_to_precision

    with DelayedProgress(args.max_replications, scenario.name, enabled=talk) as progress:
        grown = run_scenario_to_precision(
            scenario, args.precision, checked, seed=args.seed, engine=args.engine, jobs=args.jobs,
            batch=args.replications, max_replications=args.max_replications,
            scheduler=args.scheduler, progress=progress)
    if talk:
        state = "met" if grown.met else "NOT met"
        note(f"precision {args.precision:g} {state} at {grown.replications} replications "
             f"({grown.run} run in batches of {args.replications})")
    info = {"target": args.precision, "metrics": [f"{p}:{m}" for p, m in checked],
            "met": grown.met, "replications": grown.replications, "replications_run": grown.run,
            "batch": args.replications, "max_replications": args.max_replications}
    return grown.results, info


def cmd_validate(args: argparse.Namespace) -> int:
    scenarios = _load(args.configs)
    for path, s in zip(args.configs, scenarios, strict=True):
        print(f"{path}: ok ({s.name}: {len(s.pools)} pools, {len(s.cohorts)} cohorts)")
    return 0


def cmd_check_fit(args: argparse.Namespace) -> int:
    from sim import checkfit, plots
    from sim.results import Results, write_atomic

    run_dir = Path(args.run_dir)
    if not (run_dir / "manifest.json").exists():
        error(f"{run_dir} is not a run folder (no manifest.json)")
        return EXIT_CONFIG
    results = Results.load(run_dir)
    try:
        observed = checkfit.read_observed(args.observed, results.pool_names)
    except checkfit.ObservedDataError as exc:
        error(f"{exc}")
        return EXIT_CONFIG
    check = checkfit.check_fit(results, observed)
    out = Path(args.out) if args.out else run_dir
    write_atomic(out / "check_fit.csv", check.table.to_csv(index=False))
    for pool in check.observed:
        plots.save(checkfit.plot_fit(check, pool), out / f"check_fit_{pool}.png")
    table = Table(title="observed vs simulated midnight census")
    for col in ("pool", "days", "observed mean", "simulated mean", "difference %",
                "observed p95", "simulated p95", "% observed days in simulated 90% band",
                "Wasserstein (beds)"):
        table.add_column(col, justify="left" if col == "pool" else "right")
    for r in check.table.itertuples():
        table.add_row(r.pool, str(r.observed_days), f"{r.observed_mean:.1f}", f"{r.simulated_mean:.1f}",
                      f"{r.mean_difference_pct:+.1f}", f"{r.observed_p95:.0f}", f"{r.simulated_p95:.0f}",
                      f"{100 * r.share_observed_in_simulated_90pct:.0f}", f"{r.wasserstein_beds:.1f}")
    Console(width=max(Console().width, 140)).print(table)
    return 0


def compare_table(doc: dict, label: str) -> Table:
    """Paired differences (scenario minus baseline, mean ±95% CI half-width) per pool."""
    diff = doc["scenarios"][label]["difference"]
    table = Table(title=f"{label} minus {doc['baseline']}: paired differences, "
                        f"{doc['replications']} replications, seed {doc['seed']} "
                        "(mean ±95% CI half-width)")
    table.add_column("")
    for pool in diff:
        table.add_column(pool, justify="right")
    for row_label, key, scale, digits in TABLE_ROWS:
        cells = []
        for pool in diff:
            est = diff[pool][key]
            if est["mean"] is None:
                cells.append("-")
                continue
            mean = round(est["mean"] * scale, digits) + 0.0  # no "-0.0"
            half = "" if est["ci95"][0] is None else \
                f" ±{(est['ci95'][1] - est['ci95'][0]) / 2 * scale:.{digits}f}"
            cells.append(f"{mean:+.{digits}f}{half}")
        table.add_row(row_label, *cells)
    return table


def cmd_compare(args: argparse.Namespace) -> int:
    import sim

    scenarios = _load(args.configs)
    if len(scenarios) < 2:
        error("compare needs at least two scenarios")
        return EXIT_CONFIG
    if args.replications < 2:
        error("compare needs --replications of at least 2")
        return EXIT_CONFIG
    with DelayedProgress(args.replications * len(scenarios), "compare",
                         enabled=not (args.json or args.quiet)) as progress:
        comparison = sim.compare(scenarios, replications=args.replications, seed=args.seed,
                                 engine=args.engine, jobs=args.jobs, progress=progress,
                                 scheduler=args.scheduler)
    doc = comparison.compare_json()
    if args.out:
        comparison.save(args.out, manifest_extra={"command": " ".join(sys.argv),
                                                  "configs": list(args.configs)})
    if args.json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return 0
    out = Console(width=max(Console().width, 160))
    for label in comparison.labels[1:]:
        out.print(compare_table(doc, label))
    if args.out:
        out.print(f"compare.json written to {args.out}")
    return 0


def cmd_experiment(args: argparse.Namespace) -> int:
    from sim import batch

    out: Path | str = args.out or "the run folder"
    try:
        exp = batch.load_experiment(args.experiment)
        out = Path(args.out) if args.out else Path("runs") / exp.spec.name
        progress = batch.StderrProgress(exp.spec.name, enabled=not args.quiet)
        try:
            report = batch.run_experiment(exp, out, resume=args.resume, jobs=args.jobs,
                                          scheduler=args.scheduler, progress=progress)
        finally:
            progress.close()
    except ScenarioError as exc:
        error(f"{args.experiment} is not a valid experiment:")
        for problem in exc.problems:
            note(f"  {problem}")
        return EXIT_CONFIG
    except batch.RunStoreError as exc:
        error(f"{exc}")
        return EXIT_CONFIG
    except KeyboardInterrupt:
        err.print(f"interrupted: finished blocks are kept in {out}; "
                  "rerun the same command with --resume to continue", highlight=False)
        return 130
    if not args.quiet:
        err.print(f"{report['experiment']}: {report['variants']} variants x "
                  f"{report['replications']} replications in {report['seconds']:.1f} s; "
                  f"wrote {', '.join(report['files'])} to {out}", highlight=False)
    if "closures" in report:
        c = report["closures"]
        print(f"{c['pool']}: at most {c['max_wards_closed']} wards of {c['ward_size']} beds can "
              f"close (capacity {c['capacity']}) with {c['metric']} <= {c['limit']} "
              f"(mean of replications); {c['max_wards_closed_ci']} if the upper 95% bound "
              "must be within the limit")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from sim.report import write_report

    try:
        path = write_report(args.run_dir, args.output)
    except (FileNotFoundError, ScenarioError) as exc:
        error(str(exc))
        return EXIT_CONFIG
    print(f"report written to {path}")
    return 0


def cmd_sensitivity(args: argparse.Namespace) -> int:
    from sim.sensitivity import run_spec

    try:
        outputs = run_spec(args.experiment, out=args.out, replications=args.replications,
                           jobs=args.jobs, methods=args.methods, progress=not args.quiet,
                           sobol_n=args.sobol_n)
    except ScenarioError as exc:
        error(f"{args.experiment} is not a valid sensitivity experiment:")
        for problem in exc.problems:
            note(f"  {problem}")
        return EXIT_CONFIG
    out = Console(width=max(Console().width, 160))
    for name, table in outputs["tables"].items():
        out.print(f"[bold]{name}[/]")
        out.print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"), markup=False)
    if args.out:
        out.print(f"sensitivity results written to {args.out}", markup=False)
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Fit acute cohorts' LoS to their means and the tail evidence; optionally write the config."""
    from sim.calibrate import SEED_SHARES, calibrate, write_config

    (scenario,) = _load([args.config])
    targets = dict(SEED_SHARES)
    if args.share:
        targets = {}
        for item in args.share:
            try:
                x, v = item.split("=", 1)
                targets[float(x)] = float(eval(v, {"__builtins__": {}}, {}))  # e.g. 573/1268
            except Exception:
                err.print(f"--share {item!r}: expected DAYS=SHARE, e.g. 14=573/1268")
                return 2
    cohorts = args.cohorts.split(",") if args.cohorts else None
    if cohorts:
        unknown = [c for c in cohorts if c not in scenario.cohorts]
        if unknown:
            err.print(f"unknown cohorts: {', '.join(unknown)}")
            return 2
    try:
        cal = calibrate(scenario, cohorts, targets)
    except (ValueError, RuntimeError) as e:
        err.print(f"calibration failed: {e}")
        return 2
    print(cal.report())
    if args.write:
        command = "bedflow calibrate " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else \
            f"bedflow calibrate {args.config} --write"
        write_config(args.config, cal, command)
        print(f"written to {args.config}")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from sim.scenario import scenario_json_schema

    print(json.dumps(scenario_json_schema(), indent=2))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from sim import bench

    try:
        bench.run_suite(args.only or None, quick=args.quick,
                        results=None if args.no_record else Path(args.results))
    except ValueError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        return EXIT_CONFIG
    return 0


def cmd_fit(args: argparse.Namespace) -> int:
    from sim import fit

    try:
        result = fit.fit_episodes(args.episodes, cohort_by=args.cohort_by, pool_by=args.pool_by,
                                  extract_date=args.extract_date, pools_from=args.pools_from,
                                  alpha=args.alpha)
        written = result.write(args.out, plots=not args.no_report,
                               replications=args.report_replications, seed=args.seed)
    except fit.ExtractError as exc:
        err.print("[bold red]error:[/] the episode extract cannot be used:", highlight=False)
        for problem in exc.problems:
            err.print(f"  {exc.source}: {problem}", markup=False, highlight=False)
        return EXIT_CONFIG
    except ScenarioError as exc:
        err.print("[bold red]error:[/] the fitted scenario is not valid:", highlight=False)
        for problem in exc.problems:
            err.print(f"  {problem}", markup=False, highlight=False)
        return EXIT_CONFIG
    for path in written:
        print(f"wrote {path}")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from sim import synth

    (scenario,) = _load([args.config])
    try:
        df, extract = synth.synth_episodes(scenario, years=args.years, seed=args.seed)
    except ValueError as exc:
        err.print(f"[bold red]error:[/] {exc}", markup=False, highlight=False)
        return EXIT_CONFIG
    synth.write_extract(df, args.out)
    print(f"wrote {args.out}: {len(df)} ward stays, extract date {extract:%Y-%m-%d %H:%M}")
    return 0


def _int_at_least(low: int) -> Callable[[str], int]:
    """An argparse type: a whole number >= low (bad values exit 2 with usage, no traceback)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value
    return parse


def _warmup_value(text: str) -> str | float:
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be auto or a number of days, got {text!r}") from None
    if not (value >= 0 and value < float("inf")):
        raise argparse.ArgumentTypeError(f"must be >= 0 days, got {text!r}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text!r}")
    return value


def _common_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--replications", "-n", type=_int_at_least(1), default=100,
                   help="Monte Carlo replications")
    p.add_argument("--seed", type=_int_at_least(0), default=1, help="seed of all random streams")
    p.add_argument("--engine", choices=("numba", "simpy"), default="numba")
    p.add_argument("--jobs", "-j", type=int, default=None, help="worker processes (default: all cores)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="send replications to Dask: tcp://HOST:PORT, or local-dask for a "
                        "LocalCluster on 127.0.0.1 (default: local processes)")
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
    p.add_argument("--warmup", type=_warmup_value, default=None, metavar="auto|DAYS",
                   help="override the scenario's warm-up: DAYS, or auto (MSER-5 on pilot runs)")
    p.add_argument("--precision", type=_fraction, default=None, metavar="FRACTION",
                   help="add batches of --replications until each checked metric's 95%% CI "
                        "half-width is within FRACTION of its mean (e.g. 0.02)")
    p.add_argument("--precision-metric", action="append", metavar="POOL[:METRIC]",
                   help="metric checked by --precision (repeatable; default every pool's "
                        "mean_occupancy)")
    p.add_argument("--max-replications", type=_int_at_least(2), default=1000,
                   help="stop --precision here even if the target is not met")
    _common_run_options(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("compare", help="run scenarios with common random numbers and report "
                                       "paired differences vs the first")
    p.add_argument("configs", nargs="+")
    _common_run_options(p)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("experiment", help="run a batch experiment (variants or ward-closure "
                                          "search) into a resumable run folder")
    p.add_argument("experiment", help="experiment YAML (see experiments/)")
    p.add_argument("--out", help="run folder (default: runs/<experiment name>)")
    p.add_argument("--resume", action="store_true", help="continue a run folder, reusing "
                                                         "every finished block that still matches")
    p.add_argument("--jobs", "-j", type=int, default=None, help="worker processes (default: all cores)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="tcp://HOST:PORT of a Dask scheduler, or local-dask")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary line")
    p.set_defaults(func=cmd_experiment)

    p = sub.add_parser("validate", help="check scenario files; exit 0 if all are valid, else 2")
    p.add_argument("configs", nargs="+")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("check-fit", help="compare a run's census with observed occupancy")
    p.add_argument("run_dir", help="a folder written by `bedflow run --out`")
    p.add_argument("observed", help="CSV with columns date (YYYY-MM-DD), pool, occupied")
    p.add_argument("--out", help="where to write check_fit.csv and plots (default: RUN_DIR)")
    p.set_defaults(func=cmd_check_fit)

    p = sub.add_parser("report", help="write a self-contained HTML report of a run folder")
    p.add_argument("run_dir", help="a folder written by `bedflow run --out`")
    p.add_argument("--output", "-o", help="HTML file to write (default: RUN_DIR/report.html)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("sensitivity", help="one-at-a-time, Sobol and Morris sensitivity analysis")
    p.add_argument("experiment", help="sensitivity experiment YAML (see experiments/)")
    p.add_argument("--out", help="folder for the tables (CSV), charts (PNG) and sensitivity.json")
    p.add_argument("--replications", "-n", type=int, default=None,
                   help="replications per sample point (default: from the experiment file)")
    p.add_argument("--jobs", "-j", type=int, default=1, help="worker processes over sample points")
    p.add_argument("--methods", default=None,
                   help="comma-separated subset of oat,sobol,morris (default: the file's methods)")
    p.add_argument("--sobol-n", type=int, default=None, metavar="N",
                   help="Sobol base sample size, a power of two (default: the file's sobol.n)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress messages")
    p.set_defaults(func=cmd_sensitivity)

    p = sub.add_parser("fit", help="fit a scenario (arrivals, LoS, routing) to an episode extract")
    p.add_argument("episodes", help="CSV or Parquet, one row per ward stay (format: README)")
    p.add_argument("--cohort-by", default="cohort", help="cohort column(s), comma-separated")
    p.add_argument("--pool-by", default="pool", help="column naming the bed pool of each stay")
    p.add_argument("--out", required=True, help="scenario YAML to write (report files beside it)")
    p.add_argument("--extract-date", default=None,
                   help="end of observation, ISO date-time (default: latest date-time in the file)")
    p.add_argument("--pools-from", default=None, metavar="SCENARIO",
                   help="take pool capacities and policies from this scenario")
    p.add_argument("--alpha", type=float, default=0.05,
                   help="significance level for including profiles (default 0.05)")
    p.add_argument("--no-report", action="store_true", help="skip the PNG plots")
    p.add_argument("--report-replications", type=int, default=5,
                   help="simulated runs in the occupancy plot (default 5)")
    p.add_argument("--seed", type=int, default=1)
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("synth", help="write a synthetic episode extract from a scenario")
    p.add_argument("config")
    p.add_argument("--out", required=True, help="CSV (or .parquet) to write")
    p.add_argument("--years", type=float, default=None,
                   help="years of episodes from the scenario start (default: its horizon)")
    p.add_argument("--seed", type=int, default=1)
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("schema", help="print the JSON schema of scenario YAML")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("bench", help="run the performance benchmarks; append to benchmarks/RESULTS.md")
    p.add_argument("--quick", action="store_true", help="small workloads (a smoke test, not figures)")
    p.add_argument("--only", nargs="+", metavar="NAME",
                   help="run only these: derbyshire stp_phased scaling parallel memory "
                        "single_pool profile")
    p.add_argument("--results", default=str(Path(__file__).resolve().parents[1] / "benchmarks"
                                            / "RESULTS.md"), help="markdown file to append to")
    p.add_argument("--no-record", action="store_true", help="print only; do not append results")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("calibrate", help="fit acute cohorts' LoS to their means and tail evidence")
    p.add_argument("config")
    p.add_argument("--cohorts", help="comma-separated cohorts (default: those using acute* pools)")
    p.add_argument("--share", action="append", metavar="DAYS=SHARE",
                   help="bed-day share in stays >= DAYS (twice; default 14=573/1268, 30=250/1268)")
    p.add_argument("--write", action="store_true", help="write the fitted LoS into the config")
    p.set_defaults(func=cmd_calibrate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    keep_freed_memory()  # as in the workers: replications in this process reuse freed arrays
    try:
        return args.func(args)
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    except ExecutorError as exc:
        error(str(exc))
        return EXIT_CONFIG
