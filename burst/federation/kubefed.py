"""The ``kubefed`` federation: what ``kubefedctl join`` does, done with the official client.

Join (idempotent; each call advances and reports, nothing waits):

1. in the **member** (with the admin kubeconfig the provider handed over): the namespace
   ``namespace`` (default ``kube-federation-system``) if missing, a ServiceAccount
   ``<cluster>-<host_cluster_name>``, a ClusterRole ``kubefed-controller-manager:<sa>`` with full
   access (as kubefedctl grants) and its ClusterRoleBinding, and — since Kubernetes 1.24 no
   longer makes one — an explicit ``kubernetes.io/service-account-token`` Secret
   ``<sa>-token``, which the member's token controller fills;
2. in the **host**'s ``namespace``: the credentials Secret ``<cluster>-credentials`` (the member's
   token and CA) and a ``KubeFedCluster`` ``<cluster>`` (``core.kubefed.io/v1beta1``) with
   ``apiEndpoint``, ``caBundle`` and ``secretRef``;
3. ready once the KubeFed controller reports the KubeFedCluster's ``Ready`` condition True.

Everything burst creates carries the labels ``burst.cluster`` and ``burst.owner``.

Drain.  KubeFed has no taint for member clusters, and removing a member from the placement of
federated objects makes the sync controller *delete* those objects there — which kills running
pods.  So burst drains the way ``kubectl drain`` starts: it **cordons** the member's nodes
(``spec.unschedulable``, annotated ``burst.cordoned-by`` so undrain only uncordons what burst
cordoned) so no new pod starts there while running pods finish, and labels the KubeFedCluster
``burst.draining=true`` so placement policies that select clusters by label
(``clusterSelector`` with ``burst.draining`` DoesNotExist) stop choosing it for *new* federated
objects.  ``drain`` returns the member's running pods outside the system namespaces (see
:func:`burst.federation.kube.running_pods`).  ``undrain`` reverses both.

``running`` counts the same pods without changing anything.  ``release_idle`` hands back idle
nodes of the member: cordoned, annotated ``burst.released-by`` and checked again after the cordon
(see :class:`burst.federation.kube.MemberNodes`); the member is draining while its KubeFedCluster
has the ``burst.draining`` label.  ``undrain`` also gives back picked nodes that were not removed.

The federation reaches a member after join with the credentials it stored in the host (the
secret the KubeFed controller itself uses), so drain and unjoin work after a restart.

Unjoin deletes exactly what join created: the member's ClusterRoleBinding, ClusterRole and
ServiceAccount (or the namespace, when burst created it) and its token Secret, then the host's
KubeFedCluster and credentials Secret.  A member that can no longer be reached is about to be
deleted anyway: its objects go with it, so that is logged and the host side is still cleaned.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from datetime import timedelta
from typing import Literal

from pydantic import Field

from burst.api import (
    ClusterRecord,
    FederationConfig,
    FederationContext,
    FederationError,
    JoinStatus,
    PositiveDuration,
)
from burst.federation.kube import (
    NAMESPACE,
    SECRET,
    SYSTEM_NAMESPACES,
    ClusterEndpoint,
    Kind,
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
    member_from_token,
    on_member,
    running_pods,
    unb64,
)
from burst.steering import MemberWeight

log = logging.getLogger(__name__)

KUBEFED_CLUSTER = Kind("core.kubefed.io/v1beta1", "KubeFedCluster", "kubefedclusters")
REPLICA_SCHEDULING_PREFERENCE = Kind(
    "scheduling.kubefed.io/v1alpha1", "ReplicaSchedulingPreference", "replicaschedulingpreferences"
)
DRAINING_LABEL = "burst.draining"


class KubefedConfig(FederationConfig):
    """``federation: {kind: kubefed, host_kubeconfig: host.kubeconfig, host_context: condor-host}``."""

    kind: Literal["kubefed"] = "kubefed"
    host_kubeconfig: str = Field(description="path of the KubeFed host cluster's kubeconfig (relative to the config)")
    host_context: str | None = Field(default=None, description="kubeconfig context of the host cluster")
    namespace: str = Field(default="kube-federation-system", description="KubeFed's namespace (host and members)")
    host_cluster_name: str = Field(default="host", description="name of the host cluster, part of the member's account")
    member_context: str | None = Field(default=None, description="context to use in the members' kubeconfigs")
    system_namespaces: list[str] = Field(
        default_factory=lambda: list(SYSTEM_NAMESPACES),
        description="namespaces whose pods are not work when counting what still runs in a member",
    )
    steer_preferences: list[str] = Field(
        default_factory=list,
        description="ReplicaSchedulingPreferences ('namespace/name') whose cluster weights burst sets for "
        "its members (cheaper first, draining none)",
    )
    timeout: PositiveDuration = Field(default=timedelta(seconds=15), description="per request timeout")

    def build(self, ctx: FederationContext) -> KubefedFederation:
        path = self.host_kubeconfig
        if not os.path.isabs(path):
            path = os.path.join(ctx.config_dir, path)
        cls = SteeringKubefedFederation if self.steer_preferences else KubefedFederation
        return cls(self, path, ctx.owner)


class KubefedFederation(MemberFederation):
    """A :class:`~burst.api.Federation` over one KubeFed host cluster."""

    name = "kubefed"

    def __init__(self, config: KubefedConfig, host_kubeconfig_path: str, owner: str) -> None:
        self.config = config
        self.host_kubeconfig_path = host_kubeconfig_path
        self.owner = owner
        # Admin kubeconfigs of members joined by this process: only a fallback for reaching a
        # member whose credentials are not in the host yet.  Never logged, never persisted.
        self._member_kubeconfigs: dict[str, str] = {}

    # -- names ------------------------------------------------------------------------------

    def _account(self, cluster: ClusterRecord) -> MemberAccount:
        sa = k8s_name(f"{self._cid(cluster)}-{self.config.host_cluster_name}")
        return MemberAccount(
            namespace=self.config.namespace,
            name=sa,
            cluster_role=f"kubefed-controller-manager:{sa}",
            labels=self._labels(cluster),
        )

    def _secret_name(self, cluster: ClusterRecord) -> str:
        return f"{self._cid(cluster)}-credentials"

    # -- clients ----------------------------------------------------------------------------

    def _host(self, action: str) -> Kube:
        return control_plane(
            self.host_kubeconfig_path, self.config.host_context, action, self.config.timeout.total_seconds()
        )

    def _member_from_kubeconfig(self, action: str, kubeconfig: str) -> tuple[Kube, ClusterEndpoint]:
        return member_from_kubeconfig(
            kubeconfig, self.config.member_context, action, self.config.timeout.total_seconds()
        )

    def _member_from_host(self, host: Kube, cluster: ClusterRecord, kfc: dict[str, object] | None) -> Kube | None:
        """The member, reached with the credentials stored in the host (or the kubeconfig join got)."""
        cid, ns = self._cid(cluster), self.config.namespace
        spec = (kfc or {}).get("spec") or {}
        secret = host.get(SECRET, self._secret_name(cluster), ns) if kfc else None
        token = unb64(((secret or {}).get("data") or {}).get("token"))
        if isinstance(spec, dict) and spec.get("apiEndpoint") and token:
            endpoint = ClusterEndpoint(str(spec["apiEndpoint"]), str(spec.get("caBundle") or ""))
            return member_from_token(endpoint, token, self.config.timeout.total_seconds())
        if cid in self._member_kubeconfigs:
            return self._member_from_kubeconfig(f"kubefed: reaching member {cid}", self._member_kubeconfigs[cid])[0]
        return None

    # -- the Federation contract -------------------------------------------------------------

    def join(self, cluster: ClusterRecord, kubeconfig: str) -> JoinStatus:
        cid, ns = self._cid(cluster), self.config.namespace
        action = f"kubefed: joining {cid}"
        self._member_kubeconfigs[cid] = kubeconfig
        member, endpoint = self._member_from_kubeconfig(action, kubeconfig)
        account = self._account(cluster)
        try:
            with kube_errors(f"{action}: member", FederationError, member.endpoint):
                creds = account.ensure(member)
        finally:
            member.close()
        if creds is None:
            return JoinStatus(False, f"waiting for the member's token controller to fill {ns}/{account.token_secret}")
        token, secret_ca = creds
        ca_bundle = endpoint.ca_data or secret_ca
        host = self._host(action)
        try:
            with kube_errors(f"{action}: host", FederationError, host.endpoint):
                return self._join_host(host, cluster, endpoint.server, ca_bundle, token)
        finally:
            host.close()

    def _join_host(self, host: Kube, cluster: ClusterRecord, server: str, ca_bundle: str, token: str) -> JoinStatus:
        cid, ns = self._cid(cluster), self.config.namespace
        if host.get(NAMESPACE, ns) is None:
            raise FederationError(f"kubefed: joining {cid}: the host has no namespace {ns}: is KubeFed installed?")
        labels = self._labels(cluster)
        data = {"token": b64(token)}
        if ca_bundle:
            data["ca.crt"] = ca_bundle
        secret_name = self._secret_name(cluster)
        if (
            host.create(
                SECRET, {"metadata": {"name": secret_name, "labels": labels}, "type": "Opaque", "data": data}, ns
            )
            is None
        ):
            current = host.get(SECRET, secret_name, ns) or {}
            if current.get("data") != data:
                host.patch(SECRET, secret_name, {"data": data}, ns)
        spec = {"apiEndpoint": server, "caBundle": ca_bundle, "secretRef": {"name": secret_name}}
        kfc = host.create(KUBEFED_CLUSTER, {"metadata": {"name": cid, "labels": labels}, "spec": spec}, ns)
        if kfc is None:
            kfc = host.get(KUBEFED_CLUSTER, cid, ns) or {}
            if kfc.get("spec") != spec:
                kfc = host.patch(KUBEFED_CLUSTER, cid, {"spec": spec}, ns)
        ready = condition(kfc, "Ready")
        if ready is not None and ready.get("status") == "True":
            return JoinStatus(True, f"KubeFedCluster {ns}/{cid} reports Ready")
        why = f" ({ready.get('reason')}: {ready.get('message')})" if ready else ""
        return JoinStatus(False, f"waiting for KubeFedCluster {ns}/{cid} to report Ready{why}")

    def _reach(self, cluster: ClusterRecord, action: str, *, draining: bool | None = None) -> tuple[Kube | None, bool]:
        """The member (None if never joined) and whether it is draining; with ``draining`` set,
        first label (or unlabel) the KubeFedCluster so."""
        cid, ns = self._cid(cluster), self.config.namespace
        host = self._host(action)
        try:
            with kube_errors(f"{action}: host", FederationError, host.endpoint):
                kfc = host.get(KUBEFED_CLUSTER, cid, ns)
                labels = ((kfc or {}).get("metadata") or {}).get("labels") or {}
                wanted = "true" if draining else None
                if kfc is not None and draining is not None and labels.get(DRAINING_LABEL) != wanted:
                    host.patch(KUBEFED_CLUSTER, cid, {"metadata": {"labels": {DRAINING_LABEL: wanted}}}, ns)
                    labels = {**labels, DRAINING_LABEL: wanted}
                return self._member_from_host(host, cluster, kfc), labels.get(DRAINING_LABEL) == "true"
        finally:
            host.close()

    def _nodes(self) -> MemberNodes:
        return MemberNodes(self.owner, (*self.config.system_namespaces, self.config.namespace))

    def drain(self, cluster: ClusterRecord) -> int:
        action = self._action("draining", cluster)
        member, _ = self._reach(cluster, action, draining=True)
        if member is None:
            log.info("kubefed: %s was never joined: nothing can run there", self._cid(cluster))
            return 0
        nodes = self._nodes()
        with on_member(member, action):
            nodes.cordon_all(member)
            return len(running_pods(member, skip_namespaces=nodes.skip_namespaces))

    def undrain(self, cluster: ClusterRecord) -> None:
        """Unlabel the KubeFedCluster, uncordon burst's cordons and forget release picks."""
        action = self._action("undraining", cluster)
        self._give_back_nodes(self._reach(cluster, action, draining=False)[0], action)

    def unjoin(self, cluster: ClusterRecord) -> None:
        cid, ns = self._cid(cluster), self.config.namespace
        action = f"kubefed: unjoining {cid}"
        host = self._host(action)
        try:
            with kube_errors(f"{action}: host", FederationError, host.endpoint):
                kfc = host.get(KUBEFED_CLUSTER, cid, ns)
                member = self._member_from_host(host, cluster, kfc)
            if member is not None:
                try:
                    with kube_errors(f"{action}: member", FederationError, member.endpoint):
                        self._account(cluster).remove(member)
                except FederationError as err:
                    log.warning("%s; its objects go when the cluster is deleted", err)
                finally:
                    member.close()
            with kube_errors(f"{action}: host", FederationError, host.endpoint):
                host.delete(KUBEFED_CLUSTER, cid, ns)
                host.delete(SECRET, self._secret_name(cluster), ns)
        finally:
            host.close()
        self._member_kubeconfigs.pop(cid, None)


