"""The `bedflow bench` performance benchmarks: throughput, engine ratios, scaling, memory.

Each benchmark returns a :class:`Section` (a markdown table plus headline figures); the suite
prints them and appends them to ``benchmarks/RESULTS.md`` with the date, machine, commit and
library versions. Timings exclude numba compilation (the on-disk cache is warmed first) unless a
row says otherwise. ``quick=True`` runs the same code on small workloads (for the smoke test).
"""

from __future__ import annotations

import cProfile
import io
import json
import math
import os
import platform
import pstats
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from sim import demand
from sim.engines import kiefer_wolfowitz, numba_core, run_engine
from sim.metrics import POOL_METRICS, replication_metrics
from sim.network import Network, compile_network
from sim.scenario import Scenario, load_scenario, scenario_from_dict, set_path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "configs/derbyshire/baseline_2015_16.yaml"
STP_PHASED = ROOT / "configs/derbyshire/stp_phased_2016_2021.yaml"
RESULTS = ROOT / "benchmarks/RESULTS.md"
SEED = 1


@dataclass
class Section:
    """One benchmark's output: a title, markdown lines and headline figures (name -> value)."""

    title: str
    lines: list[str] = field(default_factory=list)
    figures: dict[str, float] = field(default_factory=dict)

    def table(self, header: list[str], rows: list[list[Any]]) -> None:
        self.lines.append("| " + " | ".join(header) + " |")
        self.lines.append("|" + "---|" * len(header))
        for row in rows:
            self.lines.append("| " + " | ".join(_cell(x) for x in row) + " |")
        self.lines.append("")

    def markdown(self) -> str:
        return "\n".join([f"### {self.title}", "", *self.lines]).rstrip() + "\n"


def _cell(x: Any) -> str:
    if isinstance(x, float):
        if x == 0 or not math.isfinite(x):
            return f"{x:g}"
        if abs(x) >= 1e5:
            return f"{x:,.0f}"
        return f"{x:,.5g}"
    return str(x)


# ---------------------------------------------------------------- timing the pipeline


@dataclass
class PipelineTimes:
    """Seconds spent per stage over some replications, and the admissions simulated."""

    replications: int = 0
    admissions: int = 0
    generate: float = 0.0
    engine: float = 0.0
    metrics: float = 0.0

    @property
    def total(self) -> float:
        return self.generate + self.engine + self.metrics

    def __add__(self, other: PipelineTimes) -> PipelineTimes:
        return PipelineTimes(*(getattr(self, f) + getattr(other, f) for f in
                               ("replications", "admissions", "generate", "engine", "metrics")))

    def per_rep(self, stage: str = "total") -> float:
        return getattr(self, stage) / self.replications

    def rate(self, stage: str = "total") -> float:
        """Admissions per second through a stage (or the whole pipeline)."""
        return self.admissions / getattr(self, stage)


#: In-process stage timings use this process's CPU time: one core's work, robust to other
#: processes sharing the machine. Wall-clock rows (worker pools, CLI commands) say so.
cpu_clock = time.process_time


def timed_tables(network: Network, replications: int, seed: int = SEED) -> tuple[list, list]:
    """Patient tables of replications 0..n-1 and the CPU seconds each took to generate."""
    tables, seconds = [], []
    for r in range(replications):
        t0 = cpu_clock()
        tables.append(demand.generate(network, seed, r))
        seconds.append(cpu_clock() - t0)
    return tables, seconds


def time_pipeline(network: Network, replications: int, engine: str = "numba",
                  seed: int = SEED, tables: tuple[list, list] | None = None,
                  keep: str = "traces", first: int = 0) -> tuple[PipelineTimes, list]:
    """Time table generation, the engine and metrics separately; returns the times and, per
    replication, its trace with its occupancy log (``keep="traces"``) or its metrics
    (``keep="metrics"``: the engine keeps no log, as in a worker).

    ``tables`` (from :func:`timed_tables`) replays given tables, counting their generation time;
    otherwise replications ``first``, ``first + 1``, ... are generated.
    """
    times = PipelineTimes()
    traces = []
    for i in range(replications):
        r = i if tables is not None else first + i
        t0 = cpu_clock()
        table = tables[0][r] if tables is not None else demand.generate(network, seed, r)
        t1 = cpu_clock()
        if tables is not None:
            t0 = t1 - tables[1][r]
        trace = run_engine(engine, network, table, log=keep == "traces")
        t2 = cpu_clock()
        m = replication_metrics(network, table, trace, r)
        t3 = cpu_clock()
        times.replications += 1
        times.admissions += table.n_patients
        times.generate += t1 - t0
        times.engine += t2 - t1
        times.metrics += t3 - t2
        traces.append(trace if keep == "traces" else m)
        del table, trace  # as in a worker: the next replication reuses this one's memory
    return times, traces


