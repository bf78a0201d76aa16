"""The ``karmada`` federation: register a member as a Karmada ``Cluster`` in Push mode.

Join (idempotent; each call advances and reports, nothing waits), as ``karmadactl join`` does:

1. in the **member** (admin kubeconfig from the provider): the namespace ``member_namespace``
   (default ``karmada-cluster``) if missing, a ServiceAccount ``karmada-<cluster>``, a
   ClusterRole ``karmada-controller-manager:karmada-<cluster>`` with full access and its
   ClusterRoleBinding, and an explicit ``kubernetes.io/service-account-token`` Secret (Kubernetes
   ≥ 1.24 no longer makes one) that the member's token controller fills;
2. in the **Karmada API**: the Secret ``<cluster>`` in ``cluster_namespace`` (default
   ``karmada-cluster``; created if missing and left in place, it is shared by all members) with
   the member's ``token`` and ``caBundle``, and the ``Cluster`` ``<cluster>``
   (``cluster.karmada.io/v1alpha1``) with ``syncMode: Push``, ``apiEndpoint`` and ``secretRef``;
   both labelled ``burst.cluster`` and ``burst.owner``;
3. ready once Karmada's cluster-status controller reports the Cluster's ``Ready`` condition True.

karmadactl's ``<cluster>-impersonator`` Secret is not made: it only serves Karmada's aggregated
proxy API, not scheduling or propagation.

Drain puts a ``NoSchedule`` taint ``burst.draining=true`` on the Cluster's ``spec.taints``: the
Karmada scheduler stops placing new work there, and — unlike ``NoExecute`` — nothing placed is
evicted.  It then counts the member's running pods outside the system namespaces (see
:func:`burst.federation.kube.running_pods`).  The taint is written with a read-modify-PUT
carrying the resourceVersion, so a concurrent writer is never overwritten (a 409 re-reads).
Undrain removes burst's taint only.

``running`` counts the member's pods as drain does, changing nothing.  ``release_idle`` hands back
idle nodes of the member: cordoned, annotated ``burst.released-by`` and checked again after the
cordon (see :class:`burst.federation.kube.MemberNodes`); the member is draining while burst's taint
is on its Cluster.  Undrain then also uncordons picked nodes that were not removed.

Unjoin deletes the Cluster and its Secret from the Karmada API and, best effort, the member's
account objects (a member that can no longer be reached takes them with it when deleted).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, Literal

from kubernetes.client.exceptions import ApiException
from pydantic import Field

from burst.api import (
    Clock,
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
    unb64,
)
from burst.steering import MemberWeight

log = logging.getLogger(__name__)

KARMADA_CLUSTER = Kind("cluster.karmada.io/v1alpha1", "Cluster", "clusters", namespaced=False)
PROPAGATION_POLICY = Kind("policy.karmada.io/v1alpha1", "PropagationPolicy", "propagationpolicies")
CLUSTER_PROPAGATION_POLICY = Kind(
    "policy.karmada.io/v1alpha1", "ClusterPropagationPolicy", "clusterpropagationpolicies", namespaced=False
)
DRAIN_TAINT_KEY = "burst.draining"
_PUT_ATTEMPTS = 3


class KarmadaConfig(FederationConfig):
    """``federation: {kind: karmada, kubeconfig: karmada-apiserver.kubeconfig}``."""

    kind: Literal["karmada"] = "karmada"
    kubeconfig: str = Field(description="path of the Karmada API server's kubeconfig (relative to the config)")
    context: str | None = Field(default=None, description="kubeconfig context of the Karmada API server")
    cluster_namespace: str = Field(
        default="karmada-cluster", description="namespace of the member secrets in the Karmada API"
    )
    member_namespace: str = Field(
        default="karmada-cluster", description="namespace of Karmada's service account in each member"
    )
    member_context: str | None = Field(default=None, description="context to use in the members' kubeconfigs")
    system_namespaces: list[str] = Field(
        default_factory=lambda: list(SYSTEM_NAMESPACES),
        description="namespaces whose pods are not work when counting what still runs in a member",
    )
    steer_policies: list[str] = Field(
        default_factory=list,
        description="PropagationPolicies ('namespace/name') or ClusterPropagationPolicies ('name') whose "
        "static weights burst sets for its members (cheaper first, draining none)",
    )
    timeout: PositiveDuration = Field(default=timedelta(seconds=15), description="per request timeout")

    def build(self, ctx: FederationContext) -> KarmadaFederation:
        path = self.kubeconfig if os.path.isabs(self.kubeconfig) else os.path.join(ctx.config_dir, self.kubeconfig)
        cls = SteeringKarmadaFederation if self.steer_policies else KarmadaFederation
        return cls(self, path, ctx.owner, ctx.clock)


class KarmadaFederation(MemberFederation):
    """A :class:`~burst.api.Federation` over one Karmada control plane."""

    name = "karmada"

    def __init__(self, config: KarmadaConfig, kubeconfig_path: str, owner: str, clock: Clock) -> None:
        self.config = config
        self.kubeconfig_path = kubeconfig_path
        self.owner = owner
        self.clock = clock
        # Admin kubeconfigs handed to join by this process: a fallback to reach a member whose
        # credentials are not in Karmada yet.  Never logged, never persisted.
        self._member_kubeconfigs: dict[str, str] = {}

    @property
    def _timeout(self) -> float:
        return self.config.timeout.total_seconds()

    def _account(self, cluster: ClusterRecord) -> MemberAccount:
        sa = k8s_name(f"karmada-{self._cid(cluster)}")
        return MemberAccount(
            namespace=self.config.member_namespace,
            name=sa,
            cluster_role=f"karmada-controller-manager:{sa}",
            labels=self._labels(cluster),
        )

    def _karmada(self, action: str) -> Kube:
        return control_plane(self.kubeconfig_path, self.config.context, action, self._timeout)

    def _member(self, karmada: Kube, cluster: ClusterRecord, obj: dict[str, Any] | None) -> Kube | None:
        """The member, reached with the credentials Karmada holds for it (or join's kubeconfig)."""
        cid = self._cid(cluster)
        spec = (obj or {}).get("spec") or {}
        ref = spec.get("secretRef") or {}
        secret = karmada.get(SECRET, ref["name"], ref.get("namespace", "")) if ref.get("name") else None
        data = (secret or {}).get("data") or {}
        token = unb64(data.get("token"))
        if spec.get("apiEndpoint") and token:
            endpoint = ClusterEndpoint(
                str(spec["apiEndpoint"]), str(data.get("caBundle") or ""), bool(spec.get("insecureSkipTLSVerification"))
            )
            return member_from_token(endpoint, token, self._timeout)
        if cid in self._member_kubeconfigs:
            action = f"karmada: reaching member {cid}"
            return member_from_kubeconfig(
                self._member_kubeconfigs[cid], self.config.member_context, action, self._timeout
            )[0]
        return None

    # -- the Federation contract -------------------------------------------------------------

    def join(self, cluster: ClusterRecord, kubeconfig: str) -> JoinStatus:
        cid = self._cid(cluster)
        action = f"karmada: joining {cid}"
        self._member_kubeconfigs[cid] = kubeconfig
        member, endpoint = member_from_kubeconfig(kubeconfig, self.config.member_context, action, self._timeout)
        account = self._account(cluster)
        try:
            with kube_errors(f"{action}: member", FederationError, member.endpoint):
                creds = account.ensure(member)
        finally:
            member.close()
        if creds is None:
            return JoinStatus(
                False, f"waiting for the member's token controller to fill {account.namespace}/{account.token_secret}"
            )
        token, secret_ca = creds
        karmada = self._karmada(action)
        try:
            with kube_errors(f"{action}: Karmada API", FederationError, karmada.endpoint):
                return self._register(karmada, cluster, endpoint, endpoint.ca_data or secret_ca, token)
        finally:
            karmada.close()

    def _register(
        self, karmada: Kube, cluster: ClusterRecord, endpoint: ClusterEndpoint, ca_bundle: str, token: str
    ) -> JoinStatus:
        cid, ns = self._cid(cluster), self.config.cluster_namespace
        labels = self._labels(cluster)
        if karmada.get(NAMESPACE, ns) is None:
            karmada.create(NAMESPACE, {"metadata": {"name": ns}})
        data = {"token": b64(token), "caBundle": ca_bundle}
        secret = {"metadata": {"name": cid, "labels": labels}, "type": "Opaque", "data": data}
        created = karmada.create(SECRET, secret, ns)
        if created is None and (karmada.get(SECRET, cid, ns) or {}).get("data") != data:
            karmada.patch(SECRET, cid, {"data": data}, ns)
        spec: dict[str, Any] = {
            "syncMode": "Push",
            "apiEndpoint": endpoint.server,
            "secretRef": {"namespace": ns, "name": cid},
        }
        if endpoint.insecure:
            spec["insecureSkipTLSVerification"] = True
        obj = karmada.create(KARMADA_CLUSTER, {"metadata": {"name": cid, "labels": labels}, "spec": spec})
        if obj is None:
            obj = karmada.get(KARMADA_CLUSTER, cid) or {}
            current = obj.get("spec") or {}
            if any(current.get(k) != v for k, v in spec.items()):
                obj = karmada.patch(KARMADA_CLUSTER, cid, {"spec": spec})
        ready = condition(obj, "Ready")
        if ready is not None and ready.get("status") == "True":
            return JoinStatus(True, f"Karmada Cluster {cid} reports Ready")
        why = f" ({ready.get('reason')}: {ready.get('message')})" if ready else ""
        return JoinStatus(False, f"waiting for Karmada Cluster {cid} to report Ready{why}")

    def _reach(
        self,
        cluster: ClusterRecord,
        action: str,
        edit: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None,
    ) -> tuple[Kube | None, bool]:
        """The member (None if never joined) and whether burst's taint is on its Cluster; ``edit``
        first changes the Cluster's taints."""
        karmada = self._karmada(action)
        try:
            with kube_errors(f"{action}: Karmada API", FederationError, karmada.endpoint):
                if edit is None:
                    obj = karmada.get(KARMADA_CLUSTER, self._cid(cluster))
                else:
                    obj = self._edit_taints(karmada, self._cid(cluster), edit)
                taints = ((obj or {}).get("spec") or {}).get("taints") or []
                draining = any(t.get("key") == DRAIN_TAINT_KEY for t in taints)
                return self._member(karmada, cluster, obj), draining
        finally:
            karmada.close()

    def _nodes(self) -> MemberNodes:
        return MemberNodes(self.owner, (*self.config.system_namespaces, self.config.member_namespace))

    def drain(self, cluster: ClusterRecord) -> int:
        action = self._action("draining", cluster)
        member, _ = self._reach(cluster, action, self._add_taint)
        if member is None:
            log.info("karmada: %s was never joined: nothing can run there", self._cid(cluster))
            return 0
        return self._count(member, action)

    def undrain(self, cluster: ClusterRecord) -> None:
        """Remove burst's taint, then give back the nodes picked for release but not removed."""
        action = self._action("undraining", cluster)
        self._give_back_nodes(self._reach(cluster, action, _without_ours)[0], action)

    def _add_taint(self, taints: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if any(t.get("key") == DRAIN_TAINT_KEY and t.get("effect") == "NoSchedule" for t in taints):
            return taints
        added = self.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
        return [*taints, {"key": DRAIN_TAINT_KEY, "value": "true", "effect": "NoSchedule", "timeAdded": added}]

    def _edit_taints(
        self, karmada: Kube, cid: str, edit: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]
    ) -> dict[str, Any] | None:
        """Read the Cluster, change its taints, PUT it back with its resourceVersion; re-read on 409."""
        for attempt in range(_PUT_ATTEMPTS):
            obj = karmada.get(KARMADA_CLUSTER, cid)
            if obj is None:
                return None
            spec = obj.setdefault("spec", {})
            taints = list(spec.get("taints") or [])
            wanted = edit(taints)
            if wanted == taints:
                return obj
            spec["taints"] = wanted
            try:
                return karmada.replace(KARMADA_CLUSTER, obj)
            except ApiException as err:
                if err.status != 409 or attempt == _PUT_ATTEMPTS - 1:
                    raise
                log.info("karmada: Cluster %s changed while burst edited its taints; reading it again", cid)
        return None  # pragma: no cover - the loop returns or raises

    def unjoin(self, cluster: ClusterRecord) -> None:
        cid, ns = self._cid(cluster), self.config.cluster_namespace
        action = f"karmada: unjoining {cid}"
        karmada = self._karmada(action)
        try:
            with kube_errors(f"{action}: Karmada API", FederationError, karmada.endpoint):
                obj = karmada.get(KARMADA_CLUSTER, cid)
                member = self._member(karmada, cluster, obj)
            if member is not None:
                try:
                    with kube_errors(f"{action}: member", FederationError, member.endpoint):
                        self._account(cluster).remove(member)
                except FederationError as err:
                    log.warning("%s; its objects go when the cluster is deleted", err)
                finally:
                    member.close()
            with kube_errors(f"{action}: Karmada API", FederationError, karmada.endpoint):
                karmada.delete(KARMADA_CLUSTER, cid)
                karmada.delete(SECRET, cid, ns)
        finally:
            karmada.close()
        self._member_kubeconfigs.pop(cid, None)


def _without_ours(taints: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [t for t in taints if t.get("key") != DRAIN_TAINT_KEY]


class SteeringKarmadaFederation(KarmadaFederation):
    """Karmada with ``steer_policies``: also a :class:`~burst.federation.api.SteersWork`."""

    def steer(self, weights: Sequence[MemberWeight]) -> None:
        """Set burst's members' entries in ``weightPreference.staticWeightList`` of each policy in
        ``steer_policies`` (replicas divided ``Weighted``): the weight from price (cheaper members
        get more), none for draining members.  Entries for clusters burst did not make are kept.
        Karmada re-divides the replicas of bound workloads when a policy's weights change, so
        only the price weight is used: it changes when members join or drain, not every tick."""
        ours = {m.cluster_id for m in weights}
        entries = [
            {"targetCluster": {"clusterNames": [m.cluster_id]}, "weight": m.price_weight}
            for m in sorted(weights, key=lambda m: (-m.price_weight, m.cluster_id))
            if m.price_weight > 0
        ]
        action = "karmada: steering work"
        karmada = self._karmada(action)
        try:
            with kube_errors(f"{action}: Karmada API", FederationError, karmada.endpoint):
                for ref in self.config.steer_policies:
                    self._set_weights(karmada, ref, ours, entries)
        finally:
            karmada.close()

    def _set_weights(self, karmada: Kube, ref: str, ours: set[str], entries: list[dict[str, Any]]) -> None:
        ns, _, name = ref.rpartition("/")
        kind = PROPAGATION_POLICY if ns else CLUSTER_PROPAGATION_POLICY
        for attempt in range(_PUT_ATTEMPTS):
            obj = karmada.get(kind, name, ns)
            if obj is None:
                log.warning("karmada: steering: %s %s does not exist", kind.kind, ref)
                return
            placement = obj.setdefault("spec", {}).setdefault("placement", {})
            scheduling = placement.get("replicaScheduling") or {}
            current = list(((scheduling.get("weightPreference") or {}).get("staticWeightList")) or [])
            kept = [e for e in current if not set((e.get("targetCluster") or {}).get("clusterNames") or []) & ours]
            wanted = kept + entries
            if scheduling.get("replicaDivisionPreference") == "Weighted" and current == wanted:
                return
            placement["replicaScheduling"] = {
                **scheduling,
                "replicaSchedulingType": "Divided",
                "replicaDivisionPreference": "Weighted",
                "weightPreference": {"staticWeightList": wanted},
            }
            try:
                karmada.replace(kind, obj)
                return
            except ApiException as err:
                if err.status != 409 or attempt == _PUT_ATTEMPTS - 1:
                    raise
                log.info("karmada: %s %s changed while burst set its weights; reading it again", kind.kind, ref)
