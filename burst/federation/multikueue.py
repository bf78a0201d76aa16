"""The ``multikueue`` federation: a burst cluster becomes a MultiKueue worker of a Kueue manager.

Kueue's MultiKueue lists its worker clusters by hand; burst adds and removes its own.  Kueue
``kueue.x-k8s.io/v1beta1`` (v0.9 – v0.14) is supported.

Join (idempotent; each call advances and reports, nothing waits):

1. **install Kueue on the worker** (admin kubeconfig from the provider): every object of the
   configured manifests (``worker_install``: Kueue's release ``manifests.yaml``) that is missing
   is created, CRDs first; the join waits until each CRD reports ``Established`` and each
   Deployment of the manifests is available (Kueue's webhooks must answer before queues can be
   created);
2. **the queues MultiKueue expects on the worker**: a ResourceFlavor ``worker_flavor``, one
   ClusterQueue ``worker_cluster_queue`` whose nominal quota is the cluster's capacity (nodes ×
   cpus, memory, GPUs), and for every LocalQueue of the manager that feeds a ClusterQueue running
   the configured AdmissionCheck, its namespace and a LocalQueue of the same name there;
3. **the manager's account on the worker**: ServiceAccount ``burst-multikueue`` in ``namespace``
   with the RBAC Kueue's MultiKueue setup grants (Jobs, JobSets, Workloads, pods, the Kubeflow and
   Ray jobs) plus what burst's drain needs (ClusterQueues, nodes), and its token Secret;
4. **on the manager** (``namespace``, default ``kueue-system``): the Secret ``<cluster>-kubeconfig``
   whose ``kubeconfig`` key reaches the worker with that token, a ``MultiKueueCluster`` ``<cluster>``
   (``spec.kubeConfig: {locationType: Secret, location: <secret>}``), and ``<cluster>`` added to
   ``spec.clusters`` of the MultiKueueConfig that the AdmissionCheck ``admission_check`` names;
5. ready once Kueue reports the MultiKueueCluster ``Active``.

Drain.  Taking a cluster out of the MultiKueueConfig while Workloads run there would make the
manager count them as lost and, after its ``workerLostTimeout`` (15 min by default), evict and
requeue them.  So burst stops new work on the worker's side: its ClusterQueue gets
``stopPolicy: Hold`` (Kueue admits nothing new there; admitted Workloads run to the end), and
the MultiKueueCluster is labelled ``burst.draining=true``.  Copies the manager still dispatches
there wait unadmitted and are withdrawn by the manager when another worker admits them.
``drain`` returns the Workloads with quota reserved and not finished on the worker, counted
through the worker's own API; once that is zero the cluster is taken out of the MultiKueueConfig
(never its last entry: Kueue requires one).  ``undrain`` reverses all three.

Unjoin deletes the manager's MultiKueueCluster and Secret (and the cluster's entry in the
MultiKueueConfig) and, best effort, the account on the worker; Kueue and the queues on the worker
go with the cluster.  ``running`` and ``release_idle`` work as for kubefed and Karmada.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Any, Literal

import yaml
from kubernetes.client.exceptions import ApiException
from pydantic import Field

from burst.api import (
    ClusterRecord,
    Duration,
    FederationConfig,
    FederationContext,
    FederationError,
    JoinStatus,
)
from burst.backlog.kubernetes import pod_request
from burst.federation import kueue_api as kq
from burst.federation.kube import (
    MANAGED_BY,
    NAMESPACE,
    SECRET,
    SYSTEM_NAMESPACES,
    Kube,
    MemberAccount,
    MemberFederation,
    MemberNodes,
    b64,
    condition,
    control_plane,
    k8s_name,
    kube_errors,
    member_from_kubeconfig,
    on_member,
    unb64,
)
from burst.federation.manifests import apply_manifests, load_manifests
from burst.kubeconfig import render_kubeconfig
from burst.steering import MemberWeight

log = logging.getLogger(__name__)

JSON = dict[str, Any]

DRAINING_LABEL = "burst.draining"
#: The manager's service account on each worker, and its ClusterRole and binding.
ACCOUNT = "burst-multikueue"
_PUT_ATTEMPTS = 3

#: What Kueue's MultiKueue setup grants the manager on a worker, plus what burst's drain and
#: node release need there.
WORKER_RULES: tuple[JSON, ...] = (
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "delete", "get", "list", "watch"]},
    {"apiGroups": ["batch"], "resources": ["jobs/status"], "verbs": ["get"]},
    {"apiGroups": ["jobset.x-k8s.io"], "resources": ["jobsets"], "verbs": ["create", "delete", "get", "list", "watch"]},
    {"apiGroups": ["jobset.x-k8s.io"], "resources": ["jobsets/status"], "verbs": ["get"]},
    {
        "apiGroups": ["kueue.x-k8s.io"],
        "resources": ["workloads"],
        "verbs": ["create", "delete", "get", "list", "watch", "update", "patch"],
    },
    {"apiGroups": ["kueue.x-k8s.io"], "resources": ["workloads/status"], "verbs": ["get", "patch", "update"]},
    {"apiGroups": ["kueue.x-k8s.io"], "resources": ["clusterqueues"], "verbs": ["get", "list", "patch"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "delete", "get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["pods/status"], "verbs": ["get"]},
    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "patch"]},
    {
        "apiGroups": ["kubeflow.org"],
        "resources": ["tfjobs", "pytorchjobs", "xgboostjobs", "paddlejobs", "mpijobs", "jaxjobs"],
        "verbs": ["create", "delete", "get", "list", "watch"],
    },
    {"apiGroups": ["ray.io"], "resources": ["rayjobs", "rayclusters"], "verbs": ["create", "delete", "get", "list"]},
    # unjoin: the account removes itself (see MemberAccount.remove), nothing else
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]},
    {
        "apiGroups": ["rbac.authorization.k8s.io"],
        "resources": ["clusterroles", "clusterrolebindings"],
        "verbs": ["delete"],
        "resourceNames": [ACCOUNT],
    },
    {
        "apiGroups": [""],
        "resources": ["serviceaccounts", "secrets"],
        "verbs": ["delete"],
        "resourceNames": [ACCOUNT, f"{ACCOUNT}-token"],
    },
)


class MultiKueueFederationConfig(FederationConfig):
    """``federation: {kind: multikueue, kubeconfig: manager.kubeconfig, admission_check: multikueue}``."""

    kind: Literal["multikueue"] = "multikueue"
    kubeconfig: str = Field(description="path of the MultiKueue manager cluster's kubeconfig (relative to the config)")
    context: str | None = Field(default=None, description="kubeconfig context of the manager")
    admission_check: str = Field(description="the MultiKueue AdmissionCheck whose MultiKueueConfig gets the workers")
    namespace: str = Field(default="kueue-system", description="Kueue's namespace (manager and workers)")
    worker_install: list[str] = Field(
        default_factory=list,
        description="manifests applied on each new worker before it joins: Kueue's release manifests.yaml",
    )
    worker_cluster_queue: str = Field(default="burst", description="the worker's ClusterQueue the LocalQueues feed")
    worker_flavor: str = Field(default="burst-default", description="the worker's ResourceFlavor")
    gpu_resource: str = Field(default="nvidia.com/gpu", description="extended resource name of a GPU")
    member_context: str | None = Field(default=None, description="context to use in the members' kubeconfigs")
    dispatcher: bool = Field(
        default=False,
        description="act as MultiKueue's external dispatcher (Kueue ≥ v0.13, multiKueue.dispatcherName set to "
        "burst's): nominate the cheapest, emptiest burst workers for pending Workloads",
    )
    system_namespaces: list[str] = Field(
        default_factory=lambda: list(SYSTEM_NAMESPACES),
        description="namespaces whose pods are not work when releasing idle nodes",
    )
    timeout: Duration = Field(default=timedelta(seconds=15), description="per request timeout")

    def build(self, ctx: FederationContext) -> MultiKueueFederation:
        def resolve(path: str) -> str:
            return path if os.path.isabs(path) else os.path.join(ctx.config_dir, path)

        manifests: list[JSON] = []
        for path in self.worker_install:
            manifests.extend(load_manifests(resolve(path), "multikueue: worker_install"))
        cls = DispatchingMultiKueueFederation if self.dispatcher else MultiKueueFederation
        return cls(self, resolve(self.kubeconfig), ctx.owner, manifests)


class MultiKueueFederation(MemberFederation):
    """A :class:`~burst.api.Federation` over one MultiKueue manager cluster."""

    name = "multikueue"

    def __init__(self, config: MultiKueueFederationConfig, kubeconfig_path: str, owner: str, manifests: list[JSON]):
        self.config = config
        self.kubeconfig_path = kubeconfig_path
        self.owner = owner
        self.manifests = manifests
        # Admin kubeconfigs of members joined by this process: a fallback to reach a member whose
        # Secret is not on the manager yet.  Never logged, never persisted.
        self._member_kubeconfigs: dict[str, str] = {}

    @property
    def _timeout(self) -> float:
        return self.config.timeout.total_seconds()

    def _account(self, cluster: ClusterRecord) -> MemberAccount:
        return MemberAccount(
            namespace=self.config.namespace,
            name=ACCOUNT,
            cluster_role=ACCOUNT,
            labels=self._labels(cluster),
            rules=WORKER_RULES,
        )

    def _secret_name(self, cluster: ClusterRecord) -> str:
        return k8s_name(f"{self._cid(cluster)}-kubeconfig")

    def _manager(self, action: str) -> Kube:
        return control_plane(self.kubeconfig_path, self.config.context, action, self._timeout)

    # -- the manager's side -------------------------------------------------------------------

    def _config_name(self, manager: Kube) -> str:
        """The MultiKueueConfig the configured AdmissionCheck uses; errors say what is wrong."""
        name = self.config.admission_check
        ac = manager.get(kq.ADMISSION_CHECK, name)
        if ac is None:
            raise FederationError(f"multikueue: the manager has no AdmissionCheck {name}: is MultiKueue set up?")
        spec = ac.get("spec") or {}
        params = spec.get("parameters") or {}
        if spec.get("controllerName") != kq.MULTIKUEUE_CONTROLLER or params.get("kind") != "MultiKueueConfig":
            raise FederationError(
                f"multikueue: AdmissionCheck {name} is not a MultiKueue check "
                f"(controllerName {kq.MULTIKUEUE_CONTROLLER}, parameters kind MultiKueueConfig)"
            )
        return str(params.get("name") or "")

    def _edit_clusters(self, manager: Kube, edit: Callable[[list[str]], list[str]]) -> None:
        """Read the MultiKueueConfig, change its cluster list, PUT it back with its
        resourceVersion (a concurrent writer is re-read on 409, never overwritten)."""
        name = self._config_name(manager)
        for attempt in range(_PUT_ATTEMPTS):
            obj = manager.get(kq.MULTIKUEUE_CONFIG, name)
            if obj is None:
                raise FederationError(f"multikueue: the manager has no MultiKueueConfig {name}")
            spec = obj.setdefault("spec", {})
            clusters = [str(c) for c in spec.get("clusters") or []]
            wanted = edit(clusters)
            if wanted == clusters:
                return
            spec["clusters"] = wanted
            try:
                manager.replace(kq.MULTIKUEUE_CONFIG, obj)
                return
            except ApiException as err:
                if err.status != 409 or attempt == _PUT_ATTEMPTS - 1:
                    raise
                log.info("multikueue: MultiKueueConfig %s changed while burst edited it; reading it again", name)

    def _worker_queues(self, manager: Kube) -> list[tuple[str, str]]:
        """(namespace, name) of the manager's LocalQueues feeding a ClusterQueue with the check."""
        cqs = {
            str(cq["metadata"]["name"])
            for cq in manager.list(kq.CLUSTER_QUEUE)
            if self.config.admission_check in kq.admission_check_names(cq)
        }
        return sorted(key for key, cq in kq.local_queue_map(manager.list(kq.LOCAL_QUEUE)).items() if cq in cqs)

    # -- the worker's side --------------------------------------------------------------------

    def _queues(self, member: Kube, cluster: ClusterRecord, local_queues: list[tuple[str, str]]) -> None:
        labels = {**self._labels(cluster), MANAGED_BY: "burst"}
        cfg = self.config
        member.create(kq.RESOURCE_FLAVOR, {"metadata": {"name": cfg.worker_flavor, "labels": labels}, "spec": {}})
        groups = self._resource_groups(cluster, cluster.nodes)
        spec: JSON = {"namespaceSelector": {}, "resourceGroups": groups}
        cq = member.create(
            kq.CLUSTER_QUEUE, {"metadata": {"name": cfg.worker_cluster_queue, "labels": labels}, "spec": spec}
        )
        if cq is None:
            self._set_quota(member, groups)
        for ns, name in local_queues:
            if member.get(NAMESPACE, ns) is None:
                member.create(NAMESPACE, {"metadata": {"name": ns, "labels": labels}})
            member.create(
                kq.LOCAL_QUEUE,
                {"metadata": {"name": name, "labels": labels}, "spec": {"clusterQueue": cfg.worker_cluster_queue}},
                ns,
            )

    def _resource_groups(self, cluster: ClusterRecord, nodes: int) -> list[JSON]:
        """The worker ClusterQueue's quota: ``nodes`` of the cluster's flavor."""
        quota = {"cpu": str(nodes * cluster.cpus_per_node), "memory": f"{nodes * cluster.memory_mb_per_node}Mi"}
        if cluster.gpus_per_node:
            quota[self.config.gpu_resource] = str(nodes * cluster.gpus_per_node)
        resources = [{"name": k, "nominalQuota": v} for k, v in quota.items()]
        return [
            {"coveredResources": list(quota), "flavors": [{"name": self.config.worker_flavor, "resources": resources}]}
        ]

    def _set_quota(self, member: Kube, groups: list[JSON]) -> None:
        current = (member.get(kq.CLUSTER_QUEUE, self.config.worker_cluster_queue) or {}).get("spec") or {}
        if current and current.get("resourceGroups") != groups:
            member.patch(kq.CLUSTER_QUEUE, self.config.worker_cluster_queue, {"spec": {"resourceGroups": groups}})

    def release_idle(self, cluster: ClusterRecord, count: int) -> list[str]:
        """Idle nodes of the worker, cordoned for removal (see
        :meth:`burst.federation.kube.MemberNodes.release_idle`); the worker's ClusterQueue quota
        then shrinks to the nodes left, so its Kueue admits no more than they hold."""
        names = super().release_idle(cluster, count)
        if names:
            action = self._action("shrinking the quota of", cluster)
            member, _ = self._reach(cluster, action)
            if member is not None:
                with on_member(member, action):
                    self._set_quota(member, self._resource_groups(cluster, max(0, cluster.nodes - len(names))))
        return names

    def resized(self, cluster: ClusterRecord) -> None:
        """The worker grew (or shrank): its ClusterQueue quota follows its nodes."""
        action = self._action("resizing the quota of", cluster)
        member, _ = self._reach(cluster, action)
        if member is not None:
            with on_member(member, action):
                self._set_quota(member, self._resource_groups(cluster, cluster.nodes))

    def _hold(self, member: Kube, hold: bool) -> None:
        """``stopPolicy: Hold`` on the worker's ClusterQueue: nothing new is admitted there."""
        cq = member.get(kq.CLUSTER_QUEUE, self.config.worker_cluster_queue)
        wanted = "Hold" if hold else "None"
        if cq is not None and ((cq.get("spec") or {}).get("stopPolicy") or "None") != wanted:
            member.patch(kq.CLUSTER_QUEUE, self.config.worker_cluster_queue, {"spec": {"stopPolicy": wanted}})

    def _running_workloads(self, member: Kube) -> list[JSON]:
        return [wl for wl in member.list(kq.WORKLOAD) if kq.reserved(wl) and not kq.finished(wl)]

    # -- reaching a member ----------------------------------------------------------------------

    def _member(self, manager: Kube, cluster: ClusterRecord, mkc: JSON | None) -> Kube | None:
        """The worker, reached with the kubeconfig Kueue itself uses (or the one join got)."""
        cid = self._cid(cluster)
        action = f"multikueue: reaching member {cid}"
        secret = manager.get(SECRET, self._secret_name(cluster), self.config.namespace) if mkc else None
        text = unb64(((secret or {}).get("data") or {}).get(kq.KUBECONFIG_KEY))
        if text:
            return member_from_kubeconfig(text, None, action, self._timeout)[0]
        if cid in self._member_kubeconfigs:
            return member_from_kubeconfig(
                self._member_kubeconfigs[cid], self.config.member_context, action, self._timeout
            )[0]
        return None

    def _reach(self, cluster: ClusterRecord, action: str, *, draining: bool | None = None) -> tuple[Kube | None, bool]:
        """The worker (None if never joined) and whether it is draining; with ``draining`` set,
        first label (or unlabel) its MultiKueueCluster so."""
        cid = self._cid(cluster)
        manager = self._manager(action)
        try:
            with kube_errors(f"{action}: manager", FederationError, manager.endpoint):
                mkc = manager.get(kq.MULTIKUEUE_CLUSTER, cid)
                labels = ((mkc or {}).get("metadata") or {}).get("labels") or {}
                wanted = "true" if draining else None
                if mkc is not None and draining is not None and labels.get(DRAINING_LABEL) != wanted:
                    manager.patch(kq.MULTIKUEUE_CLUSTER, cid, {"metadata": {"labels": {DRAINING_LABEL: wanted}}})
                    labels = {**labels, DRAINING_LABEL: wanted}
                return self._member(manager, cluster, mkc), labels.get(DRAINING_LABEL) == "true"
        finally:
            manager.close()

    def _nodes(self) -> MemberNodes:
        return MemberNodes(self.owner, (*self.config.system_namespaces, self.config.namespace))

    # -- the Federation contract -------------------------------------------------------------

    def join(self, cluster: ClusterRecord, kubeconfig: str) -> JoinStatus:
        cid, ns = self._cid(cluster), self.config.namespace
        action = f"multikueue: joining {cid}"
        self._member_kubeconfigs[cid] = kubeconfig
        manager = self._manager(action)
        try:
            with kube_errors(f"{action}: manager", FederationError, manager.endpoint):
                self._config_name(manager)
                local_queues = self._worker_queues(manager)
        finally:
            manager.close()
        member, endpoint = member_from_kubeconfig(kubeconfig, self.config.member_context, action, self._timeout)
        account = self._account(cluster)
        with on_member(member, action):
            waiting = apply_manifests(member, self.manifests, "worker")
            if waiting:
                return JoinStatus(False, waiting)
            self._queues(member, cluster, local_queues)
            creds = account.ensure(member)
        if creds is None:
            return JoinStatus(False, f"waiting for the worker's token controller to fill {ns}/{account.token_secret}")
        token, secret_ca = creds
        worker_kubeconfig = render_kubeconfig(cid, endpoint.server, endpoint.ca_data or secret_ca, {"token": token})
        if endpoint.insecure:
            doc = yaml.safe_load(worker_kubeconfig)
            doc["clusters"][0]["cluster"]["insecure-skip-tls-verify"] = True
            worker_kubeconfig = yaml.safe_dump(doc, sort_keys=False)
        manager = self._manager(action)
        try:
            with kube_errors(f"{action}: manager", FederationError, manager.endpoint):
                return self._register(manager, cluster, worker_kubeconfig)
        finally:
            manager.close()

    def _register(self, manager: Kube, cluster: ClusterRecord, worker_kubeconfig: str) -> JoinStatus:
        cid, ns = self._cid(cluster), self.config.namespace
        if manager.get(NAMESPACE, ns) is None:
            raise FederationError(f"multikueue: joining {cid}: the manager has no namespace {ns}: is Kueue installed?")
        labels = self._labels(cluster)
        secret_name = self._secret_name(cluster)
        data = {kq.KUBECONFIG_KEY: b64(worker_kubeconfig)}
        created = manager.create(
            SECRET, {"metadata": {"name": secret_name, "labels": labels}, "type": "Opaque", "data": data}, ns
        )
        if created is None and (manager.get(SECRET, secret_name, ns) or {}).get("data") != data:
            manager.patch(SECRET, secret_name, {"data": data}, ns)
        spec = {"kubeConfig": {"locationType": "Secret", "location": secret_name}}
        mkc = manager.create(kq.MULTIKUEUE_CLUSTER, {"metadata": {"name": cid, "labels": labels}, "spec": spec})
        if mkc is None:
            mkc = manager.get(kq.MULTIKUEUE_CLUSTER, cid) or {}
            if mkc.get("spec") != spec:
                mkc = manager.patch(kq.MULTIKUEUE_CLUSTER, cid, {"spec": spec})
        draining = ((mkc.get("metadata") or {}).get("labels") or {}).get(DRAINING_LABEL) == "true"
        if not draining:
            self._edit_clusters(manager, lambda cs: cs if cid in cs else [*cs, cid])
        if kq.is_true(mkc, "Active"):
            return JoinStatus(True, f"MultiKueueCluster {cid} reports Active")
        active = condition(mkc, "Active")
        why = f" ({active.get('reason')}: {active.get('message')})" if active else ""
        return JoinStatus(False, f"waiting for MultiKueueCluster {cid} to report Active{why}")

    def running(self, cluster: ClusterRecord) -> int:
        """Workloads with quota reserved and not finished on the worker; changes nothing."""
        action = self._action("counting the Workloads of", cluster)
        member, _ = self._reach(cluster, action)
        if member is None:
            return 0
        with on_member(member, action):
            return len(self._running_workloads(member))

    def drain(self, cluster: ClusterRecord) -> int:
        cid = self._cid(cluster)
        action = self._action("draining", cluster)
        member, _ = self._reach(cluster, action, draining=True)
        if member is None:
            log.info("multikueue: %s was never joined: nothing can run there", cid)
            return 0
        with on_member(member, action):
            self._hold(member, True)
            running = len(self._running_workloads(member))
        if running == 0:
            self._withdraw(cid, action)
        return running

    def _withdraw(self, cid: str, action: str) -> None:
        """Take ``cid`` out of the MultiKueueConfig, unless it is the last entry."""

        def without(clusters: list[str]) -> list[str]:
            if clusters == [cid]:
                log.warning("multikueue: %s is the only cluster of the MultiKueueConfig; kept listed", cid)
                return clusters
            return [c for c in clusters if c != cid]

        manager = self._manager(action)
        try:
            with kube_errors(f"{action}: manager", FederationError, manager.endpoint):
                self._edit_clusters(manager, without)
        finally:
            manager.close()

    def undrain(self, cluster: ClusterRecord) -> None:
        """Unlabel the MultiKueueCluster, release the worker's ClusterQueue, list it again, and
        give back nodes picked for release but not removed."""
        cid = self._cid(cluster)
        action = self._action("undraining", cluster)
        member, _ = self._reach(cluster, action, draining=False)
        if member is None:
            return
        with on_member(member, action):
            self._hold(member, False)
            self._nodes().uncordon_ours(member)
        manager = self._manager(action)
        try:
            with kube_errors(f"{action}: manager", FederationError, manager.endpoint):
                if manager.get(kq.MULTIKUEUE_CLUSTER, cid) is not None:
                    self._edit_clusters(manager, lambda cs: cs if cid in cs else [*cs, cid])
        finally:
            manager.close()

    def unjoin(self, cluster: ClusterRecord) -> None:
        cid, ns = self._cid(cluster), self.config.namespace
        action = f"multikueue: unjoining {cid}"
        manager = self._manager(action)
        try:
            with kube_errors(f"{action}: manager", FederationError, manager.endpoint):
                mkc = manager.get(kq.MULTIKUEUE_CLUSTER, cid)
                member = self._member(manager, cluster, mkc)
            if member is not None:
                try:
                    with kube_errors(f"{action}: member", FederationError, member.endpoint):
                        self._account(cluster).remove(member)
                except FederationError as err:
                    log.warning("%s; its objects go when the cluster is deleted", err)
                finally:
                    member.close()
            with kube_errors(f"{action}: manager", FederationError, manager.endpoint):
                if manager.get(kq.ADMISSION_CHECK, self.config.admission_check) is not None:
                    self._edit_clusters(manager, lambda cs: [c for c in cs if c != cid] if cs != [cid] else cs)
                manager.delete(kq.MULTIKUEUE_CLUSTER, cid)
                manager.delete(SECRET, self._secret_name(cluster), ns)
        finally:
            manager.close()
        self._member_kubeconfigs.pop(cid, None)


