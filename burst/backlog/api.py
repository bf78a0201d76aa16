"""The backlog source contract (DESIGN.md §1).

A source polls the on-prem system and returns a :class:`~burst.model.Demand`, aggregated by
shape so a million idle jobs is a few hundred buckets.  A source that cannot be read raises
:class:`~burst.errors.BacklogUnavailable`; the caller then keeps the last demand marked *stale*
(never a zero demand, which would scale down on a blind tick).

Sources register a :class:`BacklogConfig` subclass under the entry-point group ``burst.backlogs``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from burst.clock import Clock
from burst.model import Demand


@runtime_checkable
class BacklogSource(Protocol):
    name: str

    def poll(self) -> Demand:
        """The current demand; raises BacklogUnavailable when the system cannot be read."""
        ...


@dataclass(frozen=True)
class BacklogContext:
    clock: Clock
    config_dir: str = "."
    extras: Mapping[str, object] = field(default_factory=dict)


class BacklogConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str

    def build(self, ctx: BacklogContext) -> BacklogSource:  # pragma: no cover - abstract
        raise NotImplementedError
