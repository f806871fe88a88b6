"""The reference engine: the same model written plainly in SimPy, one process per patient.

Slow but easy to read and to trace. It follows the same rules as the compiled engine: at equal
times capacity changes come first, then ends of stay (by visit index), then arrivals (by patient
index); SimPy's own bookkeeping events run before any of these, so a bed freed at time t reaches
the head of the queue before anything else happens at t. Discharge holds and capacity cuts
(outlie / move) follow the rules described in :mod:`sim.engines.numba_core`.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import simpy

from sim.discharges import hold_days
from sim.engines.trace import FOUND_FULL, LOST, MOVED, OUTLIED, OVERFLOWED, Trace
from sim.network import DRAIN, LOSE, OUTLIE, QUEUE

_CAPACITY_PRIORITY = 2  # SimPy uses 0 (urgent) and 1 (normal) for its own events


class BedPool:
    """A pool of beds with a FIFO queue; a bed is granted the moment it is freed."""

    def __init__(self, model: BedFlowModel, index: int):
        net = model.net
        self.model, self.env, self.rec, self.index = model, model.env, model.rec, index
        self.capacity = int(net.capacity[index])
        self.policy, self.overflow = int(net.policy[index]), int(net.overflow_to[index])
        self.reduction, self.move_to = int(net.reduction[index]), int(net.move_to[index])
        self.in_use = 0
        self.queue: deque[tuple[int, simpy.Event]] = deque()
        self.in_service: dict[int, float] = {}  # visit -> departure, for capacity cuts

    @property
    def full(self) -> bool:
        return self.in_use >= self.capacity or bool(self.queue)

    def take(self, visit: int) -> None:
        """Give ``visit`` a bed now and fix when it will leave it."""
        self.in_use += 1
        self.rec.admit[visit] = self.env.now
        self.rec.log(self.env.now, self.index, +1)
        delay = self.model.stay(visit, self.index)
        self.model.delay[visit] = delay
        self.model.bed[visit] = self
        self.in_service[visit] = self.env.now + delay  # the time SimPy will schedule it at

    def release(self, visit: int) -> None:
        self.in_use -= 1
        self.rec.log(self.env.now, self.index, -1)
        self.serve_queue()

    def serve_queue(self) -> None:
        while self.in_use < self.capacity and self.queue:
            visit, granted = self.queue.popleft()
            self.take(visit)
            granted.succeed()

    def set_capacity(self, capacity: int) -> None:
        self.capacity = capacity
        if self.reduction != DRAIN and self.in_use > capacity:
            self.take_out_excess()
        self.serve_queue()

    def take_out_excess(self) -> None:
        """Outlie or move the patients due to stay longest (latest departure, then visit)."""
        chosen = sorted(self.in_service.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)
        for visit, _ in chosen[: self.in_use - self.capacity]:
            del self.in_service[visit]
            self.in_use -= 1
            self.rec.log(self.env.now, self.index, -1)
            self.rec.moved_at[visit] = self.env.now
            if self.reduction == OUTLIE:
                self.rec.flags[visit] |= OUTLIED
                self.model.bed[visit] = None
            else:
                self.rec.flags[visit] |= MOVED
                target = self.model.pools[self.move_to]
                target.in_use += 1
                self.rec.log(self.env.now, target.index, +1)
                self.model.bed[visit] = target


class Recorder:
    """Collects the per-visit outcomes and the occupancy log."""

    def __init__(self, m: int):
        self.used_pool = np.full(m, -1, np.int32)
        self.request = np.full(m, np.nan)
        self.admit = np.full(m, np.nan)
        self.leave = np.full(m, np.nan)
        self.flags = np.zeros(m, np.int8)
        self.moved_at = np.full(m, np.nan)
        self.entries: list[tuple[float, int, int]] = []

    def log(self, t: float, pool: int, delta: int) -> None:
        self.entries.append((t, pool, delta))

    def trace(self) -> Trace:
        log = np.array(self.entries, dtype=float).reshape(-1, 3)
        return Trace(self.used_pool, self.request, self.admit, self.leave, self.flags,
                     log[:, 0].copy(), log[:, 1].astype(np.int32), log[:, 2].astype(np.int8),
                     self.moved_at)


class BedFlowModel:
    """Patients arrive, ask each pool of their pathway for a bed in turn, and leave."""

    def __init__(self, network, table):
        self.net, self.table = network, table
        self.env = simpy.Environment()
        self.rec = Recorder(table.n_visits)
        self.delay = np.zeros(table.n_visits)  # time from taking the bed to leaving it (no wait)
        self.bed: list[BedPool | None] = [None] * table.n_visits  # where the bed is now
        self.rules = network.discharges
        self.hold_u = table.visit_hold_u
        self.pools = [BedPool(self, k) for k in range(network.n_pools)]
        # Priorities order same-time events: capacity changes, ends of stay, then arrivals.
        self.end_of_stay_priority = _CAPACITY_PRIORITY + 1
        self.arrival_priority = self.end_of_stay_priority + table.n_visits

    def at(self, delay: float, priority: int) -> simpy.Event:
        """An event that fires after ``delay`` with the given same-time priority."""
        event = simpy.Event(self.env)
        event._ok, event._value = True, None
        self.env.schedule(event, priority, delay)
        return event

    def stay(self, visit: int, pool: int) -> float:
        """Days from taking a bed in ``pool`` to leaving it: the LoS plus any discharge hold."""
        los = float(self.table.visit_los[visit])
        r = self.rules
        if r.on[pool] and not np.isnan(self.hold_u[visit]):
            end = self.env.now + los
            return los + hold_days(end, float(self.hold_u[visit]), r.first_weekday,
                                   r.factor[pool], r.open[pool], r.close[pool])
        return los

    def leave_bed(self, visit: int) -> None:
        """Free the bed ``visit`` is in now (an outlier frees none)."""
        self.rec.leave[visit] = self.env.now
        bed = self.bed[visit]
        if bed is not None:
            bed.release(visit)

    def ask_for_bed(self, visit: int) -> tuple[simpy.Event | None, BedPool]:
        """Request a bed; returns (event fired when the bed is taken or None if lost, pool)."""
        self.rec.request[visit] = self.env.now
        pool = self.pools[self.table.visit_pool[visit]]
        if pool.full:
            self.rec.flags[visit] |= FOUND_FULL
        while pool.full:
            if pool.policy == QUEUE:
                self.rec.used_pool[visit] = pool.index
                granted = simpy.Event(self.env)
                pool.queue.append((visit, granted))
                return granted, pool
            if pool.policy == LOSE:
                self.rec.used_pool[visit] = pool.index
                self.rec.flags[visit] |= LOST
                return None, pool
            pool = self.pools[pool.overflow]
            self.rec.flags[visit] |= OVERFLOWED
        self.rec.used_pool[visit] = pool.index
        pool.take(visit)
        return self.env.event().succeed(), pool

    def patient(self, p: int):
        held_visit = -1
        for visit in range(self.table.visit_start[p], self.table.visit_start[p + 1]):
            granted, pool = self.ask_for_bed(visit)
            if granted is None:
                break
            yield granted
            if held_visit >= 0:
                self.leave_bed(held_visit)
            held_visit = visit
            yield self.at(self.delay[visit], self.end_of_stay_priority + visit)
            bed = self.bed[visit]
            if bed is not None:
                bed.in_service.pop(visit, None)
        if held_visit >= 0:
            self.leave_bed(held_visit)

    def schedule_inputs(self) -> None:
        """Arrivals and capacity changes, scheduled from time 0 so their times are exact."""
        for p, t in enumerate(self.table.arrival):
            event = self.at(float(t), self.arrival_priority + p)
            event.callbacks.append(lambda _, p=p: self.env.process(self.patient(p)))
        for t, k, cap in zip(self.net.cc_time, self.net.cc_pool, self.net.cc_capacity,
                             strict=True):
            event = self.at(float(t), _CAPACITY_PRIORITY)
            event.callbacks.append(lambda _, k=k, cap=cap: self.pools[k].set_capacity(int(cap)))

    def run(self) -> Trace:
        self.schedule_inputs()
        self.env.run(until=self.net.horizon)
        return self.rec.trace()


def run(network, table) -> Trace:
    """Run the SimPy engine on a patient table."""
    return BedFlowModel(network, table).run()
