"""Placement: cheapest effective price, priority, spread, limits and quotas, preferred providers,
back-off after quota errors, and keeping capacity where it already is."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from burst_policies.placement import PlacementConfig, PlacementPolicy

from burst.api import ClusterState, ProviderLimits, Quota, Shape, Target, Want

from .inputs import cluster, offering, policy_input, utc

T0 = utc(2027, 3, 1, 8)
TS = offering("tsystems", cpus=8, price=0.40, control_plane=0.10, latency_s=480)
AWS = offering("aws", cpus=16, price=0.61, control_plane=0.09, latency_s=660)
GCE = offering("gce", cpus=8, price=0.24, control_plane=0.09, latency_s=330)
GPU = offering("aws", cpus=8, gpus=1, price=2.6, flavor="gpu")
LIMITS = {p: ProviderLimits(max_nodes=40, max_clusters=10, nodes_per_cluster=8) for p in ("tsystems", "aws", "gce")}


def place(
    strategy: str = "cheapest", wants: list[Want] | None = None, quotas: dict[str, Quota] | None = None, **kw: object
) -> list[Target]:
    p: PlacementPolicy = PlacementConfig.model_validate({"kind": "placement", "strategy": strategy}).build()
    kw.setdefault("limits", LIMITS)
    kw.setdefault("offerings", [TS, AWS, GCE, GPU])
    inp = replace(policy_input(T0, **kw), quotas=quotas or {})  # type: ignore[arg-type]
    return p.place(inp, wants if wants is not None else [Want(160, "backlog", "b")])


def nodes(targets: list[Target]) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in targets:
        out[t.offering.provider] = out.get(t.offering.provider, 0) + t.nodes
    return out


def test_cheapest_first_then_the_next_when_full() -> None:
    assert nodes(place()) == {"gce": 20}
    assert nodes(place(wants=[Want(480, "backlog", "b")])) == {"gce": 40, "aws": 10}


def test_effective_price_counts_fee_and_provisioning_time() -> None:
    p = PlacementConfig.model_validate({"kind": "placement"}).build()
    lim = ProviderLimits(40, 10, 8)
    bare = GCE.price_per_hour / GCE.cpus
    assert p.effective_price(GCE, lim) > bare
    slow = offering("gce", cpus=8, price=0.24, control_plane=0.09, latency_s=3 * 3600)
    assert p.effective_price(slow, lim) > p.effective_price(GCE, lim)


def test_priority_and_prefer() -> None:
    limits = {**LIMITS, "tsystems": ProviderLimits(40, 10, 8, priority=10)}
    assert nodes(place("priority", limits=limits)) == {"tsystems": 20}
    prefer = [Want(160, "schedule", "s", campaign="moriond", prefer=("aws", "gce"))]
    assert nodes(place(wants=prefer)) == {"aws": 10}


def test_spread_over_providers() -> None:
    got = nodes(place("spread", wants=[Want(480, "backlog", "b")]))
    assert set(got) == {"gce", "tsystems", "aws"}
    assert sum(n * {"gce": 8, "tsystems": 8, "aws": 16}[p] for p, n in got.items()) >= 480


def test_quota_and_backoff_send_work_elsewhere() -> None:
    quota = {"gce": Quota(max_cores=80, used_cores=0)}
    assert nodes(place(quotas=quota)) == {"gce": 10, "aws": 5}
    backoff = {"gce": T0 + timedelta(minutes=10)}
    assert nodes(place(backoff=backoff)) == {"aws": 10}
    expired = {"gce": T0 - timedelta(minutes=1)}
    assert nodes(place(backoff=expired)) == {"gce": 20}


def test_existing_capacity_stays_where_it_is() -> None:
    fleet = [cluster("burst-aws-1", AWS, 8, created=T0 - timedelta(hours=1))]
    got = place(fleet=fleet)
    assert nodes(got) == {"aws": 8, "gce": 4}
    # a draining cluster does not count as capacity a want already has
    draining = [cluster("burst-aws-1", AWS, 8, created=T0, state=ClusterState.DRAINING)]
    assert nodes(place(fleet=draining)) == {"gce": 20}


def test_cpu_work_never_lands_on_gpu_nodes_and_gpu_work_only_there() -> None:
    assert "gpu" not in {t.offering.flavor for t in place()}
    gpu = [Want(32, "backlog", "g", shape=Shape(4, 8000, 1))]  # the backlog counts GPU work in node cores
    assert [(t.offering.flavor, t.nodes) for t in place(wants=gpu)] == [("gpu", 4)]


def test_reasons_say_where_and_why() -> None:
    [t] = place()
    assert t.reason.startswith("b → 20× gce-8c on gce (cheapest)")


def test_two_wants_never_keep_the_same_nodes_twice() -> None:
    """Two node classes of one campaign both fit the aws nodes that exist: together they keep them
    once, and the provider's node limit holds."""
    fleet = [cluster("burst-aws-1", AWS, 8, created=T0 - timedelta(hours=1))]
    limits = {p: ProviderLimits(max_nodes=8, max_clusters=10, nodes_per_cluster=8) for p in ("tsystems", "aws", "gce")}
    wants = [Want(128, "backlog", "small", shape=Shape(1, 1000)), Want(128, "backlog", "wide", shape=Shape(16, 1000))]
    got = place(wants=wants, fleet=fleet, limits=limits, offerings=[AWS])
    assert sum(t.nodes for t in got if t.offering.provider == "aws") == 8


def test_a_provider_floor_tops_up_only_what_other_wants_leave_there() -> None:
    from burst.policy import PolicyStack, floor_wants

    limits = {**LIMITS, "tsystems": ProviderLimits(40, 10, 8, min_nodes=3)}
    p: PlacementPolicy = PlacementConfig.model_validate({"kind": "placement"}).build()
    inp = policy_input(T0, offerings=[TS, AWS, GCE, GPU], limits=limits)
    [floor] = floor_wants(inp)
    assert (floor.cores, floor.floor_of, floor.prefer) == (24, "tsystems", ("tsystems",))  # 3 × 8 cores
    assert "providers.tsystems.min_nodes" in floor.reason
    # nothing else wanted: the floor alone, on its own provider although gce is cheaper
    assert nodes(place(wants=[floor], limits=limits)) == {"tsystems": 3}
    # a schedule window already puts 2 nodes there: the floor adds 1, not 3
    window = Want(16, "schedule", "w", campaign="moriond", prefer=("tsystems",))
    assert nodes(place(wants=[floor, window], limits=limits)) == {"tsystems": 3}
    # backlog capacity goes to the cheapest provider as before; the floor stays on tsystems
    assert nodes(place(wants=[Want(160, "backlog", "b"), floor], limits=limits)) == {"gce": 20, "tsystems": 3}
    # a provider backing off after a quota error gets no floor this tick
    off = place(wants=[floor], limits=limits, backoff={"tsystems": T0 + timedelta(minutes=5)})
    assert off == []
    # the stack adds floors itself, after merging the capacity wants
    decision = PolicyStack([], [], p).decide(inp)
    assert [(t.offering.provider, t.nodes, t.policy) for t in decision.targets] == [("tsystems", 3, "floor")]
