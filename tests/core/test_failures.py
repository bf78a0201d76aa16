"""Issue 12: no create loops under any persistent fault, honest money, safe orphans.

Every fault is injected into the local cloud (the same provider a season runs on) and the real
engine, reconciler and store run on a simulated clock.
"""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from burst_local import LocalProvider
from prometheus_client import CollectorRegistry

from burst.clock import SimClock
from burst.engine import Engine
from burst.errors import InstallationConflict, ProviderError
from burst.lifecycle import ClusterState
from burst.metrics import BurstMetrics
from burst.model import Bucket, Demand, Job, Shape, Trace
from burst.reconciler import provider_delay
from burst.simulate import simulate
from burst.store import Store
from burst.testing.builders import T0, StaticBacklog, make_config, make_engine

S = ClusterState
FAULTS: dict[str, dict[str, Any]] = {
    "quota_exceeded": {"kind": "quota_exceeded"},
    "capacity_unavailable": {"kind": "capacity_unavailable"},
    "throttled": {"kind": "throttled"},
    "auth_failed": {"kind": "auth_failed"},
    "provisioning_fails": {"kind": "provisioning_fails"},
    "stuck": {"kind": "slow_provisioning", "factor": 20},
}
#: the faults the cloud answers on the create call itself: nothing is made, nothing billed
REFUSED = {"quota_exceeded", "capacity_unavailable", "throttled", "auth_failed"}


def local(engine: Engine, name: str) -> LocalProvider:
    p = engine.providers[name]
    assert isinstance(p, LocalProvider)
    return p


