"""The driver of the providers' live end-to-end tests: burst's real engine on a RealClock against a
local server that speaks a cloud's API.

Every provider's ``tests/test_live_e2e.py`` uses it the same way: write the operator's YAML, start
an engine whose backlog the test sets, tick with short real sleeps until a state is reached (or
fail loudly at a deadline, showing the fleet), and — for the crash tests — run the same engine in
its own process (``python -m burst.testing.live CONFIG CORES``) so it can be SIGKILLed mid-create.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from burst.clock import Clock, RealClock
from burst.config import Config, parse
from burst.engine import Engine
from burst.errors import BurstError
from burst.lifecycle import ClusterState
from burst.model import Bucket, Demand, Shape
from burst.store import Store

OWNER = "burst"


class LiveBacklog:
    """``pending`` cores of 8-core jobs on a full 100-core site, read at the clock's time."""

    name = "static"

    def __init__(self, clock: Clock, pending: int = 0) -> None:
        self.clock = clock
        self.demand = Demand(clock.now(), onprem_cores=100, onprem_free_cores=0)
        self.set_pending(pending)

    def set_pending(self, cores: int) -> None:
        buckets = (Bucket(Shape(8, 1000), cores // 8, 600.0),) if cores else ()
        self.demand = Demand(self.clock.now(), buckets, running_cores=100, onprem_cores=100, onprem_free_cores=0)

    def poll(self) -> Demand:
        return replace(self.demand, at=self.clock.now())


def write_config(
    tmp_path: Path,
    providers: dict[str, Any],
    policies: list[dict[str, Any]] | None = None,
    currency: str = "USD",
) -> Config:
    """The operator's YAML, written to a file and loaded the way ``burst run`` loads it."""
    data: dict[str, Any] = {
        "installation": OWNER,
        "state": f"sqlite:///{tmp_path / 'burst.db'}",
        "currency": currency,
        "onprem": {"cores": 100},
        "federation": {"kind": "local", "join_latency": "0s"},
        "providers": providers,
        "policies": [
            {"kind": "backlog", "pending_cores_above": 0, "for": "0s", "idle_after": "1s", "cooldown": "0s"},
            *(policies or []),
        ],
        # an orphan (made by the test beside the store) is adopted at once, not after 10 minutes
        "reconciler": {"tick": "1s", "retry_backoff": "1s", "orphan_grace": "0s"},
    }
    path = tmp_path / "burst.yaml"
    path.write_text(yaml.safe_dump(data))
    return parse(path.read_text(), str(path))


@dataclass
class Live:
    engine: Engine
    backlog: LiveBacklog

    def tick_until(self, done: Callable[[], bool], what: str, timeout: float = 15.0) -> int:
        """Tick with short real sleeps until ``done()``; at the deadline raise, naming the fleet."""
        deadline = time.monotonic() + timeout
        ticks = 0
        while not done():
            if time.monotonic() > deadline:
                fleet = [(c.cluster_id, c.state.value, c.last_error) for c in self.engine.store.all_clusters()]
                raise AssertionError(f"{what}: not reached in {timeout}s after {ticks} ticks; fleet {fleet}")
            self.engine.tick()
            ticks += 1
            time.sleep(0.02)
        return ticks

    def state(self, cluster_id: str) -> ClusterState | None:
        rec = self.engine.store.get(cluster_id)
        return rec.state if rec else None


def start(cfg: Config) -> Live:
    clock = RealClock()
    backlog = LiveBacklog(clock)
    engine = Engine.build(cfg, clock, store=Store(cfg.state_url(), OWNER), backlog=backlog)
    return Live(engine, backlog)


def child_command(config_path: str, pending_cores: int) -> list[str]:
    """The command line of a burst process for crash tests (see :func:`main`)."""
    return [sys.executable, "-m", "burst.testing.live", config_path, str(pending_cores)]


def main(argv: list[str]) -> int:
    """A burst process with a fixed backlog: adopt, then tick until killed (prints a line per tick)."""
    path = Path(argv[0])
    cfg = parse(path.read_text(), str(path))
    clock = RealClock()
    engine = Engine.build(cfg, clock, backlog=LiveBacklog(clock, int(argv[1])))
    engine.reconciler.adopt()
    for _ in range(600):
        try:
            engine.tick()
        except BurstError as err:
            print(f"error {err}", flush=True)
        print("tick", flush=True)
        time.sleep(0.05)
    print("finished", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
