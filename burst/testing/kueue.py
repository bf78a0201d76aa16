"""Kueue for tests: its CRDs as manifests, and the few controller steps tests play.

:func:`install_manifests` is a stand-in for Kueue's release ``manifests.yaml``: the
``kueue-system`` namespace and the ``kueue.x-k8s.io/v1beta1`` CRDs (names, scopes and status
subresources as Kueue v0.14 defines them; no schemas — the test API server does not validate).
Applied to a :class:`~burst.testing.kube_server.KubeApiServer`, which serves CRDs, they make it
serve Kueue's kinds as a real cluster with Kueue installed does.

The functions below them are what Kueue's controllers would do, done on request by a test: admit
a Workload (reserve quota, pass the admission checks), dispatch it to a worker (MultiKueue's copy),
finish it.  They take the test server (Python API), never burst's code.
"""

from __future__ import annotations

from typing import Any

import yaml

from burst.testing.kube_server import KubeApiServer

JSON = dict[str, Any]

KUEUE = "kueue.x-k8s.io/v1beta1"
NS = "kueue-system"

#: (kind, plural, namespaced, status subresource) of the Kueue kinds burst touches.
KINDS: tuple[tuple[str, str, bool, bool], ...] = (
    ("Workload", "workloads", True, True),
    ("LocalQueue", "localqueues", True, True),
    ("ClusterQueue", "clusterqueues", False, True),
    ("ResourceFlavor", "resourceflavors", False, False),
    ("AdmissionCheck", "admissionchecks", False, True),
    ("MultiKueueConfig", "multikueueconfigs", False, False),
    ("MultiKueueCluster", "multikueueclusters", False, True),
    ("WorkloadPriorityClass", "workloadpriorityclasses", False, False),
)


def crds() -> list[JSON]:
    out = []
    for kind, plural, namespaced, status in KINDS:
        version: JSON = {
            "name": "v1beta1",
            "served": True,
            "storage": True,
            "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
        }
        if status:
            version["subresources"] = {"status": {}}
        out.append(
            {
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": f"{plural}.kueue.x-k8s.io"},
                "spec": {
                    "group": "kueue.x-k8s.io",
                    "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"},
                    "scope": "Namespaced" if namespaced else "Cluster",
                    "versions": [version],
                },
            }
        )
    return out


def install_manifests(*, deployment: bool = False) -> str:
    """A multi-document YAML like Kueue's ``manifests.yaml`` (namespace, CRDs, optionally the
    controller Deployment)."""
    docs: list[JSON] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}, *crds()]
    if deployment:
        docs.append(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "kueue-controller-manager", "namespace": NS},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": {"control-plane": "controller-manager"}},
                    "template": {
                        "metadata": {"labels": {"control-plane": "controller-manager"}},
                        "spec": {"containers": [{"name": "manager", "image": "registry.k8s.io/kueue/kueue:v0.14.4"}]},
                    },
                },
            }
        )
    return yaml.safe_dump_all(docs, sort_keys=False)


def install(server: KubeApiServer) -> None:
    """Kueue installed on ``server`` (as ``kubectl apply -f manifests.yaml`` would)."""
    for doc in yaml.safe_load_all(install_manifests()):
        server.create(doc)


