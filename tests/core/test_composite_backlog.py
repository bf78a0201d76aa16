"""Several backlog sources add up; one unreadable source makes the whole demand unavailable."""

from __future__ import annotations

from pathlib import Path

import pytest

from burst import config
from burst.backlog.api import BacklogContext
from burst.backlog.composite import CompositeBacklogConfig, CompositeSource
from burst.clock import SimClock
from burst.errors import BacklogUnavailable, ConfigError
from burst.model import Bucket, Demand, Shape
from burst.testing.builders import T0, StaticBacklog

ROOT = Path(__file__).resolve().parents[2]


def source(clock: SimClock, buckets: tuple[Bucket, ...], running: int, cores: int, free: int) -> StaticBacklog:
    s = StaticBacklog(clock)
    s.demand = Demand(clock.now(), buckets, running, cores, free)
    return s


def test_buckets_merge_and_capacity_adds_up() -> None:
    clock = SimClock(T0)
    a = source(clock, (Bucket(Shape(1, 2000), 10, 600.0), Bucket(Shape(8, 16000), 2, 60.0)), 50, 100, 10)
    b = source(clock, (Bucket(Shape(1, 2000), 5, 900.0),), 20, 40, 0)
    d = CompositeSource([a, b]).poll()
    by = {x.shape: x for x in d.pending}
    assert by[Shape(1, 2000)].count == 15 and by[Shape(1, 2000)].oldest_wait_s == 900.0
    assert by[Shape(8, 16000)].count == 2
    assert (d.running_cores, d.onprem_cores, d.onprem_free_cores) == (70, 140, 10)
    assert d.pending_cores == 15 + 16


def test_one_unreadable_source_makes_it_all_unavailable() -> None:
    clock = SimClock(T0)
    a = source(clock, (Bucket(Shape(1), 10, 0.0),), 0, 100, 0)
    b = source(clock, (), 0, 40, 40)
    b.fail = True
    with pytest.raises(BacklogUnavailable, match="static: schedd unreachable"):
        CompositeSource([a, b]).poll()


def test_config_validates_each_source_with_its_own_model(tmp_path: Path) -> None:
    trace = ROOT / "examples" / "traces" / "tiny.csv"
    text = (
        "onprem: {cores: 10}\nproviders: {a: {kind: local}}\n"
        f"backlog:\n  kind: composite\n  sources:\n    - {{kind: trace, path: {trace}}}\n"
        f"    - {{kind: trace, path: {trace}, speedup: 2}}\n"
    )
    cfg = config.parse(text, "c.yaml")
    assert isinstance(cfg.backlog, CompositeBacklogConfig) and len(cfg.backlog.sources) == 2
    src = cfg.backlog.build(BacklogContext(SimClock(T0), extras={"onprem_cores": 10}))
    assert src.poll().onprem_cores == 20
    bad = text.replace("speedup: 2", "speedup: -2")
    with pytest.raises(ConfigError, match=r"c.yaml:\d+: backlog.sources: .*source 1 \(trace\): speedup: Input"):
        config.parse(bad, "c.yaml")