def want(backlog: StaticBacklog, cores: int) -> None:
    buckets = (Bucket(Shape(8, 1000), cores // 8, 600.0),) if cores else ()
    backlog.demand = Demand(backlog.clock.now(), buckets, running_cores=100, onprem_cores=100, onprem_free_cores=0)


def engine_with(providers: dict[str, Any], **reconciler: Any) -> tuple[Engine, SimClock, StaticBacklog]:
    clock = SimClock(T0)
    backlog = StaticBacklog(clock)
    cfg = make_config(
        {"providers": providers, "reconciler": {"tick": "1m", "provisioning_timeout": "30m", **reconciler}}
    )
    return make_engine(cfg, clock, backlog=backlog, extras={"executor": None}), clock, backlog


def probes_allowed(minutes: int, first: float = 1, cap: float = 30) -> int:
    """Create calls a provider with a persistent fault may get in ``minutes``: one per back-off
    window (first, doubling, capped), each window following the failure it starts with."""
    n, t, delay = 0, 0.0, first
    while t <= minutes:
        n += 1
        t += delay
        delay = min(delay * 2, cap)
    return n


def test_backoff_grows_from_first_to_cap_with_bounded_jitter() -> None:
    first, cap = timedelta(minutes=1), timedelta(minutes=30)
    delays = [provider_delay("gce", a, first, cap) for a in range(1, 10)]
    assert delays == sorted(delays) and delays[0] >= first and delays[-1] == cap
    for a, d in enumerate(delays[:5], start=1):
        assert first * 2 ** (a - 1) <= d <= first * 2 ** (a - 1) * 1.1
    assert provider_delay("gce", 3, first, cap) == provider_delay("gce", 3, first, cap)  # deterministic


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_single_provider_persistent_fault_costs_one_probe_per_backoff_window(fault: str) -> None:
    eng, clock, backlog = engine_with(
        {"aws": {"kind": "local", "cloud": "aws", "max_nodes": 16, "nodes_per_cluster": 4, "faults": [FAULTS[fault]]}}
    )
    want(backlog, 128)  # four clusters' worth, for six hours
    kinds: set[str] = set()
    minutes = 360
    for _ in range(minutes):
        clock.advance(60)
        kinds.update(k for _c, k, _m in eng.tick().step.errors)
    p = local(eng, "aws")
    # A slow (stuck) create keeps its cluster up to the timeout: one create per timeout + back-off.
    allowed = probes_allowed(minutes) if fault != "stuck" else math.ceil(minutes / 30) + 1
    assert 0 < p.create_requests <= allowed, (p.create_requests, allowed)
    assert kinds, "the fault was never reported"
    backoff = eng.store.backoff("aws")
    assert backoff is not None and backoff.attempts >= 4
    # Clusters planned beside a probe that failed are never sent (no call, no cost).
    assert sum(1 for c in eng.store.all_clusters() if c.requested_at is not None) <= p.create_requests
    if fault in REFUSED:
        assert eng.store.ledger() == [], "a refused create costs nothing"
        assert eng.store.total_cost(clock.now()) == 0


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_faulty_provider_falls_back_and_needed_clusters_cost_at_most_two_creates(fault: str) -> None:
    eng, clock, backlog = engine_with(
        {
            # gce is cheaper, so placement tries it first every time it is not backing off
            "gce": {
                "kind": "local",
                "cloud": "gce",
                "max_nodes": 16,
                "nodes_per_cluster": 4,
                "faults": [FAULTS[fault]],
            },
            "aws": {"kind": "local", "cloud": "aws", "max_nodes": 16, "nodes_per_cluster": 4},
        }
    )
    want(backlog, 128)
    minutes = 360
    for _ in range(minutes):
        clock.advance(60)
        eng.tick()
    aws, gce = local(eng, "aws"), local(eng, "gce")
    ready = [c for c in eng.store.all_clusters() if c.ready_at is not None]
    assert ready and all(c.provider == "aws" for c in ready)
    assert sum(c.desired_cores for c in eng.store.fleet() if c.state is S.ACTIVE) >= 128
    assert aws.create_requests <= 2 * len(ready)
    allowed = probes_allowed(minutes) if fault != "stuck" else math.ceil(minutes / 30) + 4
    assert gce.create_requests <= allowed, (gce.create_requests, allowed)
    if fault in REFUSED:
        assert all(s.provider == "aws" for s in eng.store.ledger())


def test_errors_of_every_fallback_pass_reach_the_tick_result_and_metrics() -> None:
    eng, clock, backlog = engine_with(
        {
            "gce": {
                "kind": "local",
                "cloud": "gce",
                "max_nodes": 8,
                "nodes_per_cluster": 4,
                "faults": [{"kind": "quota_exceeded"}],
            },
            "aws": {
                "kind": "local",
                "cloud": "aws",
                "max_nodes": 8,
                "nodes_per_cluster": 4,
                "faults": [{"kind": "capacity_unavailable"}],
            },
            "tsystems": {"kind": "local", "cloud": "tsystems", "max_nodes": 8, "nodes_per_cluster": 4},
        }
    )
    want(backlog, 32)
    clock.advance(60)
    res = eng.tick()
    assert res.replans == 2
    assert sorted(k for _c, k, _m in res.step.errors) == ["CapacityUnavailable", "QuotaExceeded"]
    assert set(res.step.backoffs) == {"gce", "aws"}
    assert {c.provider for c in eng.store.fleet() if c.state is S.PROVISIONING} == {"tsystems"}
    m = BurstMetrics(CollectorRegistry())
    m.observe_tick(eng, res)
    got = m.registry.get_sample_value
    assert got("burst_errors_total", {"provider": "gce", "kind": "QuotaExceeded"}) == 1
    assert got("burst_errors_total", {"provider": "aws", "kind": "CapacityUnavailable"}) == 1
    assert got("burst_provider_backoff_seconds", {"provider": "gce"}) == pytest.approx(60, rel=0.11)
    assert got("burst_provider_backoff_seconds", {"provider": "tsystems"}) == 0


def test_backoff_survives_a_restart_and_resets_on_success(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'b.db'}"
    end = (T0 + timedelta(minutes=20)).isoformat()
    providers = {
        "aws": {
            "kind": "local",
            "cloud": "aws",
            "max_nodes": 4,
            "nodes_per_cluster": 4,
            "faults": [{"kind": "capacity_unavailable", "end": end}],
        }
    }
    clock = SimClock(T0)
    backlog = StaticBacklog(clock)
    cfg = make_config({"providers": providers})
    eng = make_engine(cfg, clock, Store(url, "burst"), backlog, {"executor": None})
    want(backlog, 32)
    for _ in range(8):  # failures at 1, ~2-3, ~4-7 min: three in a row
        clock.advance(60)
        eng.tick()
    before = eng.store.backoff("aws")
    assert before is not None and before.attempts == 3 and before.kind == "CapacityUnavailable"
    eng.store.close()
    store2 = Store(url, "burst")
    assert store2.backoff("aws") == before  # the restart resumes the growing delay
    eng2 = make_engine(cfg, clock, store2, backlog, {"executor": None})
    for _ in range(40):
        clock.advance(60)
        eng2.tick()
    assert any(c.state is S.ACTIVE for c in eng2.store.fleet())
    assert eng2.store.backoff("aws") is None  # the provider delivered: the next failure starts afresh


def _trace(days: int) -> Trace:
    """Every 3 hours, 30 jobs of 8 cores for an hour: more than the 100 on-prem cores hold."""
    jobs = [Job(i * 30 + k, i * 3 * 3600.0, 3600.0, Shape(8, 2000)) for i in range(days * 8) for k in range(30)]
    return Trace("synthetic", T0, jobs)


def test_a_season_at_quota_bills_nothing_and_creates_a_bounded_number_of_clusters() -> None:
    cfg = make_config(
        {
            "providers": {
                "aws": {
                    "kind": "local",
                    "cloud": "aws",
                    "max_nodes": 16,
                    "nodes_per_cluster": 4,
                    "faults": [{"kind": "quota_exceeded"}],  # the account is at quota all season
                }
            },
            "simulation": {"tick": "1m", "drain_horizon": "2h"},
        }
    )
    summary, _ = simulate(cfg, _trace(3))
    assert summary.cost_total == 0 and summary.clusters_ready == 0
    minutes = summary.sim_seconds / 60
    assert 0 < summary.create_requests <= probes_allowed(int(minutes))
    assert summary.errors_by_type.get("QuotaExceeded", 0) == summary.create_requests
    assert summary.killed_jobs == 0 and summary.leaked_clusters == 0


def test_season_with_a_faulty_and_a_healthy_provider_needs_at_most_two_creates_per_cluster() -> None:
    cfg = make_config(
        {
            "providers": {
                "gce": {
                    "kind": "local",
                    "cloud": "gce",
                    "max_nodes": 16,
                    "nodes_per_cluster": 4,
                    "faults": [{"kind": "throttled"}],
                },
                "aws": {"kind": "local", "cloud": "aws", "max_nodes": 16, "nodes_per_cluster": 4},
            },
            "simulation": {"tick": "1m", "drain_horizon": "2h"},
        }
    )
    summary, store = simulate(cfg, _trace(3), keep_store=True)
    minutes = int(summary.sim_seconds / 60)
    assert summary.clusters_ready > 0 and summary.never_started == 0
    assert summary.create_requests <= 2 * summary.clusters_ready + probes_allowed(minutes)
    assert summary.errors_by_type["Throttled"] <= probes_allowed(minutes)
    assert all(s.provider == "aws" for s in store.ledger())
    assert summary.killed_jobs == 0 and summary.leaked_clusters == 0
    store.close()


# --- orphans ---------------------------------------------------------------------------------------


def test_a_failed_listing_is_reported_and_retried_never_forgotten() -> None:
    eng, clock, _ = engine_with({"aws": {"kind": "local", "cloud": "aws", "max_nodes": 4, "nodes_per_cluster": 4}})
    p = local(eng, "aws")
    p.adopt_foreign_for_tests("burst-aws-09999", {"burst.owner": "burst", "burst.cluster": "burst-aws-09999"})
    real = p.list_clusters
    failures = {"left": 3}

    def flaky(owner: str) -> Any:
        if failures["left"]:
            failures["left"] -= 1
            raise ProviderError("listing clusters: connection reset")
        return real(owner)

    p.list_clusters = flaky  # type: ignore[method-assign]
    errors = []
    for _ in range(3):
        clock.advance(60)
        errors += [m for _c, _k, m in eng.tick().step.errors]
    assert len(errors) == 3 and all("listing aws for orphans" in m for m in errors)
    adopted = []
    for _ in range(15):
        clock.advance(60)
        adopted += eng.tick().step.orphans_removed
    assert adopted == ["burst-aws-09999"]
    for _ in range(10):
        clock.advance(60)
        eng.tick()
    assert eng.store.get("burst-aws-09999").state is S.REMOVED  # type: ignore[union-attr]


def test_a_cluster_another_process_just_recorded_is_not_an_orphan(tmp_path: Path) -> None:
    """`burst apply` beside the daemon: its in-memory fleet predates the daemon's new cluster."""
    url = f"sqlite:///{tmp_path / 'b.db'}"
    state = str(tmp_path / "cloud.json")
    providers = {"aws": {"kind": "local", "cloud": "aws", "max_nodes": 4, "nodes_per_cluster": 4, "state_file": state}}
    cfg = make_config({"providers": providers, "reconciler": {"tick": "1m", "orphan_grace": "0s"}})
    clock = SimClock(T0)
    daemon_backlog, apply_backlog = StaticBacklog(clock), StaticBacklog(clock)
    daemon = make_engine(cfg, clock, Store(url, "burst"), daemon_backlog, {"executor": None})
    apply = make_engine(cfg, clock, Store(url, "burst"), apply_backlog, {"executor": None})
    want(daemon_backlog, 32)
    want(apply_backlog, 32)
    clock.advance(60)
    daemon.tick()
    [cid] = [c.cluster_id for c in daemon.store.fleet()]
    assert apply.store.fleet() == []  # its view is stale …
    assert apply.reconciler.adopt().orphans_removed == []  # … but the store is read afresh
    assert ("delete_cluster", cid) not in local(apply, "aws").calls


def test_a_second_installation_under_the_same_name_is_refused(tmp_path: Path) -> None:
    state = str(tmp_path / "cloud.json")
    providers = {"aws": {"kind": "local", "cloud": "aws", "max_nodes": 4, "nodes_per_cluster": 4, "state_file": state}}
    cfg = make_config({"providers": providers})
    clock = SimClock(T0)
    first_backlog = StaticBacklog(clock)
    first = make_engine(cfg, clock, Store(f"sqlite:///{tmp_path / 'a.db'}", "burst"), first_backlog, {"executor": None})
    # A leftover of a lost store, made before either store was claimed: an orphan, not a conflict.
    local(first, "aws").adopt_foreign_for_tests(
        "burst-aws-00777",
        {"burst.owner": "burst", "burst.cluster": "burst-aws-00777", "burst.store": "0ld5t0re"},
        created=first.store.claimed_at - timedelta(days=3),
    )
    clock.advance(60)
    first.tick()
    second_backlog = StaticBacklog(clock)
    second = make_engine(
        cfg, clock, Store(f"sqlite:///{tmp_path / 'b.db'}", "burst"), second_backlog, {"executor": None}
    )
    want(second_backlog, 32)
    clock.advance(60)
    second.tick()  # the second installation (another store, same name) creates a cluster
    [theirs] = [c.cluster_id for c in second.store.fleet()]
    clock.advance(11 * 60)  # the next listing of the account
    with pytest.raises(InstallationConflict, match=r"another store made it .*refusing to act"):
        first.tick()
    with pytest.raises(InstallationConflict):
        first.tick()  # and keeps refusing
    assert ("delete_cluster", theirs) not in local(first, "aws").calls
    assert first.store.get(theirs) is None


def test_budget_hard_stop_is_opt_in_and_announced_before_it_acts() -> None:
    def cfg(hard_stop: bool | None) -> Any:
        budget: dict[str, Any] = {"kind": "budget", "monthly": "5 EUR", "horizon": "1h"}
        if hard_stop is not None:
            budget["hard_stop"] = hard_stop
        return make_config(
            {
                "policies": [
                    {"kind": "backlog", "pending_cores_above": 0, "for": "0s", "idle_after": "10m", "cooldown": "0s"},
                    budget,
                ]
            }
        )

    for hard_stop in (None, True):
        clock = SimClock(T0)
        backlog = StaticBacklog(clock)
        eng = make_engine(cfg(hard_stop), clock, backlog=backlog, extras={"executor": None})
        want(backlog, 32)
        m = BurstMetrics(CollectorRegistry())
        deadlines, notes = [], []
        for _ in range(600):
            clock.advance(60)
            res = eng.tick()
            m.observe_tick(eng, res)
            deadlines += [d.deadline for d in res.plan.decision.drains if d.deadline is not None]
            notes += [n for n in res.plan.decision.notes if "HARD STOP" in n]
            if deadlines:
                break
        if hard_stop is None:  # the default: drains, never a deadline
            assert deadlines == [] and notes == []
            assert m.registry.get_sample_value("burst_budget_hard_stop_timestamp_seconds", {"policy": "budget"}) is None
        else:
            assert deadlines and notes, "the hard stop is announced in the plan"
            assert all(d > clock.now() for d in deadlines) or deadlines[0] >= clock.now()
            got = m.registry.get_sample_value("burst_budget_hard_stop_timestamp_seconds", {"policy": "budget"})
            assert got == min(deadlines).timestamp()  # type: ignore[type-var]


def test_status_page_shows_backoffs_and_the_announced_hard_stop() -> None:
    from burst.status import StatusPage

    eng, clock, backlog = engine_with(
        {
            "gce": {
                "kind": "local",
                "cloud": "gce",
                "max_nodes": 8,
                "nodes_per_cluster": 4,
                "faults": [{"kind": "quota_exceeded"}],
            },
            "aws": {"kind": "local", "cloud": "aws", "max_nodes": 8, "nodes_per_cluster": 4},
        }
    )
    want(backlog, 32)
    for _ in range(30):
        clock.advance(60)
        eng.tick()
    [rec] = [c for c in eng.store.fleet() if c.state is S.ACTIVE]
    deadline = clock.now() + timedelta(hours=2)
    eng.reconciler.release(rec, "budget nearly spent", deadline)
    eng.store.set_backoff("gce", clock.now() + timedelta(minutes=20), "QuotaExceeded: quota exceeded (injected)", 5)
    page = StatusPage(eng.store, eng.cfg, clock).render()
    assert f"DRAINING (hard stop {deadline:%Y-%m-%d %H:%M})" in page
    assert "gce: avoided until" in page and "after 5 failed create(s) in a row" in page


def test_a_failed_orphan_delete_is_reported_and_retried_until_gone() -> None:
    eng, clock, _ = engine_with(
        {"aws": {"kind": "local", "cloud": "aws", "max_nodes": 4, "nodes_per_cluster": 4}}, orphan_grace="0s"
    )
    p = local(eng, "aws")
    p.adopt_foreign_for_tests("burst-aws-09999", {"burst.owner": "burst", "burst.cluster": "burst-aws-09999"})
    real = p.delete_cluster
    failures = {"left": 2}

    def flaky(cluster_id: str) -> Any:
        if failures["left"]:
            failures["left"] -= 1
            raise ProviderError(f"deleting {cluster_id}: connection reset")
        return real(cluster_id)

    p.delete_cluster = flaky  # type: ignore[method-assign]
    errors = []
    for _ in range(60):
        clock.advance(60)
        errors += [(c, m) for c, _k, m in eng.tick().step.errors]
    assert [c for c, _m in errors] == ["burst-aws-09999", "burst-aws-09999"]
    assert eng.store.get("burst-aws-09999").state is S.REMOVED  # type: ignore[union-attr]
    assert "burst-aws-09999" not in [c.cluster_id for c in p.list_clusters("burst")]
