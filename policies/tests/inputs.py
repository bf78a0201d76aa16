"""Builders for hand-made policy inputs: demand timelines, fleets, offerings and spend.

Kept deliberately explicit (every number visible at the call site) so a test reads like the
scenario it checks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

from burst.api import (
    Bucket,
    ClusterRecord,
    ClusterState,
    Demand,
    LatencyModel,
    Offering,
    PolicyInput,
    ProviderLimits,
    Shape,
    Spend,
)


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, *, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=UTC)


def offering(
    provider: str,
    *,
    cpus: int = 8,
    price: float = 0.40,
    currency: str = "EUR",
    gpus: int = 0,
    control_plane: float = 0.0,
    latency_s: float = 600.0,
    per_node_s: float = 0.0,
    sigma: float = 0.0,
    min_billed_s: float = 60.0,
    flavor: str = "",
) -> Offering:
    """One flavor; ``sigma=0`` makes the latency model's p90 equal its median, exactly."""
    return Offering(
        provider=provider,
        region="eu",
        flavor=flavor or f"{provider}-{cpus}c{'-gpu' if gpus else ''}",
        cpus=cpus,
        memory_mb=cpus * 4096,
        price_per_hour=price,
        currency=currency,
        gpus=gpus,
        control_plane_per_hour=control_plane,
        latency=LatencyModel(base_s=latency_s, per_node_s=per_node_s, sigma=sigma),
        min_billed_s=min_billed_s,
    )


def demand(
    at: datetime,
    pending_cores: int = 0,
    *,
    onprem: int = 1000,
    running: int | None = None,
    free: int | None = None,
    job_cpus: int = 1,
    gpus: int = 0,
) -> Demand:
    """A demand with ``pending_cores`` pending in one bucket; on-prem full unless told otherwise."""
    pending = (Bucket(Shape(job_cpus, 2048, gpus), pending_cores // job_cpus, 600.0),) if pending_cores else ()
    return Demand(
        at=at,
        pending=pending,
        running_cores=onprem if running is None else running,
        onprem_cores=onprem,
        onprem_free_cores=0 if free is None else free,
    )


def cluster(
    cluster_id: str,
    off: Offering,
    nodes: int,
    *,
    created: datetime,
    state: ClusterState = ClusterState.ACTIVE,
    campaign: str = "",
    desired: int | None = None,
) -> ClusterRecord:
    return ClusterRecord(
        cluster_id=cluster_id,
        provider=off.provider,
        region=off.region,
        flavor=off.flavor,
        cpus_per_node=off.cpus,
        memory_mb_per_node=off.memory_mb,
        gpus_per_node=off.gpus,
        nodes=nodes,
        desired_nodes=nodes if desired is None else desired,
        state=state,
        state_since=created,
        created_at=created,
        price_per_hour=off.price_per_hour,
        control_plane_per_hour=off.control_plane_per_hour,
        currency=off.currency,
        campaign=campaign,
    )


def policy_input(
    now: datetime,
    *,
    offerings: Sequence[Offering] = (),
    fleet: Sequence[ClusterRecord] = (),
    pending: int = 0,
    dem: Demand | None = None,
    spend: Spend | None = None,
    latency: Mapping[str, float] | None = None,
    limits: Mapping[str, ProviderLimits] | None = None,
    backoff: Mapping[str, datetime] | None = None,
) -> PolicyInput:
    return PolicyInput(
        now=now,
        demand=dem if dem is not None else demand(now, pending),
        fleet=list(fleet),
        offerings=list(offerings),
        spend=spend if spend is not None else Spend(currency="EUR"),
        latency_p90_s=dict(latency or {}),
        limits=dict(limits or {}),
        backoff_until=dict(backoff or {}),
    )


def ticks(start: datetime, end: datetime, step: timedelta) -> list[datetime]:
    out, t = [], start
    while t < end:
        out.append(t)
        t += step
    return out
