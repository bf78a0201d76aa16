"""The embedded local cloud: latency, quotas, injected faults, idempotency, persistence, ownership."""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path

import pytest
from burst_local import LocalProvider, LocalProviderConfig

from burst.clock import SimClock
from burst.errors import CapacityUnavailable, NotFound, ProviderError, QuotaExceeded, Throttled
from burst.model import OWNER_TAG, CloudStatus, ClusterSpec
from burst.provider import Provider, ProviderContext, RemovesNodes
from burst.testing.builders import T0


def provider(clock: SimClock, tmp_path: Path | None = None, **cfg: object) -> LocalProvider:
    conf = LocalProviderConfig.model_validate({"kind": "local", "cloud": "aws", **cfg})
    p = conf.build("aws", ProviderContext(clock, "burst", random.Random(7), str(tmp_path or ".")))
    _: Provider = p  # checked by mypy: the local cloud implements the provider contract
    return p


def spec(cid: str = "burst-aws-00001", nodes: int = 4, flavor: str = "m5.2xlarge") -> ClusterSpec:
    return ClusterSpec(cid, "aws", "eu-central-1", flavor, nodes, "burst", "moriond")


def test_provisioning_takes_modelled_time_and_is_idempotent() -> None:
    clock = SimClock(T0)
    p = provider(clock)
    first = p.create_cluster(spec())
    assert first.status is CloudStatus.CREATING
    assert first.tags[OWNER_TAG] == "burst" and first.tags["burst.campaign"] == "moriond"
    clock.advance(60)
    assert p.create_cluster(spec()).status is CloudStatus.CREATING  # same id: no second cluster
    assert len(p.list_clusters("burst")) == 1
    clock.advance(3600)
    ready = p.create_cluster(spec())
    assert ready.status is CloudStatus.READY and ready.nodes == 4


def test_latency_grows_with_nodes_and_has_a_spread() -> None:
    clock = SimClock(T0)
    p = provider(clock)
    off = p.offerings()[0]
    assert off.latency.median_s(100) > off.latency.median_s(2)
    rng = random.Random(1)
    samples = [off.latency.sample_s(rng, 8) for _ in range(500)]
    assert min(samples) < off.latency.median_s(8) < max(samples)
    assert off.latency.p90_s(8) == pytest.approx(sorted(samples)[450], rel=0.15)


def test_delete_takes_time_then_not_found() -> None:
    clock = SimClock(T0)
    p = provider(clock, delete_latency=120)
    p.create_cluster(spec())
    assert p.delete_cluster("burst-aws-00001").status is CloudStatus.DELETING
    clock.advance(121)
    with pytest.raises(NotFound):
        p.delete_cluster("burst-aws-00001")
    with pytest.raises(NotFound):
        p.delete_cluster("burst-aws-00001")  # deleting a missing cluster: NotFound, which means done
    assert p.list_clusters("burst") == []


def test_quota_is_enforced() -> None:
    clock = SimClock(T0)
    p = provider(clock, quota_cores=40)
    p.create_cluster(spec("a", nodes=4))  # 32 cores
    with pytest.raises(QuotaExceeded, match="8 left in quota"):
        p.create_cluster(spec("b", nodes=2))
    assert p.quota().cores_left() == 8


@pytest.mark.parametrize(
    ("kind", "error"),
    [("quota_exceeded", QuotaExceeded), ("capacity_unavailable", CapacityUnavailable), ("throttled", Throttled)],
)
def test_injected_faults(kind: str, error: type[Exception]) -> None:
    clock = SimClock(T0)
    p = provider(clock, faults=[{"kind": kind, "start": T0 + timedelta(hours=1)}])
    p.create_cluster(spec("before"))  # not active yet
    clock.advance(3601)
    with pytest.raises(error):
        p.create_cluster(spec("after"))


def test_provisioning_failure_and_slow_provisioning() -> None:
    clock = SimClock(T0)
    failing = provider(clock, faults=[{"kind": "provisioning_fails"}])
    failing.create_cluster(spec())
    clock.advance(7200)
    c = failing.create_cluster(spec())
    assert c.status is CloudStatus.FAILED and "failed" in c.message

    clock2 = SimClock(T0)
    slow = provider(clock2, faults=[{"kind": "slow_provisioning", "factor": 10}])
    normal = provider(clock2)
    slow.create_cluster(spec())
    normal.create_cluster(spec())
    clock2.advance(3600)
    assert normal.get_cluster("burst-aws-00001").status is CloudStatus.READY
    assert slow.get_cluster("burst-aws-00001").status is CloudStatus.CREATING


def test_resize_adds_nodes_after_a_while() -> None:
    clock = SimClock(T0)
    p = provider(clock)
    p.create_cluster(spec(nodes=2))
    clock.advance(7200)
    p.create_cluster(spec(nodes=2))
    assert p.resize("burst-aws-00001", 5).status is CloudStatus.RESIZING
    clock.advance(600)
    c = p.get_cluster("burst-aws-00001")
    assert (c.status, c.nodes) == (CloudStatus.READY, 5)


def test_state_file_survives_a_restart(tmp_path: Path) -> None:
    clock = SimClock(T0)
    provider(clock, tmp_path, state_file="cloud.json").create_cluster(spec())
    again = provider(clock, tmp_path, state_file="cloud.json")
    assert [c.cluster_id for c in again.list_clusters("burst")] == ["burst-aws-00001"]


