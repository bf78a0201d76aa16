"""The simulated batch system: where a trace's jobs wait and run during ``burst simulate``.

Jobs start in submit order, on on-prem capacity first, then on the nodes of joined burst clusters
where their shape fits on one node (first fit, with backfill: a job that fits may pass a larger
one that does not).  Each runs for its trace run time; its wait is recorded.  A cluster leaves
only after it reports no running job, so no job is ever killed — ``killed_jobs`` counts any
violation instead of hiding it.

The executor is also the simulation's backlog source: :meth:`demand` aggregates pending jobs by
shape, as a schedd's autoclusters would.
"""

from __future__ import annotations

import bisect
import heapq
from array import array
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from burst.lifecycle import ClusterRecord, ClusterState
from burst.model import Bucket, Demand, Job, Shape

#: free capacity of a released node: below anything a job asks, so nothing fits there
_GONE = -(1 << 40)


def node_name(cluster_id: str, index: int) -> str:
    """The member's node names, as the local cloud names them (``<cluster>-node-<i>``)."""
    return f"{cluster_id}-node-{index}"


@dataclass
class _BurstCluster:
    cpus: int
    memory_mb: int
    gpus: int
    free_cpu: list[int]
    free_mem: list[int]
    free_gpu: list[int]
    schedulable: bool = True
    running: int = 0
    busy_cores: int = 0
    #: the widest job that fits now (one node's free cores, or all whole free nodes); None = stale
    widest: int | None = None
    #: idle nodes handed back for removal (no new job lands there); removed ones never return
    released: set[int] = field(default_factory=set)
    removed: set[int] = field(default_factory=set)
    #: a job ended or nodes came since the last look for idle nodes (a draining cluster is asked
    #: every tick; most ticks nothing changed)
    may_have_idle: bool = True

    @property
    def live_nodes(self) -> int:
        return len(self.free_cpu) - len(self.removed)

    def idle(self, n: int) -> bool:
        return self.free_cpu[n] == self.cpus and self.free_mem[n] == self.memory_mb and self.free_gpu[n] == self.gpus

    def release(self, n: int) -> None:
        """A released node keeps its index (placements refer to nodes by index) but can fit nothing."""
        self.released.add(n)
        self.free_cpu[n] = self.free_mem[n] = self.free_gpu[n] = _GONE
        self.widest = None

    def take_back(self) -> None:
        for n in self.released - self.removed:
            self.free_cpu[n], self.free_mem[n], self.free_gpu[n] = self.cpus, self.memory_mb, self.gpus
        self.released &= self.removed
        self.widest = None
        self.may_have_idle = True

    def add_nodes(self, n: int) -> None:
        self.free_cpu += [self.cpus] * n
        self.free_mem += [self.memory_mb] * n
        self.free_gpu += [self.gpus] * n
        self.widest = None
        self.may_have_idle = True

    def widest_fit(self) -> int:
        """Cached between allocations: the scheduler asks on every step, nodes change rarely."""
        if self.widest is None:
            whole = sum(self.cpus for f in self.free_cpu if f == self.cpus)
            self.widest = max(0, whole, *self.free_cpu)
        return self.widest


_Alloc = tuple[int, int, int, int]  # node, cpus, memory, gpus


def _fit_one_node(c: _BurstCluster, s: Shape) -> list[_Alloc] | None:
    for n, free in enumerate(c.free_cpu):
        if free >= s.cpus and c.free_mem[n] >= s.memory_mb and c.free_gpu[n] >= s.gpus:
            return [(n, s.cpus, s.memory_mb, s.gpus)]
    return None


