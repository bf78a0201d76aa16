"""``remove_nodes`` (burst's optional RemovesNodes) against the CCE fake: exactly the named nodes
are deleted and the pool's count ends lowered, whether CCE lowers it on delete or not."""

from __future__ import annotations

from typing import Any

import pytest
from burst_tsystems import POOL_NAME, TSystemsProvider, TSystemsProviderConfig

from burst.api import CloudStatus, ClusterSpec, NotFound, ProviderError, RemovesNodes, Throttled
from burst.testing.openstack_fake import until_ready

CONFIG = {"kind": "tsystems", "cloud": "burst-test", "region": "eu-de", "vpc_id": "vpc-1", "subnet_id": "net-1",
          "keypair": "burst-key"}  # fmt: skip


def ready(ctx: Any, cid: str = "burst-c1", nodes: int = 4) -> TSystemsProvider:
    p = TSystemsProviderConfig.model_validate(CONFIG).build("otc", ctx)
    s = ClusterSpec(cluster_id=cid, provider="otc", region="eu-de", flavor="s3.2xlarge.4", nodes=nodes,
                    owner="cern-burst")  # fmt: skip
    until_ready(lambda: p.create_cluster(s))
    return p


def uid_of(cce: Any, cid: str = "burst-c1") -> str:
    return next(u for u, c in cce.clusters.items() if c["metadata"]["name"] == cid)


def settle(p: Any, cid: str = "burst-c1") -> Any:
    return until_ready(lambda: p.get_cluster(cid))


def test_is_a_removes_nodes_provider(ctx: Any) -> None:
    assert isinstance(TSystemsProviderConfig.model_validate(CONFIG).build("otc", ctx), RemovesNodes)


@pytest.mark.parametrize("delete_scales_pool", [True, False], ids=["cce-lowers-count", "count-left-alone"])
def test_removes_exactly_the_named_nodes_and_lowers_the_count(cce: Any, ctx: Any, delete_scales_pool: bool) -> None:
    cce.delete_scales_pool = delete_scales_pool
    p = ready(ctx)
    uid = uid_of(cce)
    names = cce.node_names(uid)
    assert len(names) == 4
    ids = {n["status"]["privateIP"]: nid for nid, n in cce.nodes[uid].items()}
    victims = [names[1], names[3]]
    cce.clear_requests()

    cc = p.remove_nodes("burst-c1", victims)
    assert (cc.status, cc.desired_nodes) == (CloudStatus.RESIZING, 2)

    deletes = cce.sent("DELETE", r"/nodes/")
    assert [r.path.rsplit("/", 1)[1] for r in deletes] == [ids[v] for v in victims]
    assert all(not r.query for r in deletes)
    puts = cce.sent("PUT", r"/nodepools/")
    if delete_scales_pool:
        assert puts == []  # CCE already lowered it
    else:
        (put,) = puts  # after the deletes, never before: lowering first lets CCE choose
        assert put.body["spec"]["initialNodeCount"] == 2
        assert cce.requests.index(put) > cce.requests.index(deletes[-1])

    got = settle(p)
    assert (got.nodes, got.desired_nodes) == (2, 2)
    assert cce.node_names(uid) == [names[0], names[2]]  # the others kept, nothing replaced
    pool = next(iter(cce.pools[uid].values()))
    assert pool["metadata"]["name"] == POOL_NAME and pool["spec"]["initialNodeCount"] == 2
    assert p.resize("burst-c1", 2).desired_nodes == 2


def test_repeat_is_a_no_op_while_deleting_and_after(cce: Any, ctx: Any) -> None:
    p = ready(ctx)
    victim = cce.node_names(uid_of(cce))[0]
    p.remove_nodes("burst-c1", [victim])
    assert p.remove_nodes("burst-c1", [victim]).desired_nodes == 3  # CCE is deleting it
    settle(p)
    again = p.remove_nodes("burst-c1", [victim, victim])
    assert (again.status, again.nodes, again.desired_nodes) == (CloudStatus.READY, 3, 3)
    assert len(cce.sent("DELETE", r"/nodes/")) == 1 and not cce.sent("PUT")


def test_an_ip_that_is_no_node_counts_as_gone(cce: Any, ctx: Any) -> None:
    p = ready(ctx)
    cc = p.remove_nodes("burst-c1", ["127.168.77.77"])
    assert cc.desired_nodes == 4 and not cce.sent("DELETE", r"/nodes/")


def test_names_that_are_not_nodes_of_burst_s_pool_are_errors(cce: Any, ctx: Any) -> None:
    p = ready(ctx)
    uid = uid_of(cce)
    mine = cce.node_names(uid)[0]
    other = cce.add_node(uid, {"metadata": {"name": "ops-pool", "uid": "pool-of-ops"}, "spec": {}})
    foreign = other["status"]["privateIP"]
    with pytest.raises(ProviderError, match=f"{foreign} is not a node of node pool {POOL_NAME}") as info:
        p.remove_nodes("burst-c1", [mine, foreign])
    assert type(info.value) is ProviderError
    with pytest.raises(ProviderError, match="worker-7 is not a CCE node name"):
        p.remove_nodes("burst-c1", ["worker-7"])
    assert not cce.sent("DELETE", r"/nodes/")  # nothing removed, not even the valid one


def test_gone_cluster_is_not_found(cce: Any, ctx: Any) -> None:
    p = TSystemsProviderConfig.model_validate(CONFIG).build("otc", ctx)
    with pytest.raises(NotFound):
        p.remove_nodes("burst-nope", ["127.168.0.5"])


@pytest.mark.parametrize(("method", "path"), [("GET", r"/nodes$"), ("DELETE", r"/nodes/")])
def test_throttled(cce: Any, ctx: Any, method: str, path: str) -> None:
    p = ready(ctx)
    cce.inject(method, path, 429, {"error_code": "APIGW.0308", "error_msg": "The request is throttled."},
               headers={"Retry-After": "7"})  # fmt: skip
    with pytest.raises(Throttled) as info:
        p.remove_nodes("burst-c1", cce.node_names(uid_of(cce))[:1])
    assert info.value.retry_after == 7