def warm(network: Network) -> None:
    """Load (or compile) every jitted function once so timings exclude compilation."""
    table = demand.generate(network, SEED, 10**6)
    for log in (True, False):
        replication_metrics(network, table, run_engine("numba", network, table, log))


def _stage_rows(t: PipelineTimes, label: str) -> list[list[Any]]:
    return [[f"{label}: {stage}", t.replications, t.admissions / t.replications,
             t.per_rep(stage), t.rate(stage)]
            for stage in ("generate", "engine", "metrics", "total")]


STAGE_HEADER = ["stage", "reps", "admissions/rep", "s/rep", "admissions/s (1 core)"]


# ---------------------------------------------------------------- scenarios


def shortened(scenario: Scenario, run_days: float, warmup_days: float) -> Scenario:
    """The same scenario over a shorter horizon (quick mode)."""
    doc = scenario.to_dict()
    set_path(doc, "run_days", run_days)
    set_path(doc, "warmup_days", warmup_days)
    return scenario_from_dict(doc, scenario.source_path)


def scaled(scenario: Scenario, factor: float) -> Scenario:
    """Every cohort's volume and every finite capacity multiplied by ``factor``."""
    doc = scenario.to_dict()
    for name, cohort in doc["cohorts"].items():
        set_path(doc, f"cohorts.{name}.arrivals.per_year", cohort["arrivals"]["per_year"] * factor)
    for name, pool in doc["pools"].items():
        if pool.get("capacity") is not None:
            set_path(doc, f"pools.{name}.capacity", int(round(pool["capacity"] * factor)))
        for i, change in enumerate(pool.get("capacity_changes") or []):
            if change.get("capacity") is not None:
                set_path(doc, f"pools.{name}.capacity_changes[{i}].capacity",
                         int(round(change["capacity"] * factor)))
    set_path(doc, "name", f"{scenario.name} x{factor:g}")
    return scenario_from_dict(doc, scenario.source_path)


def _baseline(quick: bool) -> Scenario:
    scenario = load_scenario(BASELINE)
    return shortened(scenario, 60, 30) if quick else scenario


# ---------------------------------------------------------------- benchmarks


def _same_tables(network: Network, tables: tuple[list, list]
                 ) -> tuple[PipelineTimes, PipelineTimes, bool]:
    """Both engines on each table in turn, their logged traces compared and dropped before the
    next table, so that every run reuses the memory of the one before (as in a worker) instead
    of page-faulting fresh arrays for traces held to the end. Returns the numba and SimPy times
    and whether every pair of traces is identical."""
    nb, sp, identical = PipelineTimes(), PipelineTimes(), True
    for table, seconds in zip(*tables, strict=True):
        one = ([table], [seconds])
        t_nb, (a,) = time_pipeline(network, 1, tables=one)
        t_sp, (b,) = time_pipeline(network, 1, engine="simpy", tables=one)
        nb, sp = nb + t_nb, sp + t_sp
        identical = identical and a.equals(b)
        del a, b
    return nb, sp, identical


