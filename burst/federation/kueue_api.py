"""Kueue's API as burst reads and writes it (``kueue.x-k8s.io/v1beta1``, Kueue v0.9 – v0.14).

Shared by the ``kueue`` backlog source and the ``multikueue`` federation, so both agree on what a
pending, admitted or finished Workload is and on which ClusterQueues a MultiKueue AdmissionCheck
feeds.  Only the fields burst needs are read; everything else in Kueue's objects is left alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from burst.federation.kube import Kind, condition

JSON = dict[str, Any]

GROUP = "kueue.x-k8s.io"
VERSION = "v1beta1"
API_VERSION = f"{GROUP}/{VERSION}"

WORKLOAD = Kind(API_VERSION, "Workload", "workloads")
LOCAL_QUEUE = Kind(API_VERSION, "LocalQueue", "localqueues")
CLUSTER_QUEUE = Kind(API_VERSION, "ClusterQueue", "clusterqueues", namespaced=False)
RESOURCE_FLAVOR = Kind(API_VERSION, "ResourceFlavor", "resourceflavors", namespaced=False)
ADMISSION_CHECK = Kind(API_VERSION, "AdmissionCheck", "admissionchecks", namespaced=False)
MULTIKUEUE_CONFIG = Kind(API_VERSION, "MultiKueueConfig", "multikueueconfigs", namespaced=False)
MULTIKUEUE_CLUSTER = Kind(API_VERSION, "MultiKueueCluster", "multikueueclusters", namespaced=False)

#: ``spec.controllerName`` of a MultiKueue AdmissionCheck.
MULTIKUEUE_CONTROLLER = "kueue.x-k8s.io/multikueue"
#: The key of the kubeconfig in a MultiKueueCluster's Secret.
KUBECONFIG_KEY = "kubeconfig"


def is_true(obj: JSON | None, type_: str) -> bool:
    cond = condition(obj, type_)
    return cond is not None and cond.get("status") == "True"


def finished(wl: JSON) -> bool:
    return is_true(wl, "Finished")


def admitted(wl: JSON) -> bool:
    """Quota reserved and every admission check passed: the Workload's pods may run."""
    return is_true(wl, "Admitted")


def reserved(wl: JSON) -> bool:
    """Quota reserved in this cluster's ClusterQueue (on a worker: the copy runs here)."""
    return is_true(wl, "QuotaReserved") or admitted(wl)


def active(wl: JSON) -> bool:
    """``spec.active: false`` is a Workload an operator deactivated: not waiting for anything."""
    return (wl.get("spec") or {}).get("active", True) is not False


def cluster_queue_of(wl: JSON, local_queues: dict[tuple[str, str], str]) -> str:
    """The ClusterQueue a Workload is (or would be) admitted to: its admission once it has one,
    else the ClusterQueue of its LocalQueue (``spec.queueName`` in its namespace)."""
    admission = (wl.get("status") or {}).get("admission") or {}
    if admission.get("clusterQueue"):
        return str(admission["clusterQueue"])
    meta, spec = wl.get("metadata") or {}, wl.get("spec") or {}
    return local_queues.get((str(meta.get("namespace") or ""), str(spec.get("queueName") or "")), "")


def local_queue_map(local_queues: Iterable[JSON]) -> dict[tuple[str, str], str]:
    """(namespace, LocalQueue name) → ClusterQueue name."""
    return {
        (str(lq["metadata"].get("namespace") or ""), str(lq["metadata"]["name"])): str(
            (lq.get("spec") or {}).get("clusterQueue") or ""
        )
        for lq in local_queues
    }


def admission_check_names(cq: JSON) -> set[str]:
    """The AdmissionChecks a ClusterQueue runs, in either of Kueue's two spellings."""
    spec = cq.get("spec") or {}
    names = {str(n) for n in spec.get("admissionChecks") or []}
    strategy = spec.get("admissionChecksStrategy") or {}
    names |= {str(ac.get("name")) for ac in strategy.get("admissionChecks") or [] if ac.get("name")}
    return names


def pod_sets(wl: JSON) -> list[tuple[int, JSON]]:
    """(count, pod spec) of each pod set; an admitted Workload's counts are what was admitted
    (``status.admission.podSetAssignments[].count``, less than ``count`` for partial admission)."""
    spec = wl.get("spec") or {}
    assigned = {
        str(a.get("name")): int(a["count"])
        for a in ((wl.get("status") or {}).get("admission") or {}).get("podSetAssignments") or []
        if a.get("count") is not None
    }
    out = []
    for ps in spec.get("podSets") or []:
        count = assigned.get(str(ps.get("name")), int(ps.get("count") or 1))
        out.append((count, ((ps.get("template") or {}).get("spec")) or {}))
    return out
