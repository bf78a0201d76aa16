"""The reactive backlog policy against hand-built demand timelines: a ramp, a spike, a flapping
queue, a stale source, GPU work and node classes."""

from __future__ import annotations

from datetime import datetime, timedelta

from burst_policies.backlog import BacklogPolicy, BacklogPolicyConfig

from burst.api import Bucket, Demand, PolicyInput, ProviderLimits, Shape

from .inputs import demand, offering, policy_input, ticks, utc

T0 = utc(2027, 3, 1, 8)
CPU = offering("gce", cpus=8, price=0.24)
BIG = offering("aws", cpus=16, price=0.61)
GPU = offering("aws", cpus=8, gpus=1, price=2.6, flavor="gpu")


def policy(**cfg: object) -> BacklogPolicy:
    base: dict[str, object] = {
        "kind": "backlog",
        "pending_cores_above": 10,
        "for": "15m",
        "idle_after": "30m",
        "cooldown": "10m",
    }
    return BacklogPolicyConfig.model_validate({**base, **cfg}).build()


def at(now: datetime, pending: int, **kw: object) -> PolicyInput:
    return policy_input(now, offerings=[CPU, BIG, GPU], dem=demand(now, pending, **kw))  # type: ignore[arg-type]


def total(p: BacklogPolicy, inp: PolicyInput) -> int:
    return sum(w.cores for w in p.want(inp))


def test_spike_waits_for_the_sustain_time_then_wants_the_overflow() -> None:
    p = policy()
    assert total(p, at(T0, 200)) == 0  # just appeared
    assert total(p, at(T0 + timedelta(minutes=14), 200)) == 0
    [w] = p.want(at(T0 + timedelta(minutes=15), 200))
    assert w.cores == 200 and w.policy == "backlog"
    assert "200 cpu:" in w.reason and "for 15m" in w.reason
    assert w.shape == Shape(1, 2048, 0)


def test_small_backlog_under_threshold_never_bursts() -> None:
    p = policy(pending_cores_above=500)
    for t in ticks(T0, T0 + timedelta(hours=3), timedelta(minutes=5)):
        assert total(p, at(t, 400)) == 0


def test_ramp_raises_the_want_step_by_step() -> None:
    p = policy(**{"for": "0s"})
    wants = [total(p, at(T0 + timedelta(minutes=i), 100 * (i + 1))) for i in range(5)]
    assert wants == [100, 200, 300, 400, 500]


def test_what_runs_on_burst_capacity_is_kept() -> None:
    p = policy(**{"for": "0s"})
    assert total(p, at(T0, 100)) == 100
    # the work started on burst capacity: nothing pending, 100 cores busy beyond on-prem
    later = T0 + timedelta(hours=1)
    assert total(p, at(later, 0, onprem=1000, running=1100)) == 100


def test_scale_down_only_after_the_idle_period() -> None:
    p = policy(**{"for": "0s"})
    assert total(p, at(T0, 300)) == 300
    t = T0 + timedelta(minutes=20)
    for i in range(30):
        assert total(p, at(t + timedelta(minutes=i), 0)) == 300
    [w] = p.want(at(t + timedelta(minutes=30), 0, running=1000)) or [None]
    assert w is None  # released after 30 idle minutes


def test_flapping_backlog_does_not_flap_capacity() -> None:
    """Pending cores jump between 0 and 300 every 5 minutes: the want rises once, never falls."""
    p = policy(**{"for": "0s"})
    seen = []
    for i, t in enumerate(ticks(T0, T0 + timedelta(hours=2), timedelta(minutes=5))):
        seen.append(total(p, at(t, 300 if i % 2 == 0 else 0)))
    assert seen[0] == 300 and min(seen) == 300


def test_cooldown_holds_a_fresh_raise() -> None:
    p = policy(**{"for": "0s", "idle_after": "0s", "cooldown": "20m"})
    assert total(p, at(T0, 300)) == 300
    assert total(p, at(T0 + timedelta(minutes=10), 0)) == 300  # idle_after passed, cooldown not
    assert total(p, at(T0 + timedelta(minutes=21), 0)) == 0