def _engines_section(title: str, scenario: Scenario, quick: bool, numba_reps: int,
                     simpy_reps: int) -> Section:
    """Both engines on the same patient tables; the SimPy ratio measured in the same run."""
    sec = Section(title)
    network = compile_network(scenario)
    warm(network)
    nb, _ = time_pipeline(network, numba_reps, keep="metrics")  # no traces held: as a worker
    nb_same, sp, identical = _same_tables(network, timed_tables(network, simpy_reps))
    sec.lines.append(f"Scenario `{scenario.name}`, horizon {network.horizon:g} days, "
                     f"{network.n_pools} pools, {len(network.cohorts)} cohorts. numba on "
                     f"{numba_reps} replications; SimPy on the first {simpy_reps} of the same "
                     f"patient tables, table by table after numba with its occupancy log (traces "
                     f"identical: {'yes' if identical else 'NO'}).")
    sec.lines.append("")
    sec.table(STAGE_HEADER, _stage_rows(nb, "numba") + _stage_rows(sp, "simpy"))
    engine_ratio = sp.per_rep("engine") / nb_same.per_rep("engine")
    total_ratio = sp.per_rep("total") / nb_same.per_rep("total")
    sec.table(["ratio (same tables)", "value"], [
        ["SimPy engine s/rep / numba engine s/rep", engine_ratio],
        ["SimPy pipeline s/rep / numba pipeline s/rep", total_ratio],
    ])
    sec.lines.append(f"The ratios divide by numba on those tables with its occupancy log on: "
                     f"engine {_cell(nb_same.per_rep('engine'))} s/rep, pipeline "
                     f"{_cell(nb_same.per_rep('total'))} s/rep.")
    table = demand.generate(network, SEED, 0)
    if kiefer_wolfowitz.applies(network, table):
        shortcut, loop = _shortcut_and_loop(network, 2 if quick else 10)
        sec.lines.append("")
        sec.lines.append(
            f"Every patient here visits one pool, so without a log the engine takes the "
            f"Kiefer-Wolfowitz recursion. By turns on the same tables: recursion "
            f"{_cell(shortcut)} admissions/s, the general event loop {_cell(loop)} "
            f"(recursion / event loop: {_cell(shortcut / loop)}x).")
        sec.figures["numba_event_loop_admissions_per_s"] = loop
    del table
    sec.figures.update({
        "numba_engine_admissions_per_s": nb.rate("engine"),
        "numba_pipeline_admissions_per_s": nb.rate("total"),
        "numba_s_per_rep": nb.per_rep("total"),
        "simpy_engine_ratio": engine_ratio,
        "simpy_pipeline_ratio": total_ratio,
        "traces_identical": float(identical),
    })
    return sec


def _engine_seconds(network: Network, table, event_loop: bool) -> float:
    """CPU seconds of the numba engine (no log) on one table."""
    t0 = cpu_clock()
    numba_core.run(network, table, log=False, event_loop=event_loop)
    return cpu_clock() - t0


def _shortcut_and_loop(network: Network, replications: int) -> tuple[float, float]:
    """Engine admissions/s (no log) of the recursion and of the event loop, by turns on the
    tables of replications 0, 1, ..."""
    seconds = [0.0, 0.0]
    admissions = 0
    for r in range(replications):
        table = demand.generate(network, SEED, r)
        for i, event_loop in enumerate((False, True)):
            seconds[i] += _engine_seconds(network, table, event_loop)
        admissions += table.n_patients
        del table
    return admissions / seconds[0], admissions / seconds[1]


def bench_derbyshire(quick: bool = False) -> Section:
    """Derbyshire baseline on the numba and SimPy engines."""
    return _engines_section("Derbyshire baseline: numba vs SimPy engine", _baseline(quick), quick,
                            numba_reps=3 if quick else 50, simpy_reps=1 if quick else 3)


def bench_stp_phased(quick: bool = False) -> Section:
    """The phased five-year STP scenario on both engines, when its config exists."""
    if not STP_PHASED.exists():
        sec = Section("Phased STP scenario 2016-2021")
        sec.lines.append(f"skipped: {STP_PHASED.relative_to(ROOT)} does not exist yet.")
        return sec
    if quick:
        sec = Section("Phased STP scenario 2016-2021")
        sec.lines.append(f"skipped in quick mode: {STP_PHASED.relative_to(ROOT)} has dated "
                         "changes that need its full five-year horizon.")
        return sec
    scenario = load_scenario(STP_PHASED)
    return _engines_section("Phased STP scenario 2016-2021: numba vs SimPy engine", scenario,
                            quick, numba_reps=2 if quick else 10, simpy_reps=1)


_SCALING_CHILD = """
import json, sys
from dataclasses import asdict
from sim import bench
from sim.executors import keep_freed_memory
from sim.network import compile_network
keep_freed_memory()  # as in bedflow's own processes
quick, factor, n, k = sys.argv[1] == "1", float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
base = compile_network(bench._baseline(quick))
network = compile_network(bench.scaled(bench._baseline(quick), factor))
bench.warm(base)
bench.time_pipeline(network, 1, keep="metrics")  # steady state: this scale's memory in use once
ref, _ = bench.time_pipeline(base, k, keep="metrics")
times = bench.PipelineTimes()
loop = [0.0, 0.0]  # the event loop alone: this scale, 1x
for i in range(n):  # by turns: a replication at this scale, then replications 0..k-1 at 1x
    t, _ = bench.time_pipeline(network, 1, keep="metrics", first=i % k)
    r, _ = bench.time_pipeline(base, k, keep="metrics")
    times, ref = times + t, ref + r
    loop[0] += bench.event_loop_seconds(network, [i % k])
    loop[1] += bench.event_loop_seconds(base, range(k))
print(json.dumps({"times": asdict(times), "ref": asdict(ref), "loop": loop}))
"""


