"""``remove_nodes`` (burst's optional RemovesNodes) against the Magnum + Nova fake: named nodes go
through the resize action's ``nodes_to_remove``, never by lowering the count alone."""

from __future__ import annotations

from typing import Any

import pytest
from burst_openstack import OpenStackProvider, OpenStackProviderConfig

from burst.api import CloudStatus, ClusterSpec, NotFound, ProviderError, RemovesNodes, Throttled
from burst.testing.openstack_fake import until_ready

CONFIG = {"kind": "openstack", "cloud": "burst-test", "region": "cern", "cluster_template": "kubernetes-1.29"}


def make(ctx: Any) -> OpenStackProvider:
    return OpenStackProviderConfig.model_validate(CONFIG).build("cern", ctx)


def grow(p: OpenStackProvider, cid: str, nodes: int) -> None:
    """Create ``cid`` and poll until Magnum says it is complete."""
    s = ClusterSpec(cluster_id=cid, provider="cern", region="cern", flavor="m2.xlarge", nodes=nodes,
                    owner="cern-burst")  # fmt: skip
    until_ready(lambda: p.create_cluster(s))


def ready(magnum: Any, ctx: Any, cid: str = "burst-m1", nodes: int = 4) -> OpenStackProvider:
    p = make(ctx)
    grow(p, cid, nodes)
    return p


def settle(p: Any, cid: str = "burst-m1") -> Any:
    return until_ready(lambda: p.get_cluster(cid))


def test_is_a_removes_nodes_provider(ctx: Any) -> None:
    assert isinstance(make(ctx), RemovesNodes)


def test_removes_exactly_the_named_nodes_and_lowers_the_count(magnum: Any, ctx: Any) -> None:
    p = ready(magnum, ctx)
    names = magnum.node_names("burst-m1")
    assert len(names) == 4 and all("-node-" in n for n in names)
    victims = [names[0], names[2]]
    by_name = {s["name"]: sid for sid, s in magnum.servers.items()}
    magnum.clear_requests()

    cc = p.remove_nodes("burst-m1", victims)
    assert (cc.status, cc.desired_nodes) == (CloudStatus.RESIZING, 2)

    (post,) = magnum.sent("POST", r"/actions/resize$")
    assert post.body == {"node_count": 2, "nodes_to_remove": [by_name[victims[0]], by_name[victims[1]]],
                         "nodegroup": "default-worker"}  # fmt: skip
    assert post.headers["openstack-api-version"] == "container-infra 1.9"
    assert not magnum.sent("PATCH")  # never a bare count change: that lets Heat pick the nodes
    lookups = [r.param("name") for r in magnum.sent("GET", r"/compute/v2.1/servers/detail$")]
    assert lookups == [f"^{victims[0]}$", f"^{victims[1]}$"]

    got = settle(p)
    assert (got.nodes, got.desired_nodes) == (2, 2)
    assert magnum.node_names("burst-m1") == [names[1], names[3]]  # the others were kept
    assert p.resize("burst-m1", 2).desired_nodes == 2 and not magnum.sent("PATCH")


def test_repeat_is_a_no_op_while_deleting_and_after(magnum: Any, ctx: Any) -> None:
    p = ready(magnum, ctx)
    victim = magnum.node_names("burst-m1")[1]
    p.remove_nodes("burst-m1", [victim])
    again = p.remove_nodes("burst-m1", [victim])  # Heat is deleting it: nothing to ask
    assert again.desired_nodes == 3
    settle(p)
    done = p.remove_nodes("burst-m1", [victim, victim])  # gone now
    assert (done.status, done.desired_nodes, done.nodes) == (CloudStatus.READY, 3, 3)
    assert len(magnum.sent("POST", r"/actions/resize$")) == 1


def test_removing_every_node_uses_microversion_1_10(magnum: Any, ctx: Any) -> None:
    p = ready(magnum, ctx, nodes=2)
    cc = p.remove_nodes("burst-m1", magnum.node_names("burst-m1"))
    assert cc.desired_nodes == 0
    (post,) = magnum.sent("POST", r"/actions/resize$")
    assert post.headers["openstack-api-version"] == "container-infra 1.10"
    assert settle(p).nodes == 0


def test_busy_stack_is_a_retryable_error(magnum: Any, ctx: Any) -> None:
    p = ready(magnum, ctx)
    a, b = magnum.node_names("burst-m1")[:2]
    p.remove_nodes("burst-m1", [a])
    with pytest.raises(ProviderError, match="busy") as info:
        p.remove_nodes("burst-m1", [b])
    assert type(info.value) is ProviderError
    settle(p)
    assert p.remove_nodes("burst-m1", [b]).desired_nodes == 2


@pytest.mark.parametrize("which", ["master", "other cluster"])
def test_a_name_that_is_not_a_worker_of_this_cluster_is_an_error(magnum: Any, ctx: Any, which: str) -> None:
    p = ready(magnum, ctx)
    if which == "master":
        name = next(s["name"] for s in magnum.servers.values() if "-master-" in s["name"])
    else:
        grow(p, "burst-m2", 1)
        name = magnum.node_names("burst-m2")[0]
    mine = magnum.node_names("burst-m1")[0]
    with pytest.raises(ProviderError, match=name) as info:
        p.remove_nodes("burst-m1", [mine, name])
    assert type(info.value) is ProviderError
    assert not magnum.sent("POST", r"/actions/resize$")  # nothing removed, not even the valid one


def test_name_without_a_server_counts_as_gone(magnum: Any, ctx: Any) -> None:
    p = ready(magnum, ctx)
    cc = p.remove_nodes("burst-m1", ["burst-m1-abcdef-node-99"])
    assert cc.desired_nodes == 4 and not magnum.sent("POST", r"/actions/resize$")


def test_gone_cluster_is_not_found(magnum: Any, ctx: Any) -> None:
    p = make(ctx)
    with pytest.raises(NotFound):
        p.remove_nodes("burst-nope", ["x-node-0"])


def test_throttled_resize(magnum: Any, ctx: Any) -> None:
    p = ready(magnum, ctx)
    magnum.inject("POST", r"/actions/resize$", 429, {"errors": [{"detail": "Rate limit exceeded"}]},
                  headers={"Retry-After": "12"})  # fmt: skip
    with pytest.raises(Throttled) as info:
        p.remove_nodes("burst-m1", magnum.node_names("burst-m1")[:1])
    assert info.value.retry_after == 12


def test_throttled_nova_lookup(magnum: Any, ctx: Any) -> None:
    p = ready(magnum, ctx)
    magnum.inject("GET", r"/servers/detail$", 429, {"computeFault": {"message": "slow down"}})
    with pytest.raises(Throttled):
        p.remove_nodes("burst-m1", magnum.node_names("burst-m1")[:1])
