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
    combined_core_hours: float = 0.0

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


#: A piecewise-constant function of time: ``(t, value from t on)``, sorted; 0 before the first point.
Profile = list[tuple[float, float]]


def _mandatory_profiles(
    jobs: Sequence[Job], onprem_cores: int, wait_s: float, onprem_only: Sequence[Job]
) -> tuple[Profile, Profile]:
    """``(M(t) − free(t), free(t) − M(t))`` as profiles: M(t) the cores burstable jobs certainly use
    at t, free(t) what on-prem has left once the jobs only it can run certainly use theirs."""
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
    over: Profile = []
    residual: Profile = [(-float("inf"), float(onprem_cores))]
    load = fixed = 0
    for t, delta, delta_fixed in events:
        load += delta
        fixed += delta_fixed
        free = max(0, onprem_cores - fixed)
        over.append((t, float(max(0, load - free))))
        residual.append((t, float(max(0, free - load))))
    return over, residual


def _integral(profile: Profile) -> float:
    return sum(v * (profile[k + 1][0] - t) for k, (t, v) in enumerate(profile[:-1]) if v)


def mandatory_excess_s(jobs: Sequence[Job], onprem_cores: int, wait_s: float, onprem_only: Sequence[Job] = ()) -> float:
    """∫ max(0, M(t) − free(t)) dt in core-seconds (see :func:`_mandatory_profiles`)."""
    return _integral(_mandatory_profiles(jobs, onprem_cores, wait_s, onprem_only)[0])


def _edf_lost(work: Sequence[tuple[float, float, float]], capacity: Profile) -> float:
    """Work a fluid earliest-deadline-first server with time-varying ``capacity`` cannot finish by
    the deadlines; ``work`` is ``(release, deadline, core-seconds)``.  EDF maximises the work a
    single fluid server finishes by the deadlines (any work done counts), so this is the least that
    must be done elsewhere."""
    order = sorted(work)
    heap: list[tuple[float, int, float]] = []  # (deadline, seq, remaining work)
    caps = [*capacity, (float("inf"), 0.0)]
    ci = 0  # caps[ci] holds at `now`
    now, lost, i, seq = -float("inf"), 0.0, 0, 0
    while i < len(order) or heap:
        nxt = order[i][0] if i < len(order) else float("inf")
        while heap and now < nxt:
            while caps[ci + 1][0] <= now:
                ci += 1
            rate, change = caps[ci][1], caps[ci + 1][0]
            deadline, s, left = heap[0]
            if deadline <= now:
                heapq.heappop(heap)
                lost += left
                continue
            until = min(nxt, deadline, change, now + left / rate if rate > 0 else float("inf"))
            if until == float("inf"):  # no capacity ever again: everything queued is lost
                lost += sum(w for _, _, w in heap)
                heap.clear()
                break
            if until <= now:  # too little work to move the clock (float resolution): finished
                heapq.heappop(heap)
                continue
            done = (until - now) * rate
            now = until
            if done >= left * (1 - 1e-12):
                heapq.heappop(heap)
            elif done > 0:
                heapq.heapreplace(heap, (deadline, s, left - done))
        if i >= len(order):
            break
        now = max(now, nxt)
        while i < len(order) and order[i][0] <= now:
            _, deadline, w = order[i]
            heapq.heappush(heap, (deadline, seq, w))
            seq += 1
            i += 1
    return lost


def edf_excess_s(jobs: Sequence[Job], onprem_cores: int, wait_s: float) -> float:
    """Work (core-seconds) a fluid EDF server of rate C cannot finish by the jobs' deadlines."""
    work = [(j.submit_s, j.submit_s + wait_s + j.runtime_s, float(j.shape.cpus * j.runtime_s)) for j in jobs]
    return _edf_lost(work, [(-float("inf"), float(onprem_cores))])


def combined_excess_s(jobs: Sequence[Job], onprem_cores: int, wait_s: float, onprem_only: Sequence[Job] = ()) -> float:
    """Both relaxations at once.  A job started within ``W`` of its submit certainly runs over
    ``[r + W, r + p]`` (its mandatory part, fixed in time); the rest of its work, ``c·min(p, W)``,
    falls somewhere in ``[r, r + W + p]``.  At any time the cloud must run what on-prem cannot:
    ``(M + F − free)⁺ = (M − free)⁺ + (F − (free − M)⁺)⁺`` (exact: one of the two terms is 0), so
    the least bought is the mandatory excess plus what a fluid EDF server with the *residual*
    on-prem capacity ``(free − M)⁺`` leaves of the flexible parts.  Fixing the mandatory parts in
    time only adds constraints to the EDF relaxation, so this is never below either bound alone."""
    over, residual = _mandatory_profiles(jobs, onprem_cores, wait_s, onprem_only)
    flexible = [
        (j.submit_s, j.submit_s + wait_s + j.runtime_s, float(j.shape.cpus * min(j.runtime_s, wait_s))) for j in jobs
    ]
    return _integral(over) + _edf_lost(flexible, residual)


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
    both = combined_excess_s(considered, onprem_cores, wait_target_s, onprem_only) / 3600
    price, currency = cheapest_price(offerings, limits)
    return LowerBound(max(mand, edf, both), mand, edf, price, currency, wait_target_s, len(considered), both)