def manager_setup(
    server: KubeApiServer,
    *,
    check: str = "multikueue",
    config: str = "multikueue",
    cluster_queue: str = "cluster-queue",
    local_queues: tuple[tuple[str, str], ...] = (("default", "user-queue"),),
    clusters: tuple[str, ...] = ("onprem",),
    cpu: str = "1000",
) -> None:
    """A MultiKueue manager as Kueue's setup guide makes it: a ClusterQueue with the MultiKueue
    AdmissionCheck, its MultiKueueConfig listing ``clusters``, and LocalQueues feeding it."""
    install(server)
    server.create({"apiVersion": KUEUE, "kind": "ResourceFlavor", "metadata": {"name": "default-flavor"}})
    server.create(
        {
            "apiVersion": KUEUE,
            "kind": "AdmissionCheck",
            "metadata": {"name": check},
            "spec": {
                "controllerName": "kueue.x-k8s.io/multikueue",
                "parameters": {"apiGroup": "kueue.x-k8s.io", "kind": "MultiKueueConfig", "name": config},
            },
        }
    )
    server.create(
        {
            "apiVersion": KUEUE,
            "kind": "MultiKueueConfig",
            "metadata": {"name": config},
            "spec": {"clusters": list(clusters)},
        }
    )
    server.create(cluster_queue_obj(cluster_queue, cpu=cpu, checks=(check,)))
    for ns, lq in local_queues:
        if server.find("v1", "namespaces", ns) is None:
            server.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        server.create(
            {
                "apiVersion": KUEUE,
                "kind": "LocalQueue",
                "metadata": {"name": lq, "namespace": ns},
                "spec": {"clusterQueue": cluster_queue},
            }
        )


def cluster_queue_obj(name: str, *, cpu: str, memory: str = "4Ti", checks: tuple[str, ...] = ()) -> JSON:
    spec: JSON = {
        "namespaceSelector": {},
        "resourceGroups": [
            {
                "coveredResources": ["cpu", "memory"],
                "flavors": [
                    {
                        "name": "default-flavor",
                        "resources": [{"name": "cpu", "nominalQuota": cpu}, {"name": "memory", "nominalQuota": memory}],
                    }
                ],
            }
        ],
    }
    if checks:
        spec["admissionChecks"] = list(checks)
    return {"apiVersion": KUEUE, "kind": "ClusterQueue", "metadata": {"name": name}, "spec": spec}


def workload(
    name: str,
    *,
    namespace: str = "default",
    queue: str = "user-queue",
    count: int = 1,
    cpu: str = "1",
    memory: str = "1Gi",
    gpus: int = 0,
    pod_sets: list[JSON] | None = None,
    created: str | None = None,
) -> JSON:
    """A Workload as Kueue's job integration makes it for a Job (one pod set ``main``)."""
    requests: JSON = {"cpu": cpu, "memory": memory}
    if gpus:
        requests["nvidia.com/gpu"] = str(gpus)
    sets = pod_sets or [
        {
            "name": "main",
            "count": count,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "busybox", "resources": {"requests": requests}}],
                }
            },
        }
    ]
    meta: JSON = {"name": name, "namespace": namespace}
    if created:
        meta["creationTimestamp"] = created
    return {"apiVersion": KUEUE, "kind": "Workload", "metadata": meta, "spec": {"queueName": queue, "podSets": sets}}


def _conditions(server: KubeApiServer, wl: JSON, **status: str) -> None:
    meta = wl["metadata"]
    for type_, value in status.items():
        server.set_condition(KUEUE, "workloads", meta["name"], type_, value, namespace=meta["namespace"])


def reserve(server: KubeApiServer, namespace: str, name: str, cluster_queue: str) -> None:
    """Kueue's scheduler reserved quota for the Workload in ``cluster_queue``."""
    wl = server.get(KUEUE, "workloads", name, namespace)
    assignments = [
        {"name": ps["name"], "count": ps.get("count", 1), "flavors": {"cpu": "default-flavor"}}
        for ps in wl["spec"]["podSets"]
    ]
    server.set_status(
        KUEUE,
        "workloads",
        name,
        {"admission": {"clusterQueue": cluster_queue, "podSetAssignments": assignments}},
        namespace,
    )
    _conditions(server, wl, QuotaReserved="True")


def admit(server: KubeApiServer, namespace: str, name: str, cluster_queue: str) -> None:
    """Quota reserved and every admission check Ready: the Workload is Admitted."""
    reserve(server, namespace, name, cluster_queue)
    _conditions(server, server.get(KUEUE, "workloads", name, namespace), Admitted="True")


def finish(server: KubeApiServer, namespace: str, name: str) -> None:
    _conditions(server, server.get(KUEUE, "workloads", name, namespace), Finished="True")