def _fit_spanning(c: _BurstCluster, s: Shape) -> list[_Alloc] | None:
    """An MPI-style job wider than a node takes whole free nodes of one cluster."""
    if s.gpus:
        return None
    need = -(-s.cpus // c.cpus)
    mem_per_node = -(-s.memory_mb // need)
    if mem_per_node > c.memory_mb:
        return None
    free = [n for n, f in enumerate(c.free_cpu) if f == c.cpus and c.free_mem[n] == c.memory_mb]
    if len(free) < need:
        return None
    alloc, left = [], s.cpus
    for n in free[:need]:
        cpu = min(c.cpus, left)
        left -= cpu
        alloc.append((n, cpu, mem_per_node, 0))
    return alloc


@dataclass
class _Queue:
    """Pending jobs of one shape, oldest first."""

    shape: Shape
    jobs: deque[int] = field(default_factory=deque)


class Executor:
    def __init__(
        self,
        onprem_cores: int,
        onprem_memory_mb: int | None,
        start: datetime,
        spike_factor: float = 1.0,
        jobs: Sequence[Job] = (),
    ) -> None:
        self.start = start
        self.onprem_cores = onprem_cores
        self.onprem_free = onprem_cores
        self.onprem_mem = onprem_memory_mb
        self.onprem_mem_free = onprem_memory_mb
        self.spike_factor = spike_factor
        self.now_s = 0.0
        self._next = 0  # index of the next job to submit
        self._queues: dict[Shape, _Queue] = {}
        self._cpu_levels: list[int] = []  # sorted distinct cpus of shapes with pending jobs
        self._level_queues: dict[int, int] = {}  # how many queues there are of each of those cpus
        self._running: list[tuple[float, int, str]] = []  # heap of (end, job, where): where "" = on-prem
        self._placement: dict[int, tuple[str, list[_Alloc]]] = {}
        self.clusters: dict[str, _BurstCluster] = {}
        #: clusters in the order jobs try them: steered ones first (see set_order), then by join
        self._preferred: list[str] = []
        self._order: list[tuple[str, _BurstCluster]] | None = None
        #: the widest job any schedulable cluster fits now; None = recompute (a cluster changed)
        self._burst_widest: int | None = None
        #: capacity came back without a schedule() (the next event must run one)
        self._unsettled = False
        self.pending_cores = 0
        self.pending_jobs = 0
        self.running_cores = 0
        self.burst_busy_cores = 0
        self.finished = 0
        self.killed_jobs = 0
        #: jobs killed by an announced, opt-in budget hard stop: counted apart from killed_jobs
        self.budget_killed_jobs = 0
        #: clusters removed at a budget hard stop (the simulation names them as it happens)
        self.budget_stopped: set[str] = set()
        self.burst_core_seconds = 0.0
        self.load(jobs)

    def load(self, jobs: Sequence[Job]) -> None:
        """The jobs to replay, sorted by submit time (before the first :meth:`run_until`)."""
        self.jobs = jobs
        self.wait = array("d", bytes(8 * len(jobs)))
        self.started = bytearray(len(jobs))
        self.spike = bytearray(len(jobs))
        self.on_burst = bytearray(len(jobs))

    # --- time ------------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self._next >= len(self.jobs) and not self._running and self.pending_jobs == 0

    def next_submit_s(self) -> float | None:
        return self.jobs[self._next].submit_s if self._next < len(self.jobs) else None

    def run_until(self, t: float) -> None:
        """Process every submit and finish up to ``t`` (seconds from the trace start), in order."""
        jobs, running = self.jobs, self._running
        while True:
            nxt_sub = jobs[self._next].submit_s if self._next < len(jobs) else float("inf")
            nxt_fin = running[0][0] if running else float("inf")
            now = min(nxt_sub, nxt_fin)
            if now > t:
                break
            self.now_s = now
            freed = False
            while running and running[0][0] <= now:
                self._finish(*heapq.heappop(running))
                freed = True
            new_head = False
            while self._next < len(jobs) and jobs[self._next].submit_s <= now:
                new_head |= self._submit(self._next)
                self._next += 1
            # After schedule() no queue's oldest job fits anywhere, and capacity only grows through
            # a finish or a call that schedules itself: a job queued behind another changes nothing.
            if freed or new_head or self._unsettled:
                self.schedule()
        self.now_s = max(self.now_s, t)

    def _submit(self, i: int) -> bool:
        """Queue job ``i``; True when it is the oldest of its shape (it may start now)."""
        shape = self.jobs[i].shape
        q = self._queues.get(shape)
        if q is None:
            q = self._queues[shape] = _Queue(shape)
            n = self._level_queues.get(shape.cpus, 0)
            self._level_queues[shape.cpus] = n + 1
            if n == 0:
                bisect.insort(self._cpu_levels, shape.cpus)
        q.jobs.append(i)
        self.pending_cores += shape.cpus
        self.pending_jobs += 1
        if self.pending_cores > self.spike_factor * self.onprem_cores:
            self.spike[i] = 1
        return len(q.jobs) == 1

    def _finish(self, end: float, i: int, where: str) -> None:
        shape = self.jobs[i].shape
        self.running_cores -= shape.cpus
        self.finished += 1
        if where == "":
            self.onprem_free += shape.cpus
            if self.onprem_mem_free is not None:
                self.onprem_mem_free += shape.memory_mb
            return
        c = self.clusters.get(where)
        if c is None:  # the cluster vanished under a running job: that job was killed
            if where in self.budget_stopped:
                self.budget_killed_jobs += 1
            else:
                self.killed_jobs += 1
            return
        for n, cpu, mem, gpu in self._placement.pop(i)[1]:
            c.free_cpu[n] += cpu
            c.free_mem[n] += mem
            c.free_gpu[n] += gpu
        c.widest = None
        self._burst_widest = None
        c.may_have_idle = True
        c.running -= 1
        c.busy_cores -= shape.cpus
        self.burst_busy_cores -= shape.cpus

    # --- scheduling ----------------------------------------------------------------------------

    def _max_free(self) -> int:
        """The widest job that could start somewhere now (on-prem, or whole free nodes of a cluster)."""
        widest = self._burst_widest
        if widest is None:
            widest = 0
            for c in self.clusters.values():
                if c.schedulable and c.free_cpu:
                    w = c.widest_fit()
                    widest = max(widest, w)
            self._burst_widest = widest
        onprem = self.onprem_free
        return onprem if onprem > widest else widest  # max() costs a call, and this runs per start

    def schedule(self) -> None:
        """Start pending jobs, oldest first among the shapes that can fit somewhere now."""
        self._unsettled = False
        if not self.pending_jobs:
            return
        blocked: set[int] = set()  # id() of queues whose oldest job found no room this round
        levels = self._cpu_levels
        while True:
            max_free = self._max_free()
            if not levels or levels[0] > max_free:
                return
            best: _Queue | None = None
            oldest = 0
            for q in self._queues.values():
                if q.shape.cpus <= max_free and (best is None or q.jobs[0] < oldest) and id(q) not in blocked:
                    best = q
                    oldest = q.jobs[0]
            if best is None:
                return
            i = oldest
            if not self._place(i):
                blocked.add(id(best))
                continue
            best.jobs.popleft()
            if not best.jobs:
                del self._queues[best.shape]
                cpus = best.shape.cpus
                n = self._level_queues.pop(cpus) - 1
                if n:
                    self._level_queues[cpus] = n
                else:
                    self._cpu_levels.remove(cpus)

    def _place(self, i: int) -> bool:
        job = self.jobs[i]
        s = job.shape
        end = self.now_s + job.runtime_s
        if (
            s.gpus == 0
            and s.cpus <= self.onprem_free
            and (self.onprem_mem_free is None or s.memory_mb <= self.onprem_mem_free)
        ):
            self.onprem_free -= s.cpus
            if self.onprem_mem_free is not None:
                self.onprem_mem_free -= s.memory_mb
            self._started(i, end, "")
            return True
        order = self._order
        if order is None:
            order = self._order = self._ordered()
        for cid, c in order:
            if not c.schedulable or s.gpus > c.gpus or c.widest_fit() < s.cpus:
                # widest_fit() is at least every node's free cores and all whole free nodes together
                continue
            alloc = _fit_one_node(c, s) if s.cpus <= c.cpus and s.memory_mb <= c.memory_mb else _fit_spanning(c, s)
            if alloc is None:
                continue
            for n, cpu, mem, gpu in alloc:
                c.free_cpu[n] -= cpu
                c.free_mem[n] -= mem
                c.free_gpu[n] -= gpu
            c.widest = None
            self._burst_widest = None
            c.running += 1
            c.busy_cores += s.cpus
            self.burst_busy_cores += s.cpus
            self._placement[i] = (cid, alloc)
            self.on_burst[i] = 1
            self.burst_core_seconds += s.cpus * job.runtime_s
            self._started(i, end, cid)
            return True
        return False

    def _started(self, i: int, end: float, where: str) -> None:
        job = self.jobs[i]
        self.wait[i] = self.now_s - job.submit_s
        self.started[i] = 1
        self.pending_cores -= job.shape.cpus
        self.pending_jobs -= 1
        self.running_cores += job.shape.cpus
        heapq.heappush(self._running, (end, i, where))

    # --- burst capacity (driven by the local federation) -------------------------------------

    def _ordered(self) -> list[tuple[str, _BurstCluster]]:
        first = [(cid, self.clusters[cid]) for cid in self._preferred if cid in self.clusters]
        seen = {cid for cid, _ in first}
        return first + [(cid, c) for cid, c in self.clusters.items() if cid not in seen]

    def set_order(self, cluster_ids: Sequence[str]) -> None:
        """Steering: new jobs try these clusters first, in this order (the others after them)."""
        if list(cluster_ids) != self._preferred:
            self._preferred = list(cluster_ids)
            self._order = None

    def attach(self, cluster: ClusterRecord) -> None:
        self._burst_widest = None
        if cluster.cluster_id in self.clusters:
            self.clusters[cluster.cluster_id].schedulable = True
            self._unsettled = True  # room may have come back: the next event schedules
            return
        c = _BurstCluster(cluster.cpus_per_node, cluster.memory_mb_per_node, cluster.gpus_per_node, [], [], [])
        c.add_nodes(cluster.nodes or cluster.desired_nodes)
        self.clusters[cluster.cluster_id] = c
        self._order = None
        self.schedule()

    def set_schedulable(self, cluster_id: str, schedulable: bool) -> None:
        c = self.clusters.get(cluster_id)
        if c is not None:
            if schedulable or c.schedulable:  # take_back() below may free released nodes too
                self._burst_widest = None
            c.schedulable = schedulable
            if schedulable:
                c.take_back()
                self.schedule()

    def release_idle(self, cluster_id: str, count: int) -> list[str]:
        """Up to ``count`` idle nodes of a cluster, taken out of scheduling for removal; nodes
        released earlier and not yet removed come first (a retry after a failed removal)."""
        c = self.clusters.get(cluster_id)
        if c is None or count <= 0:
            return []
        if not c.may_have_idle and len(c.released) == len(c.removed):  # removed ⊆ released
            return []  # nothing left over from earlier, nothing new: the common case, every tick
        pending = sorted(c.released - c.removed)[:count]
        fresh = []
        if c.may_have_idle:
            fresh = [n for n in range(len(c.free_cpu) - 1, -1, -1) if n not in c.released and c.idle(n)]
            c.may_have_idle = len(fresh) > count - len(pending)  # some idle nodes stay for next time
        chosen = pending + fresh[: count - len(pending)]
        for n in chosen:
            c.release(n)
            self._burst_widest = None
        return [node_name(cluster_id, n) for n in chosen]

    def running_on(self, cluster_id: str) -> int:
        c = self.clusters.get(cluster_id)
        return c.running if c is not None else 0

    def detach(self, cluster_id: str) -> None:
        c = self.clusters.pop(cluster_id, None)
        self._burst_widest = None
        self._order = None
        if c is not None and c.running:
            # Jobs still there would die with the cluster; _finish counts them as killed.
            self.burst_busy_cores -= c.busy_cores

    def sync(self, fleet: Sequence[ClusterRecord]) -> None:
        """Follow the records: nodes added by a resize become usable once the record says the cloud
        has them; released nodes the cloud has deleted stop counting."""
        grew = False
        for rec in fleet:
            c = self.clusters.get(rec.cluster_id)
            if c is None:
                continue
            if rec.nodes < c.live_nodes:
                c.removed.update(sorted(c.released - c.removed)[: c.live_nodes - rec.nodes])
            elif rec.state is ClusterState.ACTIVE and rec.nodes > c.live_nodes:
                c.add_nodes(rec.nodes - c.live_nodes)
                self._burst_widest = None
                grew = True
        if grew:
            self.schedule()

    # --- the backlog source view -----------------------------------------------------------

    name = "simulated-queue"

    def demand(self) -> Demand:
        now = self.start + timedelta(seconds=self.now_s)
        buckets = tuple(
            Bucket(q.shape, len(q.jobs), self.now_s - self.jobs[q.jobs[0]].submit_s) for q in self._queues.values()
        )
        return Demand(now, buckets, self.running_cores, self.onprem_cores, self.onprem_free)

    def poll(self) -> Demand:
        return self.demand()