def event_loop_seconds(network: Network, replications: Iterable[int]) -> float:
    """CPU seconds of the event loop alone (no log) on the tables of these replications."""
    return sum(_engine_seconds(network, demand.generate(network, SEED, r), True)
               for r in replications)


def _scaling_child(quick: bool, factor: float, replications: int,
                   ref_block: int) -> tuple[PipelineTimes, PipelineTimes, float]:
    """Time one scale in a fresh process, by turns with the 1x workload in the same process
    (``ref_block`` 1x replications before the first replication at that scale and after each);
    returns the scale's times, the 1x reference and the event loop's time ratio per
    replication (scale / 1x)."""
    out = subprocess.run([sys.executable, "-c", _SCALING_CHILD, "1" if quick else "0",
                          str(factor), str(replications), str(ref_block)],
                         check=True, capture_output=True, text=True, cwd=ROOT).stdout
    res = json.loads(out.strip().splitlines()[-1])
    loop = (res["loop"][0] / replications) / (res["loop"][1] / (replications * ref_block))
    return PipelineTimes(**res["times"]), PipelineTimes(**res["ref"]), loop


def bench_scaling(quick: bool = False) -> Section:
    """Cost against admissions: volumes and capacities scaled 1x, 10x, 100x."""
    sec = Section("Scaling: admissions and beds scaled alike")
    factors = (1, 2, 4) if quick else (1, 10, 100)
    reps = (2, 1, 1) if quick else (10, 6, 2)
    ref_block = 1 if quick else 5
    sec.lines.append("Each scale runs in a fresh process (compile cache warm, one replication at "
                     "that scale first, so that its memory is in use as in a worker running many), "
                     f"by turns with the 1x workload in the same process: {ref_block} 1x "
                     "replications before the first at that scale and after each. Ratios are per "
                     "replication against those 1x runs, so that both sides of a ratio see the "
                     "machine in the same states. The engine is the Kiefer-Wolfowitz recursion "
                     "at every scale here (its trees fit in a core's L2 cache up to 100x); "
                     "the event-loop column times the event loop alone at both scales, on the "
                     "same tables, by the same turns.")
    sec.lines.append("")
    rows = []
    for factor, n in zip(factors, reps, strict=True):
        t, ref, loop = _scaling_child(quick, factor, n, ref_block)
        adm_ratio = (t.admissions / t.replications) / (ref.admissions / ref.replications)
        rows.append([f"{factor}x", n, t.admissions / t.replications, adm_ratio,
                     t.per_rep("generate") / ref.per_rep("generate"),
                     t.per_rep("engine") / ref.per_rep("engine"), loop,
                     t.per_rep("metrics") / ref.per_rep("metrics"),
                     t.per_rep("total") / ref.per_rep("total"),
                     t.per_rep("total"), ref.per_rep("total"), t.rate("total")])
        sec.figures[f"time_ratio_{factor}x"] = t.per_rep("total") / ref.per_rep("total")
        sec.figures[f"admissions_ratio_{factor}x"] = adm_ratio
        sec.figures[f"event_loop_time_ratio_{factor}x"] = loop
    sec.table(["scale", "reps", "admissions/rep", "admissions ratio", "generate time ratio",
               "engine time ratio", "event loop time ratio", "metrics time ratio",
               "total time ratio", "s/rep",
               "1x s/rep (same process)", "admissions/s"], rows)
    return sec


