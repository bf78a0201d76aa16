"""Node release (``ReleasesNodes.release_idle``) and ``CountsRunning.running`` of the kubefed and
Karmada federations, against a fake federation control plane and a fake member API server.

Both share the member-side logic (:class:`burst.federation.kube.MemberNodes`), so every test runs
for both."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from burst.api import FederationContext, SimClock
from burst.federation.api import CountsRunning, ReleasesNodes
from burst.federation.karmada import KarmadaConfig, KarmadaFederation
from burst.federation.kubefed import KubefedConfig, KubefedFederation
from burst.testing.kube_server import KubeApiServer
from tests.kube.conftest import record

RELEASED_BY = "burst.released-by"
CORDONED_BY = "burst.cordoned-by"
OWNER = "cern-burst"

Fed = KubefedFederation | KarmadaFederation


@pytest.fixture(params=["kubefed", "karmada"])
def fed(request: pytest.FixtureRequest, host: KubeApiServer, clock: SimClock, tmp_path: Path) -> Fed:
    (tmp_path / "cp.kubeconfig").write_text(host.kubeconfig())
    config: KubefedConfig | KarmadaConfig
    if request.param == "kubefed":
        config = KubefedConfig(host_kubeconfig="cp.kubeconfig")
    else:
        config = KarmadaConfig(kubeconfig="cp.kubeconfig")
    built = config.build(FederationContext(clock=clock, owner=OWNER, config_dir=str(tmp_path)))
    assert isinstance(built, KubefedFederation | KarmadaFederation)
    return built


@pytest.fixture
def busy_member(fed: Fed, member: KubeApiServer) -> KubeApiServer:
    """Four nodes, joined; jobs on node-1 and node-2; node-3 and node-4 run only what is not work."""
    member.add_node("node-3")
    member.add_node("node-4")
    fed.join(record(), member.kubeconfig())
    member.add_pod("job-a", phase="Running", node="node-1")
    member.add_pod("job-b", node="node-2")  # bound, starting: work
    member.add_pod("startd", phase="Running", node="node-3")
    member.patch(
        "v1", "pods", "startd", {"metadata": {"ownerReferences": [{"kind": "DaemonSet", "name": "s"}]}}, "default"
    )
    member.add_pod("done", phase="Succeeded", node="node-4")
    member.add_pod("failed", phase="Failed", node="node-3")
    member.add_pod("kube-proxy", namespace="kube-system", phase="Running", node="node-4")
    member.add_pod("queued")  # unbound: on no node
    return member


def nodes(member: KubeApiServer) -> dict[str, dict[str, Any]]:
    return {n["metadata"]["name"]: n for n in member.objects("v1", "nodes")}


def cordoned(member: KubeApiServer) -> set[str]:
    return {name for name, n in nodes(member).items() if n["spec"].get("unschedulable")}


def marked(member: KubeApiServer) -> set[str]:
    return {name for name, n in nodes(member).items() if RELEASED_BY in (n["metadata"].get("annotations") or {})}


def node_writes(member: KubeApiServer) -> list[str]:
    return [r.path for r in member.requests if r.method != "GET" and "/nodes" in r.path]


def test_idle_nodes_are_cordoned_marked_and_returned(fed: Fed, busy_member: KubeApiServer) -> None:
    assert isinstance(fed, ReleasesNodes) and isinstance(fed, CountsRunning)
    assert fed.running(record()) == 2
    assert cordoned(busy_member) == set()  # running() changes nothing

    assert fed.release_idle(record(), 4) == ["node-3", "node-4"]
    assert cordoned(busy_member) == marked(busy_member) == {"node-3", "node-4"}
    annotations = nodes(busy_member)["node-3"]["metadata"]["annotations"]
    assert annotations == {RELEASED_BY: OWNER, CORDONED_BY: OWNER}
    # the check after the cordon asked for exactly the pods of each picked node
    checks = [r.query.get("fieldSelector", "") for r in busy_member.requests if r.path == "/api/v1/pods"]
    assert "spec.nodeName=node-3,status.phase!=Succeeded,status.phase!=Failed" in checks
    assert fed.running(record()) == 2


def test_count_caps_and_a_retry_returns_the_same_nodes_first(fed: Fed, busy_member: KubeApiServer) -> None:
    assert fed.release_idle(record(), 0) == []
    assert fed.release_idle(record(), 1) == ["node-3"]
    assert cordoned(busy_member) == {"node-3"}

    busy_member.add_node("node-0")  # idle, and first by name: still the marked node comes first
    busy_member.clear_requests()
    assert fed.release_idle(record(), 1) == ["node-3"]
    assert node_writes(busy_member) == []  # already marked and cordoned: nothing written
    assert fed.release_idle(record(), 3) == ["node-3", "node-0", "node-4"]


def test_a_node_that_takes_a_pod_during_the_cordon_is_given_back(fed: Fed, busy_member: KubeApiServer) -> None:
    # the scheduler binds a pod to node-4 just before burst's cordon reaches it
    busy_member.on_request("PATCH", "/api/v1/nodes/node-4", lambda: busy_member.add_pod("late", node="node-4"))
    assert fed.release_idle(record(), 4) == ["node-3"]
    assert cordoned(busy_member) == marked(busy_member) == {"node-3"}
    assert not nodes(busy_member)["node-4"]["metadata"].get("annotations")  # mark and cordon undone


def test_a_marked_node_that_took_work_is_given_back_on_the_next_call(fed: Fed, busy_member: KubeApiServer) -> None:
    assert fed.release_idle(record(), 2) == ["node-3", "node-4"]
    busy_member.add_pod("pinned", phase="Running", node="node-4")  # nodeName set directly: no scheduler
    assert fed.release_idle(record(), 2) == ["node-3"]
    assert cordoned(busy_member) == marked(busy_member) == {"node-3"}


def test_on_a_draining_member_a_busy_node_stays_cordoned_but_is_not_returned(
    fed: Fed, busy_member: KubeApiServer
) -> None:
    assert fed.drain(record()) == 2
    busy_member.on_request("PATCH", "/api/v1/nodes/node-4", lambda: busy_member.add_pod("late", node="node-4"))
    before = cordoned(busy_member)
    assert fed.release_idle(record(), 4) == ["node-3"]
    assert marked(busy_member) == {"node-3"}
    assert cordoned(busy_member) == before | {"node-3", "node-4"}  # node-4 not uncordoned while draining


def test_undrain_leaves_nodes_picked_for_release_fenced(fed: Fed, busy_member: KubeApiServer) -> None:
    busy_member.add_node("operator-cordoned", unschedulable=True)
    fed.drain(record())
    assert fed.release_idle(record(), 4) == ["node-3", "node-4"]  # never a node someone else cordoned
    busy_member.delete("v1", "nodes", "node-3")  # the provider removed this one
    fed.undrain(record())
    # node-4 may be on its way out (its VM deleting): a pod bound there would die with it
    assert cordoned(busy_member) == {"operator-cordoned", "node-4"}
    assert marked(busy_member) == {"node-4"}
    assert not any(n["metadata"].get("annotations") for k, n in nodes(busy_member).items() if k != "node-4")
    # the next release returns it first (a retry of a removal that failed)
    assert fed.release_idle(record(), 1) == ["node-4"]


def test_a_never_joined_member_has_nothing_to_release(fed: Fed) -> None:
    assert fed.release_idle(record("never"), 3) == []
    assert fed.running(record("never")) == 0


def test_control_plane_nodes_are_never_released(fed: Fed, member: KubeApiServer) -> None:
    member.add_node("master-0", labels={"node-role.kubernetes.io/control-plane": ""})
    fed.join(record(), member.kubeconfig())
    assert fed.release_idle(record(), 5) == ["node-1", "node-2"]
