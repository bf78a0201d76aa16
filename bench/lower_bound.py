"""The clairvoyant lower bound on burst spend (a fluid relaxation), computed offline.

Question: knowing the whole trace in advance, and each cloud's provisioning latency, what is the
least any strategy must spend so that every job that can run on burst capacity starts within the
wait target ``W``?  Each job ``j`` (submit ``r``, run time ``p``, ``c`` cores) must then run in
``[r, r + W + p]``.  The on-prem cluster does at most ``C`` core-seconds per second; whatever it
cannot do in time must be bought.  Two relaxations, each a valid bound; the larger is reported:

1. **mandatory load** — a job that starts at the latest allowed time ``r + W`` still runs until
   ``r + p``, so over ``[r + W, r + p]`` its ``c`` cores are certainly busy somewhere.  With ``M(t)``
   that certain load, at least ``∫ max(0, M(t) − C) dt`` core-seconds run on burst capacity.
2. **fluid EDF** — jobs become divisible work (``c·p`` core-seconds, any rate) with deadline
   ``r + W + p``; on-prem runs earliest-deadline-first at rate ``C`` and work still left at its
   deadline is bought.  EDF maximises the work a single fluid server finishes by the deadlines,
   so what is left over is the least that must be bought.

Those core-hours are priced at the cheapest effective CPU price (node price plus the control-plane
fee shared by a full cluster of the provider's ``nodes_per_cluster``).  Provisioning latency is
known in advance, so capacity is started exactly early enough and no job waits for it; the
latency's billed time, minimum billing, node packing and provider limits are all left out — each
can only add cost, so the figure stays a lower bound.

Jobs no offering can hold must run on-prem.  In the mandatory-load bound they are held to the same
target, so their own certain load is reserved on-prem first (capped at ``C``: where it alone
overflows on-prem, no strategy can meet the target for them).  The EDF bound leaves them out.
Without that reservation a site whose load is mostly wide MPI jobs (CEA Curie) gets a bound of 0.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from burst.api import Offering, ProviderLimits
from burst.model import Job


@dataclass(frozen=True, slots=True)
class LowerBound:
    core_hours: float
    mandatory_core_hours: float
    edf_core_hours: float
    price_per_core_hour: float
    currency: str
    wait_target_s: float
    jobs_considered: int

    @property
    def cost(self) -> float:
        return self.core_hours * self.price_per_core_hour


def cheapest_price(offerings: Sequence[Offering], limits: Mapping[str, ProviderLimits]) -> tuple[float, str]:
    """Cheapest price per core-hour of a CPU offering, control-plane fee spread over a full cluster."""
    best, currency = float("inf"), ""
    for o in offerings:
        if o.gpus or o.cpus <= 0:
            continue
        lim = limits.get(o.provider)
        nodes = max(1, min(lim.nodes_per_cluster if lim else o.max_nodes_per_cluster, o.max_nodes_per_cluster))
        price = (o.price_per_hour + o.control_plane_per_hour / nodes) / o.cpus
        if price < best:
            best, currency = price, o.currency
    if best == float("inf"):
        raise ValueError("no CPU offering to price the lower bound")
    return best, currency


def can_burst(job: Job, offerings: Sequence[Offering], limits: Mapping[str, ProviderLimits]) -> bool:
    for o in offerings:
        lim = limits.get(o.provider)
        if o.can_host(job.shape, lim.nodes_per_cluster if lim else o.max_nodes_per_cluster):
            return True
    return False


def mandatory_excess_s(jobs: Sequence[Job], onprem_cores: int, wait_s: float, onprem_only: Sequence[Job] = ()) -> float:
    """∫ max(0, M(t) − free(t)) dt in core-seconds: M(t) the cores burstable jobs certainly use at
    t, free(t) what on-prem has left once the jobs only it can run (``onprem_only``) certainly use
    theirs (never below 0)."""
    events: list[tuple[float, int, int]] = []  # (time, Δ burstable, Δ on-prem only)
    for j in jobs:
        if j.runtime_s > wait_s:
            events.append((j.submit_s + wait_s, j.shape.cpus, 0))
            events.append((j.submit_s + j.runtime_s, -j.shape.cpus, 0))
    for j in onprem_only:
        if j.runtime_s > wait_s:
            events.append((j.submit_s + wait_s, 0, j.shape.cpus))
            events.append((j.submit_s + j.runtime_s, 0, -j.shape.cpus))
    events.sort()
    load = fixed = 0
    last, excess = 0.0, 0.0
    for t, delta, delta_fixed in events:
        free = max(0, onprem_cores - fixed)
        if load > free:
            excess += (load - free) * (t - last)
        load += delta
        fixed += delta_fixed
        last = t
    return excess


def edf_excess_s(jobs: Sequence[Job], onprem_cores: int, wait_s: float) -> float:
    """Work (core-seconds) a fluid EDF server of rate C cannot finish by the jobs' deadlines."""
    order = sorted(jobs, key=lambda j: j.submit_s)
    heap: list[tuple[float, int, float]] = []  # (deadline, seq, remaining work)
    rate = float(onprem_cores)
    now, lost, i, seq = 0.0, 0.0, 0, 0
    while i < len(order) or heap:
        nxt = order[i].submit_s if i < len(order) else float("inf")
        # Serve the queue until the next release.
        while heap and now < nxt:
            deadline, s, work = heap[0]
            if deadline <= now:
                heapq.heappop(heap)
                lost += work
                continue
            if rate <= 0:
                heapq.heappop(heap)
                lost += work
                continue
            until = min(nxt, deadline, now + work / rate)
            if until <= now:  # work too small to move the clock (float resolution): finished
                heapq.heappop(heap)
                continue
            done = (until - now) * rate
            now = until
            if done >= work * (1 - 1e-12):
                heapq.heappop(heap)
            else:
                heapq.heapreplace(heap, (deadline, s, work - done))
        if i >= len(order):
            break
        now = max(now, nxt)
        while i < len(order) and order[i].submit_s <= now:
            j = order[i]
            heapq.heappush(heap, (j.submit_s + wait_s + j.runtime_s, seq, j.shape.cpus * j.runtime_s))
            seq += 1
            i += 1
    return lost


def lower_bound(
    jobs: Sequence[Job],
    onprem_cores: int,
    offerings: Sequence[Offering],
    limits: Mapping[str, ProviderLimits],
    wait_target_s: float = 3600.0,
) -> LowerBound:
    considered: list[Job] = []
    onprem_only: list[Job] = []
    for j in jobs:
        (considered if can_burst(j, offerings, limits) else onprem_only).append(j)
    mand = mandatory_excess_s(considered, onprem_cores, wait_target_s, onprem_only) / 3600
    edf = edf_excess_s(considered, onprem_cores, wait_target_s) / 3600
    price, currency = cheapest_price(offerings, limits)
    return LowerBound(max(mand, edf), mand, edf, price, currency, wait_target_s, len(considered))
