"""Create → READY → resize → delete across polls, idempotency and ownership, with the real
ClusterManagerClient (REST) talking to the fake GKE server; assertions read what the SDK sent."""

from __future__ import annotations

import pytest
from burst_gce import NODE_POOL, ClusterBusy, GceProvider, NotOwned, RequestRejected

from burst.api import CloudStatus, NotFound, ProviderError

from .fake_gke import FakeGke
from .support import OWNER, PROJECT, ZONE, _check, cluster_path, create_until_ready, provider, spec


def test_provider_satisfies_the_protocol(gke: FakeGke) -> None:
    from burst.api import Provider

    p = provider(gke)
    assert isinstance(_check(p), Provider)


def test_create_sends_one_cluster_with_one_pool_and_follows_it_to_ready(gke: FakeGke) -> None:
    gke.create_polls = 4
    p = provider(gke)
    first = p.create_cluster(spec(nodes=3))
    assert first.status is CloudStatus.CREATING
    assert first.desired_nodes == 3
    assert "operation operation-" in first.message

    (post,) = gke.sent("POST", r"/clusters$")
    assert post.path == f"/v1/projects/{PROJECT}/locations/{ZONE}/clusters"
    assert post.query == {"$alt": ["json;enum-encoding=int"]}
    assert "authorization" not in post.headers  # anonymous credentials send no token
    body = post.body["cluster"]
    assert body["name"] == "burst-c1"
    assert body["network"] == "default"
    assert body["resourceLabels"] == {
        "burst-owner": OWNER,
        "burst-cluster": "burst-c1",
        "burst-campaign": "moriond-2027",
    }
    (pool,) = body["nodePools"]
    assert pool["name"] == NODE_POOL
    assert pool["initialNodeCount"] == 3
    assert pool["config"] == {"machineType": "n2-standard-8", "spot": True}
    assert pool["autoscaling"].get("enabled", False) is False
    assert "initialNodeCount" not in body  # node count lives on the pool only

    answers = create_until_ready(p, spec(nodes=3))
    statuses = [a.status for a in answers]
    assert statuses[0] is CloudStatus.CREATING and statuses[-1] is CloudStatus.READY
    assert len(gke.sent("POST", r"/clusters$")) == 1  # never a second create
    ready = answers[-1]
    assert (ready.nodes, ready.desired_nodes, ready.flavor, ready.region) == (3, 3, "n2-standard-8", ZONE)
    assert ready.tags["burst.owner"] == OWNER and ready.tags["burst.cluster"] == "burst-c1"
    # Following the operation: the provider polled it by the name create returned.
    assert gke.sent("GET", r"/operations/operation-")


def test_cluster_running_with_pool_still_provisioning_is_not_ready(gke: FakeGke) -> None:
    gke.create_polls = 1
    gke.pool_lag_polls = 3
    p = provider(gke)
    p.create_cluster(spec())
    seen = []
    for _ in range(10):
        c = p.get_cluster("burst-c1")
        cluster = gke.cluster(PROJECT, ZONE, "burst-c1")
        assert cluster is not None
        seen.append((cluster["status"], cluster["nodePools"][0]["status"], c.status))
        if c.status is CloudStatus.READY:
            break
    assert ("RUNNING", "PROVISIONING", CloudStatus.CREATING) in seen
    assert seen[-1] == ("RUNNING", "RUNNING", CloudStatus.READY)


def test_resize_uses_set_size_and_is_idempotent(gke: FakeGke) -> None:
    p = provider(gke)
    create_until_ready(p, spec(nodes=3))
    gke.clear_requests()

    r = p.resize("burst-c1", 5)
    assert (r.status, r.nodes, r.desired_nodes) == (CloudStatus.RESIZING, 3, 5)
    (call,) = gke.sent("POST", r":setSize$")
    assert call.path == cluster_path("burst-c1") + f"/nodePools/{NODE_POOL}:setSize"
    assert call.body["nodeCount"] == 5

    again = p.resize("burst-c1", 5)  # same size while ours is in flight: no second call
    assert again.status is CloudStatus.RESIZING
    assert len(gke.sent("POST", r":setSize$")) == 1

    for _ in range(10):
        c = p.get_cluster("burst-c1")
        if c.status is CloudStatus.READY:
            break
    assert (c.status, c.nodes, c.desired_nodes) == (CloudStatus.READY, 5, 5)
    gke.clear_requests()
    same = p.resize("burst-c1", 5)
    assert same.status is CloudStatus.READY
    assert gke.sent("POST") == []  # asking for the current size is a no-op

    down = p.resize("burst-c1", 1)
    assert down.desired_nodes == 1
    assert [r.body["nodeCount"] for r in gke.sent("POST", r":setSize$")] == [1]


def test_resize_of_a_cluster_still_being_created_is_retried_later(gke: FakeGke) -> None:
    gke.create_polls = 5
    p = provider(gke)
    p.create_cluster(spec())
    with pytest.raises(ClusterBusy) as err:
        p.resize("burst-c1", 4)
    assert err.value.retryable
    assert gke.sent("POST", r":setSize$") == []