def _key(wl: JSON) -> tuple[str, str]:
    return str(wl["metadata"].get("namespace") or ""), str(wl["metadata"]["name"])


class DispatchingMultiKueueFederation(MultiKueueFederation):
    """MultiKueue with ``dispatcher: true``: burst is its external dispatcher (a
    :class:`~burst.federation.api.SteersWork`)."""

    def steer(self, weights: Sequence[MemberWeight]) -> None:
        """Nominate worker clusters for the pending Workloads (``status.nominatedClusterNames``).

        Only with ``dispatcher: true`` (Kueue then leaves the choice to an external dispatcher and
        creates copies only on the nominated clusters).  The workers burst did not make (on-prem,
        already paid for) are always offered first.  Then, oldest Workload first, the burst worker
        of highest weight whose free cores (less what is nominated to it this round) hold the
        Workload; a Workload already nominated to a worker that still has weight and room keeps
        it (no churn).  When no worker has room, all weighted workers are offered (the first to
        admit wins, as Kueue's own dispatcher).  Draining workers (weight 0) are never offered.
        Workloads assigned to a cluster (``status.clusterName``) are never touched.
        """
        action = "multikueue: steering pending Workloads"
        manager = self._manager(action)
        try:
            with kube_errors(f"{action}: manager", FederationError, manager.endpoint):
                self._nominate(manager, weights)
        finally:
            manager.close()

    def _nominate(self, manager: Kube, weights: Sequence[MemberWeight]) -> None:
        config = manager.get(kq.MULTIKUEUE_CONFIG, self._config_name(manager)) or {}
        listed = [str(c) for c in (config.get("spec") or {}).get("clusters") or []]
        ours = {m.cluster_id for m in weights}
        others = [c for c in listed if c not in ours]
        offered = [m for m in weights if m.weight > 0 and m.cluster_id in listed]
        room = {m.cluster_id: Decimal(m.free_cores) for m in offered}
        cqs = {
            str(cq["metadata"]["name"])
            for cq in manager.list(kq.CLUSTER_QUEUE)
            if self.config.admission_check in kq.admission_check_names(cq)
        }
        queues = kq.local_queue_map(manager.list(kq.LOCAL_QUEUE))
        pending = sorted(
            (
                wl
                for wl in manager.list(kq.WORKLOAD)
                if kq.cluster_queue_of(wl, queues) in cqs
                and kq.reserved(wl)
                and not kq.admitted(wl)
                and not kq.finished(wl)
                and not (wl.get("status") or {}).get("clusterName")
            ),
            key=lambda wl: (str(wl["metadata"].get("creationTimestamp") or ""), str(wl["metadata"]["name"])),
        )
        chosen: dict[tuple[str, str], str | None] = {}
        # Keep standing nominations that still fit, then place the rest in weight order.
        for wl in pending:
            now = [c for c in (wl.get("status") or {}).get("nominatedClusterNames") or [] if c in room]
            cores = self._cores(wl)
            if len(now) == 1 and room[now[0]] >= cores:
                room[now[0]] -= cores
                chosen[_key(wl)] = now[0]
        for wl in pending:
            if _key(wl) in chosen:
                continue
            cores = self._cores(wl)
            fit = next((m.cluster_id for m in offered if room[m.cluster_id] >= cores), None)
            if fit is not None:
                room[fit] -= cores
            chosen[_key(wl)] = fit
        for wl in pending:
            fit = chosen[_key(wl)]
            burst_part = [fit] if fit is not None else [m.cluster_id for m in offered]
            wanted = others + burst_part
            current = (wl.get("status") or {}).get("nominatedClusterNames") or []
            if wanted and wanted != current:
                meta = wl["metadata"]
                manager.patch_status(
                    kq.WORKLOAD, meta["name"], {"status": {"nominatedClusterNames": wanted}}, meta["namespace"]
                )

    def _cores(self, wl: JSON) -> Decimal:
        total = Decimal(0)
        for count, spec in kq.pod_sets(wl):
            try:
                total += count * max(Decimal(1), pod_request(spec, self.config.gpu_resource).cpu)
            except (ValueError, ArithmeticError, TypeError):
                total += count
        return total
