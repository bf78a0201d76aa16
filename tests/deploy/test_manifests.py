"""The kustomize overlays render, validate against the Kubernetes schemas, hang together, and grant
burst's service account exactly the API calls burst makes.

The RBAC test runs what each overlay's own burst.yaml sets up — the Lease, the kubernetes backlog
source, the KubeFed host side of join/drain/unjoin — with the rendered in-cluster kubeconfig and a
service-account token against the test API server, records every request, and compares the
(verb, group, resource, namespace, name) of each with the rendered Roles and ClusterRoles.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from sqlalchemy.engine import make_url

from burst import config as config_mod
from burst.backlog.api import BacklogContext
from burst.clock import SimClock
from burst.daemon import LeaseElector
from burst.federation.api import FederationContext
from burst.lifecycle import ClusterRecord, ClusterState
from burst.testing.kube_server import KubeApiServer, ResourceKind
from tests.deploy.manifests import (
    OVERLAYS,
    Access,
    access_of,
    allows,
    config_text,
    container,
    grants,
    materialize,
    one,
    render,
)

#: The Kubernetes version the manifests are validated for (the oldest minor burst supports).
K8S_VERSION = "1.32.0"
NOW = datetime(2027, 3, 10, 12, 0, tzinfo=UTC)
KFS = "kube-federation-system"


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {o: render(o) for o in OVERLAYS}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_builtin_object_validates_against_the_pinned_schemas(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    kinds = set()
    for doc in rendered[overlay]:
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # a CRD: checked by hand below
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        kinds.add(doc["kind"])
    assert {
        "Namespace",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ConfigMap",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "NetworkPolicy",
    } <= kinds


def test_a_broken_manifest_is_rejected_by_the_validation(rendered: dict[str, list[dict[str, Any]]]) -> None:
    deploy = one(rendered["local"], "Deployment")
    bad = yaml.safe_load(yaml.safe_dump(deploy))
    bad["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_pieces_fit(rendered: dict[str, list[dict[str, Any]]], overlay: str, tmp_path: Path) -> None:
    docs = rendered[overlay]
    deploy = one(docs, "Deployment")
    ns = deploy["metadata"]["namespace"]
    spec = deploy["spec"]
    pod = spec["template"]["spec"]
    c = container(docs)
    assert spec["replicas"] == 2
    pod_labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= pod_labels.items()
    # the status port: what burst listens on, what the probes, the Service and the policy use
    port = int(c["args"][c["args"].index("--metrics-port") + 1])
    assert c["args"][c["args"].index("--metrics-host") + 1] == "0.0.0.0"
    named = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert named == {"status": port}
    for probe in ("livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"] == {"path": "/healthz", "port": "status"}
    svc = one(docs, "Service")
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    assert svc["spec"]["ports"][0]["targetPort"] == "status"
    sm = one(docs, "ServiceMonitor")
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sm["spec"]["endpoints"][0]["port"] == svc["spec"]["ports"][0]["name"]
    assert sm["spec"]["endpoints"][0]["path"] == "/metrics"
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    netpol = one(docs, "NetworkPolicy")
    assert netpol["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert [p["port"] for r in netpol["spec"]["ingress"] for p in r["ports"]] == [port]
    # non-root, read-only, no privileges: what the image (uid 10001) allows
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert pod["serviceAccountName"] == one(docs, "ServiceAccount")["metadata"]["name"]
    # credentials only from Secrets, never in the ConfigMap
    assert all("value" not in e for e in c["env"])
    # the config is valid for burst, and its Lease is the one the Role names
    path = tmp_path / "burst.yaml"
    path.write_text(config_text(docs))
    cfg = config_mod.load(path)
    assert make_url(cfg.file.state).password is None  # PGPASSWORD, from the burst-state Secret
    le = cfg.file.leader_election
    assert le is not None and le.namespace == ns
    lease_rules = [r for r in one(docs, "Role", "burst-leader-election")["rules"] if r.get("resourceNames")]
    assert lease_rules and all(r["resourceNames"] == [le.name] for r in lease_rules)


# --- RBAC: what burst calls, and nothing more ----------------------------------------------------


def _member_record(cid: str) -> ClusterRecord:
    return ClusterRecord(
        cid, "aws", "eu-central-1", "m5.2xlarge", 8, 32768, 0, 2, 2, ClusterState.JOINING, NOW, NOW, 0.4, 0.1, "EUR"
    )


def exercise(cfg: config_mod.Config, host: KubeApiServer, karmada: KubeApiServer, clock: SimClock) -> None:
    """What a daemon with this config asks of the cluster it runs in (and of the Karmada API
    server), each path at least once."""
    le = cfg.file.leader_election
    if le is not None:
        a = LeaseElector(le, cfg.config_dir, clock)
        b = LeaseElector(le.model_copy(update={"identity": "replica-b"}), cfg.config_dir, clock)
        assert a.try_lead() and not b.try_lead()
        clock.advance(10)
        assert a.try_lead()  # renew
        a.release()
        assert b.try_lead()  # take over a released lease
    if cfg.backlog.kind == "kubernetes":
        host.add_node("onprem-1", cpu="8")
        host.add_pod("waiting", namespace="default", cpu="4", phase="Pending", unschedulable=True)
        host.add_pod("running", namespace="default", cpu="2", phase="Running", node="onprem-1")
        host.create(
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"name": "held", "namespace": "default"},
                "spec": {
                    "suspend": True,
                    "parallelism": 2,
                    "template": {"spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]}},
                },
            }
        )
        demand = cfg.backlog.build(BacklogContext(clock=clock, config_dir=cfg.config_dir)).poll()
        assert demand.pending_cores >= 4 and not demand.stale
    if cfg.federation.kind == "kubefed":
        fed = cfg.federation.build(
            FederationContext(clock=clock, owner=cfg.file.installation, config_dir=cfg.config_dir)
        )
        with KubeApiServer(clock=clock.now) as member:
            member.add_node("burst-node-1", cpu="8")
            rec = _member_record("burst-aws-00001")
            assert not fed.join(rec, member.kubeconfig()).ready
            host.set_condition(
                "core.kubefed.io/v1beta1", "kubefedclusters", rec.cluster_id, "Ready", "True", namespace=KFS
            )
            assert fed.join(rec, member.kubeconfig()).ready
            fed.drain(rec)
            fed.undrain(rec)
            fed.unjoin(rec)
    if cfg.federation.kind == "karmada":
        fed = cfg.federation.build(
            FederationContext(clock=clock, owner=cfg.file.installation, config_dir=cfg.config_dir)
        )
        with KubeApiServer(clock=clock.now) as member:
            member.add_node("burst-node-1", cpu="8")
            rec = _member_record("burst-gce-00001")
            assert not fed.join(rec, member.kubeconfig()).ready
            karmada.set_condition("cluster.karmada.io/v1alpha1", "clusters", rec.cluster_id, "Ready", "True")
            assert fed.join(rec, member.kubeconfig()).ready
            fed.drain(rec)
            fed.undrain(rec)
            fed.unjoin(rec)


def karmada_kubeconfig(karmada: KubeApiServer, docs: list[dict[str, Any]]) -> str:
    """Apply the karmada-apiserver kustomization to the Karmada API server and return a kubeconfig
    with the token its service-account Secret gets (what an operator puts in burst-files)."""
    for ns in ("karmada-system", "karmada-cluster"):
        karmada.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    for doc in docs:
        karmada.create(doc)
    secret = one(docs, "Secret")["metadata"]
    token = base64.b64decode(karmada.get("v1", "secrets", secret["name"], secret["namespace"])["data"]["token"])
    return karmada.kubeconfig(token=token.decode(), name="karmada-apiserver")


def check_rbac(where: str, docs: list[dict[str, Any]], used: set[Access], sa: str, sa_namespace: str) -> None:
    granted = grants(docs, sa, sa_namespace)
    denied = sorted(str(a) for a in used if not any(allows(g, a) for g in granted))
    assert not denied, f"{where}: burst makes calls its RBAC does not allow: {denied}"
    unused = sorted(str(g) for g in granted if not any(allows(g, a) for a in used))
    assert not unused, f"{where}: RBAC grants what burst never calls: {unused}"
    assert all("*" not in (g.verb, g.group, g.resource) for g in granted)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rbac_allows_every_call_burst_makes_and_nothing_else(
    rendered: dict[str, list[dict[str, Any]]], overlay: str, tmp_path: Path
) -> None:
    docs = rendered[overlay]
    karmada_docs = render("karmada/karmada-apiserver")
    clock = SimClock(NOW)
    with KubeApiServer(clock=clock.now) as host, KubeApiServer(clock=clock.now) as karmada:
        for ns in ("burst", KFS):
            host.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        host.register_kind(ResourceKind("types.kubefed.io", "v1beta1", "federatedjobs", "FederatedJob", True))
        files = {
            "karmada-apiserver.kubeconfig": karmada_kubeconfig(karmada, karmada_docs),
            "pool.token": "not read by these flows",
        }
        pod = materialize(docs, tmp_path, host, secrets={"burst-state": {"password": "x"}, "burst-files": files})
        cfg = config_mod.load(pod.config)
        host.clear_requests()
        karmada.clear_requests()
        exercise(cfg, host, karmada, clock)
        used = {a for r in host.requests if (a := access_of(r.method, r.path, r.query)) is not None}
        used_karmada = {a for r in karmada.requests if (a := access_of(r.method, r.path, r.query)) is not None}

    sa = one(docs, "ServiceAccount")["metadata"]
    check_rbac(overlay, docs, used, sa["name"], sa["namespace"])
    if cfg.file.leader_election is not None:
        assert any(a.resource == "leases" and a.verb == "update" for a in used)  # the flows did run
    if cfg.federation.kind == "karmada":
        check_rbac("the Karmada API server", karmada_docs, used_karmada, "burst", "karmada-system")
    else:
        assert not used_karmada


def test_the_request_mapping_matches_kubernetes_rbac_attributes() -> None:
    assert access_of("GET", "/api/v1/pods", {}) == Access("list", "", "pods", "", "")
    assert access_of("GET", "/api/v1/namespaces/a/pods", {"watch": "true"}) == Access("watch", "", "pods", "a", "")
    assert access_of("PUT", "/apis/coordination.k8s.io/v1/namespaces/burst/leases/l", {}) == Access(
        "update", "coordination.k8s.io", "leases", "burst", "l"
    )
    assert access_of("PATCH", "/api/v1/nodes/n1/status", {}) == Access("patch", "", "nodes/status", "", "n1")
    assert access_of("DELETE", "/api/v1/namespaces/a/secrets", {}) == Access("deletecollection", "", "secrets", "a", "")
    assert access_of("GET", "/apis/batch/v1", {}) is None and access_of("GET", "/version", {}) is None


def test_state_password_and_cloud_credentials_come_from_secrets(rendered: dict[str, list[dict[str, Any]]]) -> None:
    c = container(rendered["kubefed"])
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c["env"]}
    assert refs == {"PGPASSWORD": {"name": "burst-state", "key": "password"}}
    assert c["envFrom"] == [{"secretRef": {"name": "burst-cloud-credentials", "optional": True}}]
    assert timedelta(
        seconds=one(rendered["kubefed"], "Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    ) >= timedelta(seconds=30)