def test_stale_demand_holds_capacity() -> None:
    p = policy(**{"for": "0s"})
    assert total(p, at(T0, 300)) == 300
    stale = Demand(T0 + timedelta(hours=5), (), 0, 1000, 1000, stale=True, note="schedd down")
    [w] = p.want(policy_input(T0 + timedelta(hours=5), offerings=[CPU, BIG, GPU], dem=stale))
    assert w.cores == 300 and "stale" in w.reason and "schedd down" in w.reason


def test_gpu_work_only_counts_towards_gpu_offerings() -> None:
    p = policy(**{"for": "0s", "pending_cores_above": 0})
    d = Demand(T0, (Bucket(Shape(1, 2048), 100, 60.0), Bucket(Shape(4, 8000, 1), 5, 60.0)), 1000, 1000, 0)
    wants = p.want(policy_input(T0, offerings=[CPU, BIG, GPU], dem=d))
    gpu = [w for w in wants if w.shape and w.shape.gpus]
    cpu = [w for w in wants if not (w.shape and w.shape.gpus)]
    # 5 one-GPU jobs need 5 one-GPU nodes of 8 cores: 40 cores, not the 20 the jobs ask for
    assert [w.cores for w in gpu] == [40] and gpu[0].shape == Shape(4, 8000, 1)
    assert sum(w.cores for w in cpu) == 100


def test_node_classes_follow_the_cheapest_offering_that_holds_the_work() -> None:
    """Jobs wider than a cheap node span whole nodes of one cluster, so they stay in the cheap class
    (the want's shape says how wide); work only a big node holds gets its own class."""
    p = policy(**{"for": "0s", "pending_cores_above": 0})
    d = Demand(T0, (Bucket(Shape(1, 2048), 400, 60.0), Bucket(Shape(16, 30000), 4, 60.0)), 1000, 1000, 0)
    [w] = p.want(policy_input(T0, offerings=[CPU, BIG], dem=d))
    assert (w.cores, w.shape) == (464, Shape(16, 30000, 0))
    fat = Demand(T0, (Bucket(Shape(1, 2048), 400, 60.0), Bucket(Shape(4, 60000), 4, 60.0)), 1000, 1000, 0)
    big_mem = offering("aws", cpus=16, price=0.9, flavor="r5.4xlarge")
    assert big_mem.memory_mb == 65536
    p2 = policy(**{"for": "0s", "pending_cores_above": 0})
    wants = {
        w.shape.memory_mb if w.shape else 0: w.cores
        for w in p2.want(policy_input(T0, offerings=[CPU, big_mem], dem=fat, limits={"gce": ProviderLimits(40, 10, 1)}))
    }
    assert wants == {2048: 400, 60000: 16}


def test_work_no_offering_can_hold_is_left_to_on_prem() -> None:
    p = policy(**{"for": "0s", "pending_cores_above": 0})
    d = Demand(T0, (Bucket(Shape(4096, 10), 3, 60.0),), 1000, 1000, 0)
    assert p.want(policy_input(T0, offerings=[CPU], dem=d)) == []


def test_max_cores_caps_the_want() -> None:
    p = policy(**{"for": "0s", "max_cores": 150})
    assert total(p, at(T0, 1000)) == 150


def test_a_real_spike_bursts_at_once_a_blip_still_waits() -> None:
    p = policy(at_once_above=1000)
    assert total(p, at(T0, 400)) == 0  # a blip: has to last `for`
    [w] = p.want(at(T0 + timedelta(minutes=1), 2000))  # a spike: at once
    assert w.cores == 2000 and "at once" in w.reason
    q = policy(at_once_above=1000)
    assert total(q, at(T0, 1000)) == 0  # not beyond the mark
    assert total(q, at(T0 + timedelta(minutes=15), 1000)) == 1000  # …so it waited `for`


def test_free_on_prem_cores_never_absorb_a_job_wider_than_the_machine() -> None:
    p = policy(**{"for": "0s"}, pending_cores_above=0)
    # one 80-core job, an idle 64-core machine: the job can only ever run on burst capacity
    inp = policy_input(T0, offerings=[CPU], dem=demand(T0, 80, onprem=64, running=0, free=64, job_cpus=80))  # type: ignore[arg-type]
    assert total(p, inp) == 80
    # a 48-core job fits the machine: its free cores take it
    inp = policy_input(T0, offerings=[CPU], dem=demand(T0, 48, onprem=64, running=0, free=64, job_cpus=48))  # type: ignore[arg-type]
    assert total(policy(**{"for": "0s"}, pending_cores_above=0), inp) == 0