class SteeringKubefedFederation(KubefedFederation):
    """KubeFed with ``steer_preferences``: also a :class:`~burst.federation.api.SteersWork`."""

    def steer(self, weights: Sequence[MemberWeight]) -> None:
        """Set burst's members in ``spec.clusters`` of each ReplicaSchedulingPreference in
        ``steer_preferences``: ``weight`` from price (cheaper members get more), draining members
        removed (no replicas).  Other clusters' entries are kept.  The price weight changes only
        when members join or drain, and with the preference's ``rebalance: false`` (KubeFed's
        default) replicas already placed stay where they are."""
        action = "kubefed: steering work"
        host = self._host(action)
        try:
            with kube_errors(f"{action}: host", FederationError, host.endpoint):
                for ref in self.config.steer_preferences:
                    ns, _, name = ref.rpartition("/")
                    rsp = host.get(REPLICA_SCHEDULING_PREFERENCE, name, ns)
                    if rsp is None:
                        log.warning("kubefed: steering: ReplicaSchedulingPreference %s does not exist", ref)
                        continue
                    current = (rsp.get("spec") or {}).get("clusters") or {}
                    change: dict[str, object] = {}
                    for m in weights:
                        entry = current.get(m.cluster_id)
                        if m.price_weight <= 0:
                            if entry is not None:
                                change[m.cluster_id] = None
                        elif (entry or {}).get("weight") != m.price_weight:
                            change[m.cluster_id] = {"weight": m.price_weight}
                    if change:
                        host.patch(REPLICA_SCHEDULING_PREFERENCE, name, {"spec": {"clusters": change}}, ns)
        finally:
            host.close()
