"""Builders for tests and benchmarks: a config from a few keys, an engine on a simulated clock."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import yaml

from burst import config as config_mod
from burst.backlog.api import BacklogSource
from burst.clock import SimClock
from burst.engine import Engine
from burst.model import Demand
from burst.store import Store

T0 = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)


def make_config(overrides: Mapping[str, Any] | None = None, path: str = "<test>") -> config_mod.Config:
    """A valid config: 100 on-prem cores, one local AWS-like provider, the backlog policy."""
    data: dict[str, Any] = {
        "installation": "burst",
        "onprem": {"cores": 100},
        "providers": {"aws": {"kind": "local", "cloud": "aws", "max_nodes": 20, "nodes_per_cluster": 4}},
        "policies": [{"kind": "backlog", "pending_cores_above": 0, "for": "0s", "idle_after": "10m", "cooldown": "0s"}],
        "reconciler": {"tick": "1m"},
    }
    for k, v in (overrides or {}).items():
        data[k] = v
    return config_mod.parse(yaml.safe_dump(data), path)


class StaticBacklog:
    """A backlog source whose demand the test sets; ``fail`` makes it unreadable."""

    name = "static"

    def __init__(self, clock: SimClock) -> None:
        self.clock = clock
        self.demand = Demand(clock.now(), onprem_cores=100, onprem_free_cores=0)
        self.fail = False

    def poll(self) -> Demand:
        from dataclasses import replace

        from burst.errors import BacklogUnavailable

        if self.fail:
            raise BacklogUnavailable("schedd unreachable (test)")
        return replace(self.demand, at=self.clock.now())


def make_engine(
    cfg: config_mod.Config,
    clock: SimClock,
    store: Store | None = None,
    backlog: BacklogSource | None = None,
    extras: Mapping[str, object] | None = None,
) -> Engine:
    store = store or Store("sqlite://", cfg.file.installation)
    return Engine.build(cfg, clock, store=store, backlog=backlog or StaticBacklog(clock), extras=extras)
