"""The HTCondor backlog source: idle and running jobs of one or more schedds, capacity from the
collector.

Idle jobs are read the way ``condor_q -autocluster`` shows them: the schedd groups them into
autoclusters (one ad per group of jobs with the same significant attributes, with ``JobCount``),
so a million idle jobs come back as a few hundred ads.  burst evaluates each ad's
``RequestCpus``/``RequestMemory``/``RequestGPUs`` (expressions included) into a
:class:`~burst.model.Shape` and merges equal shapes across autoclusters and schedds.

The oldest wait per bucket comes from a second, plain job query projected to
``AutoClusterId``/``QDate`` (folded as it streams, bounded by ``max_job_scan``).  Running cores
come from the autoclusters of running jobs.  On-prem capacity comes from the collector's startd
ads (partitionable slots count once; their dynamic slots are carved out of them).

Every schedd must answer: a partial demand would look like a shrinking queue, so one unreachable
schedd or one malformed ad makes the whole poll raise :class:`~burst.api.BacklogUnavailable`
(the caller keeps the last demand, marked stale).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import classad2
from pydantic import Field, field_validator, model_validator

from burst import condor
from burst.api import MAX_CORES, BacklogConfig, BacklogContext, BacklogUnavailable, Bucket, Clock, Demand, Shape

log = logging.getLogger(__name__)

#: HTCondor's own default when a job says nothing: ``RequestCpus = 1``.
DEFAULT_REQUEST_CPUS = 1
#: HTCondor's ``JOB_DEFAULT_REQUESTMEMORY`` is ``ifThenElse(MemoryUsage =!= undefined,
#: MemoryUsage, 128)``: 128 MB for a job that never ran.
DEFAULT_REQUEST_MEMORY_MB = 128
#: Past this a number in an ad is malformed, not large: sums of them must fit SQLite's integers.
MAX_AD_NUMBER = 10**12
#: Excludes burst's own startds (they carry ``BurstCluster``) from on-prem capacity.
NOT_BURST = "BurstCluster =?= undefined"

_GROUP = re.compile(r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$")


class HTCondorBacklogConfig(BacklogConfig):
    """``backlog: {kind: htcondor, schedds: [...], collector: host:9618, ...}``."""

    kind: Literal["htcondor"] = "htcondor"
    schedds: list[str] = Field(
        min_length=1,
        description="schedd names (located through the collector) or addresses (host:port / <sinful>)",
    )
    collector: str | None = Field(
        default=None, description="collector host:port; needed for on-prem capacity and for schedds given by name"
    )
    constraint: str | None = Field(default=None, description="ClassAd expression ANDed to every job query")
    accounting_groups: list[str] | None = Field(
        default=None,
        description="only jobs of these accounting groups (and their subgroups), e.g. [group_atlas, group_cms.prod]",
    )
    startd_constraint: str | None = Field(
        default=None, description="ClassAd expression selecting the on-prem startds (burst's own are always excluded)"
    )
    default_request_memory_mb: int = Field(
        default=DEFAULT_REQUEST_MEMORY_MB,
        ge=1,
        description="memory of a job whose RequestMemory is missing or undefined",
    )
    max_job_scan: int = Field(
        default=200_000, ge=0, description="most idle job ads read per schedd for the oldest wait (0: skip the scan)"
    )

    @model_validator(mode="before")
    @classmethod
    def _single_schedd(cls, data: Any) -> Any:
        """Accept ``schedd: host`` (one schedd, as DESIGN.md's example writes it) as ``schedds``."""
        if isinstance(data, dict) and "schedd" in data:
            data = dict(data)
            one = data.pop("schedd")
            if "schedds" in data:
                raise ValueError("give either schedd or schedds, not both")
            data["schedds"] = [one] if isinstance(one, str) else one
        return data

    @model_validator(mode="after")
    def _names_need_a_collector(self) -> HTCondorBacklogConfig:
        names = [s for s in self.schedds if not condor.is_address(s)]
        if names and self.collector is None:
            raise ValueError(f"schedd {names[0]!r} is a name: give a collector to locate it, or its address host:port")
        return self

    @field_validator("constraint", "startd_constraint")
    @classmethod
    def _expression(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                condor.check_expression(value)
            except condor.MalformedAdError as err:
                raise ValueError(str(err)) from err
        return value

    @field_validator("accounting_groups")
    @classmethod
    def _groups(cls, value: list[str] | None) -> list[str] | None:
        for group in value or []:
            if not _GROUP.match(group):
                raise ValueError(f"not an accounting group name: {group!r}")
        return value

    def build(self, ctx: BacklogContext) -> HTCondorBacklog:
        connector = ctx.extras.get("htcondor.connector")
        if connector is None:
            connector = condor.HTCondorConnector()
        return HTCondorBacklog(self, clock=ctx.clock, connector=connector)  # type: ignore[arg-type]


def group_constraint(groups: Sequence[str] | None) -> str | None:
    """Jobs whose ``AccountingGroup`` (``group.subgroup.user``) or ``AcctGroup`` is one of
    ``groups`` or below it.  Evaluated by the schedd, so autocluster counts stay exact."""
    if not groups:
        return None
    alternatives = "|".join(re.escape(g) for g in groups).replace("\\", "\\\\")
    pattern = f'"^({alternatives})(\\\\.|$)"'
    return f'regexp({pattern}, AccountingGroup ?: AcctGroup ?: "")'


@dataclass(frozen=True, slots=True)
class Capacity:
    cores: int
    free_cores: int


def _number(ad: classad2.ClassAd, attr: str, default: int, *, where: str) -> int:
    """An attribute evaluated in its ad, as a whole number; HTCondor's default when missing or
    undefined; MalformedAdError when it is something else (a string, an error value, negative)."""
    if attr not in ad:
        return default
    try:
        value = ad.eval(attr)
    except (KeyError, ValueError, classad2.ClassAdException) as err:
        raise condor.MalformedAdError(f"{where}: {attr} cannot be evaluated: {err}") from err
    if value is classad2.Value.Undefined:
        return default
    # classad2.Value (Error, Undefined) is an IntEnum: test for it before testing for a number.
    if (
        isinstance(value, classad2.Value | bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
        or value > MAX_AD_NUMBER
    ):
        raise condor.MalformedAdError(
            f"{where}: {attr} = {_short(ad.lookup(attr))} is not a number from 0 to {MAX_AD_NUMBER:.0e}"
        )
    return math.ceil(value)


def _short(value: object) -> str:
    text = " ".join(str(value).split())  # a nested ClassAd value prints on several lines
    return text if len(text) <= 60 else text[:57] + "..."


def shape_of(ad: classad2.ClassAd, *, where: str, default_memory_mb: int = DEFAULT_REQUEST_MEMORY_MB) -> Shape:
    """The shape a job (or autocluster) ad asks for, with HTCondor's defaults for what is missing."""
    cpus = _number(ad, "RequestCpus", DEFAULT_REQUEST_CPUS, where=where)
    memory = _number(ad, "RequestMemory", default_memory_mb, where=where)
    gpus = _number(ad, "RequestGPUs", 0, where=where)
    if cpus > MAX_CORES:
        raise condor.MalformedAdError(f"{where}: RequestCpus = {cpus} is more than any machine has")
    return Shape(cpus=max(cpus, 1), memory_mb=memory, gpus=gpus)


def _one_line(text: str) -> str:
    """An ad's value printed into an error (a list's repr spans lines): errors stay one line."""
    return " ".join(text.split())


def job_count(ad: classad2.ClassAd, *, where: str) -> int:
    """``JobCount`` of an autocluster ad; an autocluster ad without one is malformed."""
    if "JobCount" not in ad:
        raise condor.MalformedAdError(f"{where}: autocluster ad has no JobCount")
    return _number(ad, "JobCount", 0, where=where)


def aggregate(
    ads: Sequence[tuple[str, classad2.ClassAd]],
    oldest_qdate: dict[tuple[str, int], int],
    now_ts: float,
    *,
    default_memory_mb: int = DEFAULT_REQUEST_MEMORY_MB,
) -> tuple[Bucket, ...]:
    """Buckets from autocluster ads of idle jobs (``(schedd, ad)`` pairs), equal shapes merged.

    The oldest wait of a bucket is the largest over its autoclusters, from the QDate scan
    (``(schedd, AutoClusterId) → QDate``) or, failing that, the ad's own ``QDate``.
    """
    counts: dict[Shape, int] = {}
    waits: dict[Shape, float] = {}
    for schedd, ad in ads:
        acid = ad.get("AutoClusterId")
        where = _one_line(f"schedd {schedd}: autocluster {acid if acid is not None else '?'}")
        count = job_count(ad, where=where)
        if count == 0:
            continue
        shape = shape_of(ad, where=where, default_memory_mb=default_memory_mb)
        qdate: float | None = None
        if isinstance(acid, int) and (schedd, acid) in oldest_qdate:
            qdate = oldest_qdate[(schedd, acid)]
        elif "QDate" in ad:
            qdate = _number(ad, "QDate", 0, where=where) or None
        wait = max(0.0, now_ts - qdate) if qdate else 0.0
        counts[shape] = counts.get(shape, 0) + count
        waits[shape] = max(waits.get(shape, 0.0), wait)
    return tuple(Bucket(shape=s, count=counts[s], oldest_wait_s=waits[s]) for s in sorted(counts))


def running_cores(ads: Sequence[tuple[str, classad2.ClassAd]]) -> int:
    """Cores held by running jobs: Σ RequestCpus × JobCount over autoclusters of running jobs."""
    total = 0
    for schedd, ad in ads:
        where = _one_line(f"schedd {schedd}: running autocluster {ad.get('AutoClusterId', '?')}")
        total += _number(ad, "RequestCpus", DEFAULT_REQUEST_CPUS, where=where) * job_count(ad, where=where)
    return total


def _truthy(ad: classad2.ClassAd, attr: str) -> bool:
    if attr not in ad:
        return False
    try:
        return ad.eval(attr) is True
    except (KeyError, ValueError, classad2.ClassAdException):
        return False


def slot_kind(ad: classad2.ClassAd) -> str:
    """``Partitionable``, ``Dynamic`` or ``Static``, from ``SlotType`` or the older booleans."""
    kind = ad.get("SlotType")
    if isinstance(kind, str) and kind in ("Partitionable", "Dynamic", "Static"):
        return kind
    if _truthy(ad, "PartitionableSlot"):
        return "Partitionable"
    if _truthy(ad, "DynamicSlot"):
        return "Dynamic"
    return "Static"


def capacity(ads: Sequence[classad2.ClassAd]) -> Capacity:
    """On-prem cores and free cores from startd (slot) ads.

    A partitionable slot owns ``TotalSlotCpus`` (``TotalCpus`` on older startds) and still has
    ``Cpus`` unclaimed; its dynamic slots are carved out of it, so they are not counted again.
    A static slot counts its ``Cpus`` and is free when Unclaimed.  A draining slot takes no new
    work, so it has no free cores.
    """
    cores = free = 0
    for ad in ads:
        where = f"startd {condor.ad_name(ad)}"
        kind = slot_kind(ad)
        if kind == "Dynamic":
            continue
        cpus = _number(ad, "Cpus", 0, where=where)
        if kind == "Partitionable":
            total = _number(ad, "TotalSlotCpus", -1, where=where)
            if total < 0:
                total = _number(ad, "TotalCpus", cpus, where=where)
            cores += total
            unclaimed = cpus
        else:
            cores += cpus
            unclaimed = cpus if ad.get("State") == "Unclaimed" else 0
        if not _truthy(ad, "Draining") and ad.get("State") not in ("Owner", "Drained"):
            free += unclaimed
    return Capacity(cores=cores, free_cores=free)


class HTCondorBacklog:
    """A :class:`~burst.api.BacklogSource` over one or more schedds and a collector."""

    name = "htcondor"

    def __init__(self, config: HTCondorBacklogConfig, *, clock: Clock, connector: condor.Connector) -> None:
        self._config = config
        self._clock = clock
        self._connector = connector
        user = (config.constraint, group_constraint(config.accounting_groups))
        self._idle = condor.and_constraint(f"JobStatus == {condor.IDLE}", *user)
        self._running = condor.and_constraint(f"JobStatus == {condor.RUNNING}", *user)
        self._startds = condor.and_constraint(NOT_BURST, config.startd_constraint)

    @property
    def idle_constraint(self) -> str:
        return self._idle

    def poll(self) -> Demand:
        """The demand of every schedd together, or BacklogUnavailable naming what failed."""
        now = self._clock.now()
        collector = self._open_collector()
        idle: list[tuple[str, classad2.ClassAd]] = []
        running: list[tuple[str, classad2.ClassAd]] = []
        oldest: dict[tuple[str, int], int] = {}
        failed: list[str] = []
        for name in self._config.schedds:
            try:
                schedd = self._connector.schedd(name, collector)
                where = f"schedd {name}"
                idle += [(name, ad) for ad in condor.autoclusters(schedd, self._idle, where=where)]
                running += [(name, ad) for ad in condor.autoclusters(schedd, self._running, where=where)]
                if self._config.max_job_scan:
                    scan = condor.oldest_qdates(schedd, self._idle, where=where, limit=self._config.max_job_scan)
                    oldest.update({(name, acid): q for acid, q in scan.items()})
            except condor.CondorError as err:
                log.warning("htcondor backlog: %s", err)
                failed.append(f"{name} ({err})")
        if failed:
            raise BacklogUnavailable(f"htcondor: cannot read schedd {'; '.join(failed)}")
        try:
            pending = aggregate(idle, oldest, now.timestamp(), default_memory_mb=self._config.default_request_memory_mb)
            run = running_cores(running)
            cap = self._capacity(collector)
        except condor.MalformedAdError as err:
            log.error("htcondor backlog: malformed ClassAd, demand kept stale: %s", err)
            raise BacklogUnavailable(f"htcondor: malformed ClassAd: {err}") from err
        note = f"{sum(b.count for b in pending)} idle jobs in {len(pending)} buckets from {len(idle)} autoclusters"
        return Demand(
            at=now,
            pending=pending,
            running_cores=run,
            onprem_cores=cap.cores if cap else 0,
            onprem_free_cores=cap.free_cores if cap else 0,
            note=note,
        )

    def _open_collector(self) -> condor.CollectorLike | None:
        if self._config.collector is None:
            return None
        try:
            return self._connector.collector(self._config.collector)
        except condor.CondorError as err:
            raise BacklogUnavailable(f"htcondor: {err}") from err

    def _capacity(self, collector: condor.CollectorLike | None) -> Capacity | None:
        if collector is None:
            return None
        where = f"collector {self._config.collector}"
        try:
            ads = condor.startd_ads(collector, self._startds, where=where)
        except condor.CondorError as err:
            log.warning("htcondor backlog: %s", err)
            raise BacklogUnavailable(f"htcondor: cannot read {where}: {err}") from err
        return capacity(ads)