def _cli_wall(args: list[str]) -> float:
    """Wall seconds of a `bedflow` command in a fresh interpreter (process start included)."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "sim", *args], check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def bench_parallel(quick: bool = False) -> Section:
    """Replications on 1 and 2 worker processes, and wall time of whole `bedflow run` commands."""
    from sim.experiment import run

    sec = Section("Parallel replications and end-to-end commands")
    scenario = _baseline(quick)
    n = 4 if quick else 200
    warm(compile_network(scenario))
    rows, results = [], {}
    for jobs in (1, 2):
        t0 = time.perf_counter()
        results[jobs] = run(scenario, replications=n, seed=SEED, jobs=jobs)
        wall = time.perf_counter() - t0
        adm = results[jobs].cohort_admissions.sum()  # window only; for the rate use the table size
        rows.append([f"sim.run(jobs={jobs}), wall", n, wall, wall / n, adm / wall])
        sec.figures[f"jobs{jobs}_wall_s"] = wall
    same = bool(np.array_equal(results[1].pool_values, results[2].pool_values))
    speedup = sec.figures["jobs1_wall_s"] / sec.figures["jobs2_wall_s"]
    sec.figures["speedup_2_jobs"] = speedup
    cfg = str(BASELINE.relative_to(ROOT))
    # (label, arguments, with a run folder, times run): the 1000-replication command is run
    # three times, as its wall time moves with the state of the shared machine
    commands = [("`bedflow run` 1 replication", ["-n", "1"], False, 1)]
    if not quick:
        commands.insert(0, ("`bedflow run` 1000 replications, 2 jobs", ["-n", "1000", "-j", "2"],
                            False, 3))
        commands.append(("`bedflow run --out` 1000 replications, 2 jobs (run folder: tables, "
                         "18 plots)", ["-n", "1000", "-j", "2"], True, 1))
    for label, args, folder, times in commands:
        reps = int(args[1])
        walls = []
        for i in range(times):
            with tempfile.TemporaryDirectory() as tmp:
                out = ["--out", str(Path(tmp) / "run")] if folder else []
                walls.append(_cli_wall(["run", cfg, "-q", "--json", *args, *out]))
            run_label = f", run {i + 1} of {times}" if times > 1 else ""
            rows.append([f"{label} (wall, fresh process, cached compile{run_label})", reps,
                         walls[-1], walls[-1] / reps, ""])
        name = f"cli_{reps}_reps{'_out' if folder else ''}_wall_s"
        sec.figures[name] = float(np.median(walls))
        if times > 1:
            sec.figures[name.replace("_wall_s", "_wall_max_s")] = max(walls)
    sec.lines.append(f"Scenario `{scenario.name}`; sim.run rows include worker start-up; "
                     f"jobs=1 and jobs=2 results identical: {'yes' if same else 'NO'}; "
                     f"speed-up with 2 jobs: {speedup:.2f}x. CLI rows use the full baseline.")
    sec.lines.append("")
    sec.table(["what", "reps", "wall s", "s/rep", "window admissions/s"], rows)
    return sec


_MEMORY_CHILD = """
import json, resource, sys, tracemalloc
def peak_kb():
    # VmHWM: this process's own peak (ru_maxrss can carry the parent's peak across exec)
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
import sim
from sim import demand
from sim.bench import _baseline
from sim.executors import keep_freed_memory
keep_freed_memory()  # as in bedflow's own processes
from sim.engines import run_engine
from sim.metrics import POOL_METRICS, replication_metrics
from sim.network import compile_network
quick, counts = sys.argv[1] == "1", [int(x) for x in sys.argv[2:]]
scenario = _baseline(quick)
net = compile_network(scenario)
t = demand.generate(net, 1, 999)
replication_metrics(net, t, run_engine("numba", net, t, log=False))
del t
before = peak_kb()
tracemalloc.start()
table = demand.generate(net, 1, 0)
trace = run_engine("numba", net, table, log=False)  # as in a worker
replication_metrics(net, table, trace)
peak_one = tracemalloc.get_traced_memory()[1]
tracemalloc.stop()
del table, trace
for n in counts:  # a fresh run of n replications each time, keeping only the summaries
    results = sim.run(scenario, replications=n, seed=1, jobs=1)
    del results
    print(json.dumps({"n": n, "before_kb": before, "after_kb": peak_kb(),
                      "traced_peak_bytes": peak_one}))
