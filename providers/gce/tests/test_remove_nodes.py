"""Node release (burst's optional ``RemovesNodes``): named idle nodes are deleted through Compute
Engine ``instanceGroupManagers.deleteInstances`` on the node pool's MIG, which lowers the MIG's
``targetSize`` — and with it the size GKE reports — by as many.  The real google-cloud-compute and
google-cloud-container REST clients talk to the fake server."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from burst_gce import NODE_POOL, ClusterBusy, NotOwned, RequestRejected
from google.cloud import compute_v1
from google.oauth2.credentials import Credentials as OAuthCredentials

from burst.api import AuthFailed, CloudStatus, NotFound, ProviderError, RemovesNodes, Throttled

from .fake_gke import COMPUTE_URL, FakeGke, compute_error
from .support import OWNER, PROJECT, ZONE, anonymous, cluster_path, create_until_ready, provider, spec

CID = "burst-c1"
MIG_PATH = r"/compute/v1/projects/[^/]+/zones/[^/]+/instanceGroupManagers/[^/]+"


def ready(gke: FakeGke, nodes: int = 4, cluster_id: str = CID, **overrides: Any) -> list[str]:
    """A READY cluster of ``nodes`` nodes; its node (= instance) names."""
    create_until_ready(provider(gke, **overrides), spec(cluster_id, nodes=nodes))
    names = gke.nodes(PROJECT, ZONE, cluster_id)
    assert len(names) == nodes
    return names


def mig(gke: FakeGke, cluster_id: str = CID) -> dict[str, object]:
    (group,) = gke.cluster_migs(PROJECT, ZONE, cluster_id)
    return group


def test_the_provider_declares_the_capability(gke: FakeGke) -> None:
    assert isinstance(provider(gke), RemovesNodes)


def test_fake_node_pool_and_mig_agree(gke: FakeGke) -> None:
    """What the provider relies on, as GKE has it: the pool names its MIG, which holds N instances."""
    names = ready(gke, nodes=3)
    pool = gke.cluster(PROJECT, ZONE, CID)["nodePools"][0]  # type: ignore[index]
    group = mig(gke)
    assert pool["instanceGroupUrls"] == [group["selfLink"]]
    assert "/instanceGroupManagers/" in pool["instanceGroupUrls"][0]
    assert group["targetSize"] == 3
    assert all(n.startswith(f"{group['baseInstanceName']}-") for n in names)
    assert gke.cluster(PROJECT, ZONE, CID)["currentNodeCount"] == 3  # type: ignore[index]


def test_removes_exactly_the_named_nodes_and_lowers_the_count(gke: FakeGke) -> None:
    names = ready(gke, nodes=4)
    gone, kept = names[:2], names[2:]
    p = provider(gke)
    gke.clear_requests()

    c = p.remove_nodes(CID, gone)

    assert (c.status, c.nodes, c.desired_nodes) == (CloudStatus.RESIZING, 4, 2)
    (call,) = gke.sent("POST", "/deleteInstances$")
    group = mig(gke)
    assert (
        call.path
        == f"/compute/v1/projects/{PROJECT}/zones/{ZONE}/instanceGroupManagers/{group['name']}/deleteInstances"
    )
    assert call.body == {
        "instances": [f"zones/{ZONE}/instances/{n}" for n in gone],
        "skipInstancesOnValidationError": True,
    }
    assert gke.nodes(PROJECT, ZONE, CID, deleting=True) == sorted(gone)
    assert gke.nodes(PROJECT, ZONE, CID) == sorted(kept)
    assert group["targetSize"] == 2
    # No GKE resize: the pool shrinks through its MIG only, and nothing else is asked of GKE.
    assert not gke.sent("POST", ":setSize$")

    # Later reads report the lowered size; asking resize for it is a no-op.
    after = p.get_cluster(CID)
    assert (after.status, after.nodes, after.desired_nodes) == (CloudStatus.READY, 2, 2)
    assert p.resize(CID, 2).desired_nodes == 2
    assert not gke.sent("POST", ":setSize$")
    assert provider(gke).list_clusters(OWNER)[0].nodes == 2


def test_deleted_instances_leave_the_group(gke: FakeGke) -> None:
    names = ready(gke, nodes=3)
    p = provider(gke)
    p.remove_nodes(CID, names[:1])
    for _ in range(3):  # Compute finishes the deletes in the background; reads see them go
        p.remove_nodes(CID, [])
        compute_v1.InstanceGroupManagersClient(
            transport="rest", credentials=anonymous(), client_options={"api_endpoint": gke.base_url}
        ).get(project=PROJECT, zone=ZONE, instance_group_manager=str(mig(gke)["name"]))
    assert gke.nodes(PROJECT, ZONE, CID, deleting=True) == []
    assert gke.nodes(PROJECT, ZONE, CID) == sorted(names[1:])


def test_repeat_is_idempotent_while_deleting_and_once_gone(gke: FakeGke) -> None:
    names = ready(gke, nodes=4)
    provider(gke).remove_nodes(CID, names[:2])
    gke.clear_requests()

    # A fresh provider (a restart): the instances are DELETING, so nothing is sent again.
    again = provider(gke).remove_nodes(CID, names[:2])
    assert again.desired_nodes == 2 and again.status is CloudStatus.READY
    assert not gke.sent("POST", "/deleteInstances$")

    # Once Compute has dropped them, the names are still recognised as this pool's (base name).
    for _ in range(3):
        provider(gke).remove_nodes(CID, [])
    assert gke.nodes(PROJECT, ZONE, CID, deleting=True) == []
    assert provider(gke).remove_nodes(CID, names[:2]).desired_nodes == 2
    assert not gke.sent("POST", "/deleteInstances$")

    # Overlap: only the new name is deleted.
    c = provider(gke).remove_nodes(CID, [names[1], names[2], names[2]])
    (call,) = gke.sent("POST", "/deleteInstances$")
    assert call.body["instances"] == [f"zones/{ZONE}/instances/{names[2]}"]
    assert c.desired_nodes == 1 and mig(gke)["targetSize"] == 1


def test_unknown_name_is_refused_before_anything_is_deleted(gke: FakeGke) -> None:
    names = ready(gke, nodes=3)
    other = ready(gke, nodes=1, cluster_id="burst-c2")
    p = provider(gke)
    gke.clear_requests()
    for stranger in ("worker-7", other[0]):
        with pytest.raises(ProviderError, match=stranger) as info:
            p.remove_nodes(CID, [names[0], stranger])
        assert not isinstance(info.value, NotFound)
        assert isinstance(info.value, RequestRejected) and not info.value.retryable
    assert not gke.sent("POST", "/deleteInstances$")
    assert mig(gke)["targetSize"] == 3 and gke.nodes(PROJECT, ZONE, CID) == names


def test_gone_cluster_is_not_found(gke: FakeGke) -> None:
    with pytest.raises(NotFound):
        provider(gke).remove_nodes("burst-nope", ["gke-burst-nope-burst-1234abcd-x1y2"])
    names = ready(gke, nodes=1)
    p = provider(gke)
    while True:
        try:
            p.delete_cluster(CID)
        except NotFound:
            break
    with pytest.raises(NotFound):
        p.remove_nodes(CID, names)


def test_empty_request_reads_only_the_cluster(gke: FakeGke) -> None:
    ready(gke, nodes=2)
    gke.clear_requests()
    c = provider(gke).remove_nodes(CID, [])
    assert (c.status, c.desired_nodes) == (CloudStatus.READY, 2)
    assert [r.path for r in gke.requests] == [cluster_path(CID)]


def test_foreign_and_busy_clusters_are_left_alone(gke: FakeGke) -> None:
    gke.add_cluster(PROJECT, ZONE, "theirs", labels={"burst-owner": "someone-else"}, nodes=2)
    with pytest.raises(NotOwned):
        provider(gke).remove_nodes("theirs", gke.nodes(PROJECT, ZONE, "theirs"))
    names = ready(gke, nodes=3)
    p = provider(gke)
    p.resize(CID, 4)  # GKE's setSize runs: the MIG is GKE's to change now
    gke.clear_requests()
    with pytest.raises(ClusterBusy):
        p.remove_nodes(CID, names[:1])
    assert gke.sent(path="^/compute/") == []


def test_grow_after_release_keeps_pool_and_mig_consistent(gke: FakeGke) -> None:
    names = ready(gke, nodes=3)
    p = provider(gke)
    p.remove_nodes(CID, names[:2])
    for _ in range(10):
        c = p.resize(CID, 3)
        if c.status is CloudStatus.READY and c.nodes == 3:
            break
    assert mig(gke)["targetSize"] == 3
    now = gke.nodes(PROJECT, ZONE, CID)
    assert len(now) == 3 and names[2] in now


def test_regional_cluster_uses_the_node_zone_from_the_group_url(gke: FakeGke) -> None:
    cfg: dict[str, Any] = {"location": "europe-west4", "node_zone": "europe-west4-b"}
    create_until_ready(provider(gke, **cfg), spec(nodes=2))
    (group,) = gke.cluster_migs(PROJECT, "europe-west4", CID)
    assert str(group["zone"]).endswith("/zones/europe-west4-b")
    name = sorted(group["_instances"])[0]
    assert provider(gke, **cfg).remove_nodes(CID, [name]).desired_nodes == 1
    (call,) = gke.sent("POST", "/deleteInstances$")
    assert call.path.startswith(f"/compute/v1/projects/{PROJECT}/zones/europe-west4-b/")
    assert call.body["instances"] == [f"zones/europe-west4-b/instances/{name}"]


def test_instance_group_url_form_is_accepted(gke: FakeGke) -> None:
    """``instanceGroupUrls`` entries naming the instance group (not its manager) map to the manager
    of the same name."""
    names = ready(gke, nodes=2)
    pool = gke.cluster(PROJECT, ZONE, CID)["nodePools"][0]  # type: ignore[index]
    pool["instanceGroupUrls"] = [str(mig(gke)["instanceGroup"])]
    assert provider(gke).remove_nodes(CID, names[:1]).desired_nodes == 1
    assert gke.sent("POST", f"instanceGroupManagers/{mig(gke)['name']}/deleteInstances$")


def test_delete_operation_is_a_real_zone_operation(gke: FakeGke) -> None:
    names = ready(gke, nodes=2)
    c = provider(gke).remove_nodes(CID, names[:1])
    op_name = c.message.rsplit(" ", 1)[-1]
    ops = compute_v1.ZoneOperationsClient(
        transport="rest", credentials=anonymous(), client_options={"api_endpoint": gke.base_url}
    )
    op = ops.get(project=PROJECT, zone=ZONE, operation=op_name)
    assert op.status == compute_v1.Operation.Status.DONE
    assert op.operation_type == "compute.instanceGroupManagers.deleteInstances"
    assert op.target_link == f"{COMPUTE_URL}/projects/{PROJECT}/zones/{ZONE}/instanceGroupManagers/{mig(gke)['name']}"


def test_compute_calls_carry_the_access_token(gke: FakeGke) -> None:
    token = "ya29.test-access-token-not-a-real-one"
    gke.require_token = token
    creds = OAuthCredentials(token=token, expiry=datetime.now(UTC).replace(tzinfo=None) + timedelta(hours=1))  # type: ignore[no-untyped-call]
    p = provider(gke, creds=creds)
    create_until_ready(p, spec(nodes=2))
    p.remove_nodes(CID, gke.nodes(PROJECT, ZONE, CID)[:1])
    assert gke.sent(path="^/compute/")
    assert {r.headers.get("authorization") for r in gke.requests} == {f"Bearer {token}"}


# ---- errors: Compute Engine's error bodies through the same boundary --------------------------------
def test_rate_limit_is_throttled(gke: FakeGke) -> None:
    names = ready(gke, nodes=2)
    gke.inject(
        "POST",
        "/deleteInstances$",
        429,
        body=compute_error(429, "rateLimitExceeded", "Rate Limit Exceeded"),
        headers={"Retry-After": "17"},
    )
    with pytest.raises(Throttled) as info:
        provider(gke).remove_nodes(CID, names[:1])
    assert info.value.retry_after == 17
    assert mig(gke)["targetSize"] == 2
    # Per-minute API quota on a read is throttling too, not a resource quota.
    gke.inject(
        "POST",
        "/listManagedInstances$",
        429,
        body=compute_error(
            429,
            "rateLimitExceeded",
            "Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute' of service "
            "'compute.googleapis.com' for consumer 'project_number:1'.",
        ),
    )
    with pytest.raises(Throttled):
        provider(gke).remove_nodes(CID, names[:1])
    assert provider(gke).remove_nodes(CID, names[:1]).desired_nodes == 1


def test_missing_compute_permission_is_auth_failed(gke: FakeGke) -> None:
    names = ready(gke, nodes=2)
    msg = f"Required 'compute.instanceGroupManagers.update' permission for 'projects/{PROJECT}/zones/{ZONE}/x'"
    gke.inject("POST", "/deleteInstances$", 403, body=compute_error(403, "forbidden", msg))
    with pytest.raises(AuthFailed, match=re.escape("compute.instanceGroupManagers.update")):
        provider(gke).remove_nodes(CID, names[:1])


def test_missing_group_is_a_provider_error_not_not_found(gke: FakeGke) -> None:
    """The cluster exists: a 404 on its MIG must not tell the reconciler the cluster is gone."""
    names = ready(gke, nodes=2)
    gke.inject("GET", MIG_PATH + "$", 404, body=compute_error(404, "notFound", "The resource 'x' was not found"))
    with pytest.raises(ProviderError) as info:
        provider(gke).remove_nodes(CID, names[:1])
    assert not isinstance(info.value, NotFound)
    assert info.value.retryable


def test_group_not_ready_is_cluster_busy(gke: FakeGke) -> None:
    names = ready(gke, nodes=2)
    msg = f"The resource 'projects/{PROJECT}/zones/{ZONE}/instanceGroupManagers/x' is not ready"
    gke.inject("POST", "/deleteInstances$", 400, body=compute_error(400, "resourceNotReady", msg))
    with pytest.raises(ClusterBusy):
        provider(gke).remove_nodes(CID, names[:1])


def test_pool_without_groups_is_a_provider_error(gke: FakeGke) -> None:
    names = ready(gke, nodes=1)
    pool = gke.cluster(PROJECT, ZONE, CID)["nodePools"][0]  # type: ignore[index]
    assert pool["name"] == NODE_POOL
    pool["instanceGroupUrls"] = []
    with pytest.raises(ProviderError, match="no instance groups"):
        provider(gke).remove_nodes(CID, names)