def test_delete_reports_deleting_then_not_found(gke: FakeGke) -> None:
    gke.delete_polls = 3
    p = provider(gke)
    create_until_ready(p, spec())
    first = p.delete_cluster("burst-c1")
    assert first.status is CloudStatus.DELETING
    (call,) = gke.sent("DELETE")
    assert call.path == cluster_path("burst-c1")
    statuses = []
    with pytest.raises(NotFound):
        for _ in range(10):
            statuses.append(p.delete_cluster("burst-c1").status)
    assert statuses and set(statuses) == {CloudStatus.DELETING}
    assert len(gke.sent("DELETE")) == 1  # later ticks only poll
    assert gke.clusters == {}
    with pytest.raises(NotFound):
        p.get_cluster("burst-c1")


def test_delete_while_create_runs_waits_for_it(gke: FakeGke) -> None:
    gke.create_polls = 4
    p = provider(gke)
    p.create_cluster(spec())
    waiting = p.delete_cluster("burst-c1")
    assert waiting.status is CloudStatus.DELETING
    assert "currently creating cluster burst-c1" in waiting.message
    with pytest.raises(NotFound):
        for _ in range(20):
            p.delete_cluster("burst-c1")
    deletes = gke.sent("DELETE")
    assert len(deletes) >= 2  # refused (400 FAILED_PRECONDITION) at first, accepted once the create was done
    assert gke.clusters == {}


def test_delete_of_a_missing_cluster_is_not_found(gke: FakeGke) -> None:
    with pytest.raises(NotFound):
        provider(gke).delete_cluster("burst-gone")
    assert gke.sent("DELETE") == []


def test_create_is_idempotent_across_provider_instances(gke: FakeGke) -> None:
    """A restarted provider (no memory) finds the cluster by name and its operation by listing."""
    gke.create_polls = 5
    first = provider(gke).create_cluster(spec())
    gke.clear_requests()
    fresh = provider(gke)
    again = fresh.create_cluster(spec())
    assert again.status is CloudStatus.CREATING
    assert gke.sent("POST") == []
    assert gke.sent("GET", r"/operations$"), "a fresh provider finds the operation by listing"
    op_name = first.message.split()[1]
    assert op_name in again.message
    create_until_ready(fresh, spec())
    assert len(gke.clusters) == 1


def test_conflict_on_create_adopts_the_cluster_when_its_labels_match(gke: FakeGke) -> None:
    """Another replica created it between our look and our create: 409 → read it, adopt it."""
    other = provider(gke)
    other.create_cluster(spec())
    gke.inject_error("GET", r"/clusters/burst-c1$", 404, "NOT_FOUND", "Not found: burst-c1.")  # our stale look
    answer = provider(gke).create_cluster(spec())
    assert answer.status is CloudStatus.CREATING
    posts = gke.sent("POST", r"/clusters$")
    assert len(posts) == 2  # ours got 409 ALREADY_EXISTS
    assert len(gke.clusters) == 1


def test_a_foreign_cluster_of_the_same_name_is_never_touched(gke: FakeGke) -> None:
    gke.add_cluster(PROJECT, ZONE, "burst-c1", labels={"team": "atlas"})
    p = provider(gke)
    with pytest.raises(NotOwned):
        p.create_cluster(spec())
    with pytest.raises(NotOwned):
        p.delete_cluster("burst-c1")
    with pytest.raises(NotOwned):
        p.resize("burst-c1", 9)
    with pytest.raises(NotOwned):
        p.credentials("burst-c1")
    assert gke.sent("POST") == [] and gke.sent("DELETE") == []


def test_another_owners_cluster_of_the_same_name_is_never_touched(gke: FakeGke) -> None:
    provider(gke, owner="someone-else").create_cluster(spec(owner="someone-else"))
    with pytest.raises(NotOwned):
        provider(gke).delete_cluster("burst-c1")
    assert gke.sent("DELETE") == []


def test_list_returns_only_this_owners_clusters(gke: FakeGke) -> None:
    gke.add_cluster(PROJECT, ZONE, "unlabelled")
    gke.add_cluster(PROJECT, ZONE, "theirs", labels={"burst-owner": "other-site", "burst-cluster": "theirs"})
    p = provider(gke)
    p.create_cluster(spec("burst-a", nodes=2))
    p.create_cluster(spec("burst-b", nodes=4, flavor="n1-standard-8+t4"))
    got = sorted(p.list_clusters(OWNER), key=lambda c: c.cluster_id)
    assert [c.cluster_id for c in got] == ["burst-a", "burst-b"]
    assert [c.flavor for c in got] == ["n2-standard-8", "n1-standard-8+t4"]
    assert all(c.tags["burst.owner"] == OWNER for c in got)
    assert [c.cluster_id for c in provider(gke, owner="other-site").list_clusters("other-site")] == ["theirs"]
    (listing, *_) = gke.sent("GET", r"/clusters$")
    assert listing.path == f"/v1/projects/{PROJECT}/locations/{ZONE}/clusters"


