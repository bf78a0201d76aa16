"""``kind: composite``: several backlog sources seen as one site (several schedds plus the host
Kubernetes cluster).

Buckets of the same shape are merged (counts add, the oldest wait wins); running work and on-prem
capacity add up.  If any source cannot be read the whole demand is unavailable — and so *stale*
upstream — because a partial sum would look like a shrinking queue and scale capacity down on a
blind tick.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator

from burst.backlog.api import BacklogConfig, BacklogContext, BacklogSource
from burst.errors import BacklogUnavailable, ConfigError
from burst.model import Bucket, Demand, Shape
from burst.registry import config_class


class CompositeBacklogConfig(BacklogConfig):
    kind: Literal["composite"] = "composite"
    sources: list[BacklogConfig] = Field(min_length=1, description="the sources to add up, each with its own kind")

    @field_validator("sources", mode="before")
    @classmethod
    def _typed(cls, raw: Any) -> Any:
        """Each entry is validated by the model its own ``kind`` names."""
        if not isinstance(raw, list):
            return raw
        out = []
        for i, item in enumerate(raw):
            if not isinstance(item, dict):
                out.append(item)
                continue
            kind = item.get("kind")
            if not isinstance(kind, str):
                raise ValueError(f"source {i} needs a kind")
            if kind == "composite":
                raise ValueError(f"source {i}: a composite source cannot contain another composite")
            try:
                out.append(config_class("burst.backlogs", kind).model_validate(item))
            except ValidationError as err:
                e = err.errors()[0]
                field = ".".join(str(x) for x in e["loc"])
                raise ValueError(f"source {i} ({kind}): {field}: {e['msg']}") from None
            except ConfigError as err:
                raise ValueError(f"source {i}: {err}") from None
        return out

    def build(self, ctx: BacklogContext) -> BacklogSource:
        return CompositeSource([s.build(ctx) for s in self.sources])


class CompositeSource:
    def __init__(self, sources: list[BacklogSource]) -> None:
        self.sources = sources
        self.name = "+".join(s.name for s in sources)

    def poll(self) -> Demand:
        demands = []
        for s in self.sources:
            try:
                demands.append(s.poll())
            except BacklogUnavailable as err:
                raise BacklogUnavailable(f"{s.name}: {err}") from err
        return merge_demands(demands)


def merge_demands(demands: list[Demand]) -> Demand:
    buckets: dict[Shape, Bucket] = {}
    for d in demands:
        for b in d.pending:
            cur = buckets.get(b.shape)
            if cur is None:
                buckets[b.shape] = b
            else:
                buckets[b.shape] = Bucket(b.shape, cur.count + b.count, max(cur.oldest_wait_s, b.oldest_wait_s))
    return Demand(
        at=max(d.at for d in demands),
        pending=tuple(buckets.values()),
        running_cores=sum(d.running_cores for d in demands),
        onprem_cores=sum(d.onprem_cores for d in demands),
        onprem_free_cores=sum(d.onprem_free_cores for d in demands),
        stale=any(d.stale for d in demands),
        note="; ".join(d.note for d in demands if d.note),
    )