"""


def bench_memory(quick: bool = False) -> Section:
    """Peak memory of one replication, and whether it grows with the number of replications."""
    sec = Section("Memory")
    rows = []
    counts = (2, 8) if quick else (10, 100)
    out = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, "1" if quick else "0",
                          *map(str, counts)],
                         check=True, capture_output=True, text=True, cwd=ROOT).stdout
    for line in out.strip().splitlines()[-len(counts):]:
        m = json.loads(line)
        growth = (m["after_kb"] - m["before_kb"]) / 1024
        rows.append([m["n"], m["traced_peak_bytes"] / 2**20, m["before_kb"] / 1024,
                     m["after_kb"] / 1024, growth])
        sec.figures[f"peak_rss_growth_mb_{m['n']}_reps"] = growth
        sec.figures["replication_traced_peak_mb"] = m["traced_peak_bytes"] / 2**20
    sec.lines.append("One fresh process: peak numpy memory of one replication (tracemalloc; "
                     "arrays allocated inside numba code are not traced), then its peak RSS "
                     "(VmHWM) before and after `sim.run` of that many replications, run one "
                     "after the other: bounded memory shows as no growth between rows.")
    sec.lines.append("")
    sec.table(["replications", "one replication traced peak MiB", "peak RSS before MiB",
               "peak RSS after MiB", "growth MiB"], rows)
    return sec


# ---------------------------------------------------------------- single-pool reference


SP_BEDS, SP_LOS, SP_RHO = 50, 5.0, 0.9
SP_RATE = SP_RHO * SP_BEDS / SP_LOS  # arrivals per day
SP_WARMUP = 50.0


def erlang_c_wait(c: int, lam: float, mean_los: float) -> float:
    """Mean wait in an M/M/c queue (Erlang C): exact theory for the single-pool workload."""
    a = lam * mean_los
    term, total = 1.0, 1.0
    for k in range(1, c):
        term *= a / k
        total += term
    last = term * a / c / (1 - a / c)
    return last / (total + last) * mean_los / (c - a)


def single_pool_scenario(run_days: float) -> Scenario:
    return scenario_from_dict({
        "name": "single-pool-mmc", "start": "2020-01-01", "warmup_days": SP_WARMUP,
        "run_days": run_days,
        "pools": {"ward": {"capacity": SP_BEDS, "when_full": "queue"}},
        "cohorts": {"patients": {"arrivals": {"per_year": SP_RATE * 365.0}, "pathway": [
            {"stage": "stay", "pool": "ward", "los": {"dist": "exponential", "mean": SP_LOS}}]}},
    })


def simpy_resource_run(run_days: float, seed: int) -> tuple[float, int]:
    """The workload in plain SimPy with simpy.Resource: (mean wait of window arrivals, arrivals)."""
    import simpy

    horizon = SP_WARMUP + run_days
    rng = np.random.default_rng(seed)
    n = int(SP_RATE * horizon + 10 * math.sqrt(SP_RATE * horizon) + 50)
    gaps = rng.exponential(1 / SP_RATE, n).tolist()
    stays = rng.exponential(SP_LOS, n).tolist()
    env = simpy.Environment()
    ward = simpy.Resource(env, capacity=SP_BEDS)
    waits: list[float] = []
    count = [0]

    def patient(i: int):
        arrived = env.now
        with ward.request() as req:
            yield req
            if arrived >= SP_WARMUP:
                waits.append(env.now - arrived)
            yield env.timeout(stays[i])

    def source():
        for i in range(n):
            yield env.timeout(gaps[i])
            count[0] += 1
            env.process(patient(i))

    env.process(source())
    env.run(until=horizon)
    return float(np.mean(waits)), count[0]


def ciw_run(run_days: float, seed: int) -> tuple[float, int]:
    """The workload in Ciw: (mean wait of window arrivals that started service, arrivals)."""
    import ciw

    network = ciw.create_network(
        arrival_distributions=[ciw.dists.Exponential(rate=SP_RATE)],
        service_distributions=[ciw.dists.Exponential(rate=1 / SP_LOS)],
        number_of_servers=[SP_BEDS])
    ciw.seed(seed)
    q = ciw.Simulation(network)
    q.simulate_until_max_time(SP_WARMUP + run_days)
    recs = q.get_all_records()
    waits = [r.waiting_time for r in recs if r.arrival_date >= SP_WARMUP]
    arrivals = len(q.get_all_individuals())
    return float(np.mean(waits)), arrivals


def _mc(values: list[float]) -> tuple[float, float]:
    """Mean and standard error across replications."""
    v = np.asarray(values, dtype=float)
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(v.size))


def bench_single_pool(quick: bool = False) -> Section:
    """M/M/c queue in the numba engine, plain SimPy (simpy.Resource) and Ciw: agree, then time."""
    sec = Section("Single-pool workload: numba vs plain SimPy vs Ciw")
    days = {"numba": 2000.0 if quick else 100_000.0, "simpy": 300.0 if quick else 10_000.0,
            "ciw": 100.0 if quick else 2000.0}
    reps = {"numba": 4 if quick else 10, "simpy": 4 if quick else 10, "ciw": 3 if quick else 10}
    network = compile_network(single_pool_scenario(days["numba"]))
    warm(network)
    runners: dict[str, Callable[[float, int], tuple[float, int]]] = {"simpy": simpy_resource_run}
    try:
        import ciw  # noqa: F401

        runners["ciw"] = ciw_run
    except ImportError:
        sec.lines.append("Ciw not installed (`pip install -e .[bench]`): Ciw rows skipped.")
    # Replication r of every model in turn, so that all of them see the machine in the same
    # state (it changes within minutes on shared cores) and their ratios compare like with like.
    times = PipelineTimes()
    nb_waits: list[float] = []
    ws: dict[str, list[float]] = {name: [] for name in runners}
    adm = dict.fromkeys(runners, 0)
    wall = dict.fromkeys(runners, 0.0)
    loop_s = 0.0  # the engine's general event loop on the same tables (no shortcut)
    for r in range(max(reps.values())):
        if r < reps["numba"]:
            t, metrics = time_pipeline(network, 1, keep="metrics", first=r)
            times = times + t
            nb_waits.append(float(metrics[0].pool[0, POOL_METRICS.index("mean_wait_days")]))
            table = demand.generate(network, SEED, r)
            t0 = cpu_clock()
            numba_core.run(network, table, log=False, event_loop=True)
            loop_s += cpu_clock() - t0
            del table
        for name, runner in runners.items():
            if r < reps[name]:
                t0 = cpu_clock()
                w, a = runner(days[name], 1000 + r)
                wall[name] += cpu_clock() - t0
                ws[name].append(w)
                adm[name] += a
    rows = [["numba (table + engine + metrics)", reps["numba"], days["numba"],
             times.admissions / times.replications, times.per_rep("total"), times.rate("total")],
            ["numba engine only (Kiefer-Wolfowitz recursion)", reps["numba"], days["numba"],
             times.admissions / times.replications, times.per_rep("engine"), times.rate("engine")],
            ["numba engine only, event loop", reps["numba"], days["numba"],
             times.admissions / times.replications, loop_s / times.replications,
             times.admissions / loop_s]]
    waits = {"numba": _mc(nb_waits)}
    rates = {"numba": times.rate("total"), "numba_engine": times.rate("engine"),
             "numba_event_loop": times.admissions / loop_s}
    for name in runners:
        waits[name] = _mc(ws[name])
        rates[name] = adm[name] / wall[name]
        label = "plain SimPy (simpy.Resource)" if name == "simpy" else "Ciw"
        rows.append([label, reps[name], days[name], adm[name] / reps[name],
                     wall[name] / reps[name], rates[name]])
    theory = erlang_c_wait(SP_BEDS, SP_RATE, SP_LOS)
    agree_rows = []
    agree = True
    for name, (mean, se) in waits.items():
        z = (mean - waits["numba"][0]) / math.hypot(se, waits["numba"][1]) if name != "numba" else 0.0
        z_theory = (mean - theory) / se
        ok = abs(z) < 4 and abs(z_theory) < 4
        agree &= ok
        agree_rows.append([name, reps[name], mean * 24, se * 24, z, z_theory,
                           "yes" if ok else "NO"])
    sec.lines.append(f"M/M/{SP_BEDS} queue, load {SP_RHO}, mean stay {SP_LOS} days, warm-up "
                     f"{SP_WARMUP:g} days; Erlang C mean wait {theory * 24:.3f} h. Agreement: "
                     f"|z| < 4 against numba and against theory, with standard errors across "
                     f"replications. Timed by turns: replication r of numba, then of SimPy, then "
                     f"of Ciw, so that every ratio compares runs made minutes apart at most. "
                     f"Patients here visit one pool, so the engine replays them by the "
                     f"Kiefer-Wolfowitz recursion (sim.engines.kiefer_wolfowitz: the event "
                     f"loop's trace, tested bit for bit); the event-loop row times the general "
                     f"loop, which every multi-stage network runs, on the same tables.")
    sec.lines.append("")
    sec.table(["model", "reps", "mean wait h", "s.e. h", "z vs numba", "z vs Erlang C",
               "agrees"], agree_rows)
    sec.table(["model", "reps", "run days", "admissions/rep", "s/rep", "admissions/s"], rows)
    ratio_rows = []
    for name in runners:
        for nb_key, label in (("numba", "pipeline"), ("numba_engine", "engine"),
                              ("numba_event_loop", "event loop")):
            ratio = rates[nb_key] / rates[name]
            ratio_rows.append([f"numba {label} / {name}", ratio])
            sec.figures[f"{nb_key}_over_{name}"] = ratio
    sec.table(["throughput ratio (admissions/s)", "value"], ratio_rows)
    sec.figures["agree"] = float(agree)
    sec.figures["numba_pipeline_admissions_per_s"] = rates["numba"]
    sec.figures["numba_engine_admissions_per_s"] = rates["numba_engine"]
    sec.figures["numba_event_loop_admissions_per_s"] = rates["numba_event_loop"]
    return sec


def bench_profile(quick: bool = False) -> Section:
    """Where one Derbyshire replication spends its time as a worker runs it (no occupancy log;
    cProfile, top functions)."""
    sec = Section("Profile: Derbyshire baseline replication as in a worker (cProfile, top by "
                  "own time)")
    network = compile_network(_baseline(quick))
    warm(network)
    n = 2 if quick else 20
    prof = cProfile.Profile()
    prof.enable()
    time_pipeline(network, n, keep="metrics")
    prof.disable()
    stats = pstats.Stats(prof, stream=io.StringIO())
    total = stats.total_tt
    rows = []
    entries = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:10]
    for (filename, line, func), (_, ncalls, tottime, _cum, _) in entries:
        where = f"{Path(filename).name}:{line}({func})" if line else func
        rows.append([where, ncalls // n if ncalls >= n else ncalls, tottime / n * 1e3,
                     100 * tottime / total])
    sec.table(["function", "calls/rep", "ms/rep", "% of time"], rows)
    sec.figures["profiled_ms_per_rep"] = total / n * 1e3
    return sec


BENCHMARKS: dict[str, Callable[[bool], Section]] = {
    "derbyshire": bench_derbyshire,
    "stp_phased": bench_stp_phased,
    "scaling": bench_scaling,
    "parallel": bench_parallel,
    "memory": bench_memory,
    "single_pool": bench_single_pool,
    "profile": bench_profile,
}


# ---------------------------------------------------------------- report


def machine() -> dict[str, str]:
    """CPU model, cores, commit and versions for the results header."""
    import numba
    import simpy

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                                capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               text=True, capture_output=True, check=True).stdout.strip()
        commit += " (with uncommitted changes)" if dirty else ""
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    try:
        import ciw

        ciw_version = ciw.__version__
    except ImportError:
        ciw_version = "not installed"
    return {
        "cpu": cpu, "cores": f"{os.cpu_count()} ({usable} usable)", "commit": commit,
        "python": platform.python_version(), "numpy": np.__version__,
        "numba": numba.__version__, "simpy": simpy.__version__, "ciw": ciw_version,
        "os": f"{platform.system()} {platform.release()}",
    }


def header(quick: bool, names: list[str] | None = None) -> str:
    """The run's heading (quick or full; a partial run names its sections) and machine lines."""
    m = machine()
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    kind = "quick" if quick else "full"
    if names and list(names) != list(BENCHMARKS):
        kind += f" run of {', '.join(names)} only"
    else:
        kind += " run"
    return (f"## {stamp} ({kind})\n\n"
            f"- machine: {m['cpu']}, {m['cores']} cores, {m['os']}; load average at start "
            f"{load}\n"
            f"- timings: s/rep and admissions/s of in-process stages are CPU seconds of one "
            f"process (one core); rows marked wall are wall-clock seconds\n"
            f"- commit: {m['commit']}\n"
            f"- versions: Python {m['python']}, numpy {m['numpy']}, numba {m['numba']}, "
            f"SimPy {m['simpy']}, Ciw {m['ciw']}\n")


def run_suite(names: list[str] | None = None, quick: bool = False,
              results: Path | None = RESULTS, echo: Callable[[str], None] = print) -> str:
    """Run benchmarks (all by default), echo each section, append the report to ``results``."""
    from sim.results import write_atomic

    chosen = names or list(BENCHMARKS)
    unknown = [n for n in chosen if n not in BENCHMARKS]
    if unknown:
        raise ValueError(f"unknown benchmark(s) {', '.join(unknown)}; "
                         f"choose from {', '.join(BENCHMARKS)}")
    parts = [header(quick, chosen)]
    echo(parts[0])
    t0 = time.perf_counter()
    for name in chosen:
        section = BENCHMARKS[name](quick)
        parts.append(section.markdown())
        echo(section.markdown())
    parts.append(f"Benchmark wall time: {time.perf_counter() - t0:.1f} s.\n")
    report = "\n".join(parts) + "\n"
    if results is not None:
        results = Path(results)
        old = results.read_text() if results.exists() else (
            "# Benchmark results\n\nAppended by `bedflow bench` (`make bench`); newest last.\n\n")
        write_atomic(results, old.rstrip("\n") + "\n\n" + report)
    return report