def test_list_with_unreachable_zones_is_an_error_not_a_short_list(gke: FakeGke) -> None:
    p = provider(gke)
    p.create_cluster(spec())
    gke.missing_zones = ["europe-west4-b"]
    with pytest.raises(ProviderError, match="could not reach zones"):
        p.list_clusters(OWNER)


def test_quota_counts_this_owners_clusters_and_cores(gke: FakeGke) -> None:
    p = provider(gke, max_clusters=7)
    create_until_ready(p, spec("burst-a", nodes=2))
    q = p.quota()
    assert (q.max_clusters, q.used_clusters, q.used_cores, q.max_cores) == (7, 1, 16, None)


def test_gpu_flavor_asks_for_the_accelerator_and_reads_back(gke: FakeGke) -> None:
    p = provider(gke)
    create_until_ready(p, spec(flavor="n1-standard-8+t4", nodes=1))
    (post,) = gke.sent("POST", r"/clusters$")
    config = post.body["cluster"]["nodePools"][0]["config"]
    assert config["machineType"] == "n1-standard-8"
    (acc,) = config["accelerators"]
    assert acc["acceleratorType"] == "nvidia-tesla-t4"
    assert int(acc["acceleratorCount"]) == 1  # int64 travels as a JSON string
    assert acc["gpuDriverInstallationConfig"]["gpuDriverVersion"] in ("DEFAULT", 2)
    assert p.get_cluster("burst-c1").flavor == "n1-standard-8+t4"


def test_regional_location_pins_the_pool_to_one_zone(gke: FakeGke) -> None:
    p = provider(
        gke, location="europe-west4", node_zone="europe-west4-b", subnetwork="burst-sub", kubernetes_version="1.33"
    )
    p.create_cluster(spec())
    (post,) = gke.sent("POST", r"/clusters$")
    assert post.path == f"/v1/projects/{PROJECT}/locations/europe-west4/clusters"
    body = post.body["cluster"]
    assert body["nodePools"][0]["locations"] == ["europe-west4-b"]
    assert (body["subnetwork"], body["initialClusterVersion"]) == ("burst-sub", "1.33")


def test_invalid_cluster_ids_and_flavors_are_refused_before_any_call(gke: FakeGke) -> None:
    p = provider(gke)
    with pytest.raises(RequestRejected, match="GKE cluster name"):
        p.create_cluster(spec("Burst_Cluster.1"))
    with pytest.raises(RequestRejected, match="not offered"):
        p.create_cluster(spec(flavor="e2-standard-8"))
    assert gke.requests == []


def test_get_reads_node_pool_via_the_api_shape(gke: FakeGke) -> None:
    """The fake's nodePools.get answers what the SDK expects (used by operators' tooling)."""
    p: GceProvider = provider(gke)
    create_until_ready(p, spec(nodes=2))
    client = p._api()
    pool = client.get_node_pool(name=f"projects/{PROJECT}/locations/{ZONE}/clusters/burst-c1/nodePools/{NODE_POOL}")
    assert (pool.name, pool.initial_node_count, pool.config.machine_type, pool.config.spot) == (
        NODE_POOL,
        2,
        "n2-standard-8",
        True,
    )


@pytest.mark.parametrize(
    ("cluster_status", "pool_status", "expected"),
    [
        ("PROVISIONING", "PROVISIONING", CloudStatus.CREATING),
        ("RUNNING", "PROVISIONING", CloudStatus.CREATING),
        ("RUNNING", "RUNNING", CloudStatus.READY),
        ("RUNNING", "RUNNING_WITH_ERROR", CloudStatus.READY),
        ("RUNNING", "RECONCILING", CloudStatus.RESIZING),
        ("RUNNING", "ERROR", CloudStatus.FAILED),
        ("RECONCILING", "RUNNING", CloudStatus.RESIZING),
        ("STOPPING", "STOPPING", CloudStatus.DELETING),
        ("ERROR", "ERROR", CloudStatus.FAILED),
        ("DEGRADED", "RUNNING", CloudStatus.READY),
    ],
)
def test_every_gke_status_maps_to_a_cloud_status(
    gke: FakeGke, cluster_status: str, pool_status: str, expected: CloudStatus
) -> None:
    p = provider(gke)
    create_until_ready(p, spec())
    cluster = gke.cluster(PROJECT, ZONE, "burst-c1")
    assert cluster is not None
    with gke.lock:  # what GKE would report in that state
        cluster["status"] = cluster_status
        cluster["statusMessage"] = f"cluster says {cluster_status}"
        cluster["nodePools"][0]["status"] = pool_status
        cluster["nodePools"][0]["statusMessage"] = f"pool says {pool_status}"
    got = p.get_cluster("burst-c1")
    assert got.status is expected
    if cluster_status == "DEGRADED":
        assert got.message == "degraded: cluster says DEGRADED"
    if pool_status in ("RUNNING_WITH_ERROR", "ERROR") and cluster_status == "RUNNING":
        assert "pool says" in got.message