def test_only_owned_clusters_are_listed() -> None:
    clock = SimClock(T0)
    p = provider(clock)
    p.create_cluster(spec())
    p.adopt_foreign_for_tests("someone-elses", {"team": "atlas"})
    p.adopt_foreign_for_tests("other-burst", {OWNER_TAG: "another-installation"})
    assert [c.cluster_id for c in p.list_clusters("burst")] == ["burst-aws-00001"]


def test_offerings_cite_real_prices_and_accept_overrides() -> None:
    clock = SimClock(T0)
    p = provider(clock, prices={"m5.2xlarge": {"price_per_hour": 0.3}})
    by = {o.flavor: o for o in p.offerings()}
    assert by["m5.2xlarge"].price_per_hour == 0.3
    assert by["c5.4xlarge"].price_per_hour == pytest.approx(0.612)
    assert by["g4dn.xlarge"].gpus == 1
    assert all(o.control_plane_per_hour == pytest.approx(0.09) for o in p.offerings())
    spot = provider(clock, spot=True)
    assert {o.flavor: o for o in spot.offerings()}["c5.4xlarge"].price_per_hour == pytest.approx(0.306)


def test_remove_nodes_deletes_exactly_the_named_nodes() -> None:
    clock = SimClock(T0)
    p = provider(clock)
    _: RemovesNodes = p  # checked by mypy: the local cloud can delete named nodes
    p.create_cluster(spec(nodes=4))
    clock.advance(7200)
    c = p.remove_nodes("burst-aws-00001", ["burst-aws-00001-node-1", "burst-aws-00001-node-3"])
    assert (c.nodes, c.desired_nodes) == (2, 2)
    # idempotent: names already removed are ignored
    assert p.remove_nodes("burst-aws-00001", ["burst-aws-00001-node-1"]).nodes == 2
    with pytest.raises(ProviderError, match="burst-aws-00001-node-9"):
        p.remove_nodes("burst-aws-00001", ["burst-aws-00001-node-9"])
    # a later grow adds nodes with new names; removed ones never come back
    p.resize("burst-aws-00001", 3)
    clock.advance(600)
    assert p.get_cluster("burst-aws-00001").nodes == 3
    with pytest.raises(ProviderError, match="node-1x not"):
        p.remove_nodes("burst-aws-00001", ["burst-aws-00001-node-4", "burst-aws-00001-node-1x"])
    assert p.remove_nodes("burst-aws-00001", ["burst-aws-00001-node-4"]).nodes == 2
    with pytest.raises(NotFound):
        p.remove_nodes("burst-aws-00002", ["x"])


def test_remove_nodes_also_leaves_the_member_api_server() -> None:
    clock = SimClock(T0)
    p = provider(clock, kube_api=True)
    p.create_cluster(spec(nodes=3))
    clock.advance(7200)
    p.create_cluster(spec(nodes=3))
    server = p._servers["burst-aws-00001"]
    try:
        p.remove_nodes("burst-aws-00001", ["burst-aws-00001-node-0"])
        names = {n["metadata"]["name"] for n in server.objects("v1", "nodes")}
        assert names == {"burst-aws-00001-node-1", "burst-aws-00001-node-2"}
    finally:
        server.stop()


def test_audit_file_names_every_mutating_call_and_its_process(tmp_path: Path) -> None:
    import json
    import os

    clock = SimClock(T0)
    p = provider(clock, tmp_path, audit_file="audit.jsonl", quota_clusters=1, delete_latency=10)
    p.create_cluster(spec())
    p.create_cluster(spec())  # the same id again: nothing new in the account
    with pytest.raises(QuotaExceeded):
        p.create_cluster(spec("burst-aws-00002"))
    clock.advance(3600)
    p.get_cluster("burst-aws-00001")  # a read is not audited
    p.delete_cluster("burst-aws-00001")
    lines = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [(x["call"], x["cluster"], x["outcome"]) for x in lines] == [
        ("create_cluster", "burst-aws-00001", "accepted"),
        ("create_cluster", "burst-aws-00001", "exists"),
        ("create_cluster", "burst-aws-00002", "refused: QuotaExceeded"),
        ("delete_cluster", "burst-aws-00001", "accepted"),
    ]
    assert {x["pid"] for x in lines} == {os.getpid()}


def test_members_dir_serves_credentials_another_process_wrote(tmp_path: Path) -> None:
    clock = SimClock(T0)
    p = provider(clock, tmp_path, kube_api=True, members_dir="members")
    p.create_cluster(spec())
    clock.advance(3600)
    assert p.get_cluster("burst-aws-00001").status is CloudStatus.READY
    assert p._servers == {}  # no API server of its own: the members are served elsewhere
    with pytest.raises(ProviderError, match="its API server is not up"):
        p.credentials("burst-aws-00001")
    (tmp_path / "members").mkdir()
    (tmp_path / "members" / "burst-aws-00001.kubeconfig").write_text("apiVersion: v1\nkind: Config\n")
    assert p.credentials("burst-aws-00001") == "apiVersion: v1\nkind: Config\n"
