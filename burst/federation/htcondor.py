"""The HTCondor pool federation: a burst cluster takes work by running startds that join the
on-prem pool.

``join`` deploys into the member cluster (with the official ``kubernetes`` client, from the
member's kubeconfig) a Namespace, a Secret holding the pool's IDTOKEN (read from the operator's
file at join time) and a DaemonSet of HTCondor execute-node pods, one per node, each a startd
with a single partitionable slot sized to the node.  Every startd advertises ``BurstCluster``,
``BurstCampaign`` and ``BurstOwner`` in its ClassAd, which is how burst finds "its" startds in the
collector and how the negotiator (and the on-prem capacity count) can tell them apart.

Readiness (``JoinStatus.ready``): the collector lists at least one startd whose ``BurstCluster``
is this cluster — the pool really sees it.  Only when the collector cannot be queried does burst
fall back to the DaemonSet's own status (``numberReady == desiredNumberScheduled > 0``); the
message says which one decided.

``drain`` is ``condor_drain -graceful`` on every startd of the cluster (found through the
collector, via the adapter in :mod:`burst.condor`): no new job starts there, running jobs finish
within their retirement time.  It returns the number of slots still running a job; zero means the
cluster can go.  ``running`` counts the same without draining.  ``undrain`` cancels the drains.

Each startd also advertises ``BurstNode``, the Kubernetes node its pod runs on (the DaemonSet
passes ``spec.nodeName`` through the Downward API).  ``release_idle`` drains, one node at a time,
the startds of nodes where no slot runs a job, with ``condor_drain -check`` so a startd that took a
job meanwhile refuses, and returns those node names for the provider to delete.

``unjoin`` deletes the DaemonSet, the Secret and the Namespace (if join created it); already gone
is fine.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import classad2
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from pydantic import Field, field_validator
from urllib3.exceptions import HTTPError

from burst import condor
from burst.api import (
    CLUSTER_TAG,
    OWNER_TAG,
    BurstError,
    ClusterRecord,
    FederationConfig,
    FederationContext,
    FederationError,
    JoinStatus,
)
from burst.backlog.htcondor import slot_kind
from burst.federation.kube import KubeconfigError, client_from_kubeconfig

log = logging.getLogger(__name__)

#: The official HTCondor execute-node image, pinned (never ``latest``): a pool upgrade is a
#: config change the operator makes on purpose.
DEFAULT_IMAGE = "htcondor/execute:25.0-el9"
DAEMONSET = "burst-startd"
SECRET = "burst-htcondor-idtoken"
TOKEN_KEY = "token"
#: The execute image copies tokens from here into /etc/condor/tokens.d with the right owner/mode.
TOKEN_DIR = "/etc/condor/tokens-orig.d"
MANAGED_BY = "app.kubernetes.io/managed-by"
APP = "app.kubernetes.io/name"
#: Slots with these activities run a job (Retiring: draining gracefully, the job still runs).
RUNNING_ACTIVITIES = frozenset({"Busy", "Retiring", "Suspended"})
#: The startd attribute naming the Kubernetes node its pod runs on (from the Downward API).
NODE_ATTR = "BurstNode"
NODE_ENV = "K8S_NODE_NAME"
#: Slot states in which no job runs and none is about to start (not Claimed, Matched, Preempting).
IDLE_STATES = ("Unclaimed", "Drained", "Owner")

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class HTCondorPoolConfig(FederationConfig):
    """``federation: {kind: htcondor, collector: cm.cern.ch:9618, token_file: /etc/burst/idtoken}``."""

    kind: Literal["htcondor"] = "htcondor"
    collector: str = Field(description="the pool's central manager, host:port (CONDOR_HOST of the startds)")
    token_file: str = Field(
        description="file holding an IDTOKEN with READ, ADVERTISE_MASTER and ADVERTISE_STARTD; read at join time"
    )
    image: str = Field(default=DEFAULT_IMAGE, description="execute-node image, pinned to a version")
    namespace: str = Field(default="burst-htcondor", description="namespace in the member cluster")
    reserve_cpus: int = Field(default=1, ge=0, description="cores per node left to the kubelet and system pods")
    reserve_memory_mb: int = Field(default=2048, ge=0, description="memory per node left to the kubelet and system")
    tolerations: list[dict[str, Any]] = Field(
        default_factory=lambda: [{"operator": "Exists"}],
        description="pod tolerations (default: tolerate every taint: the nodes exist for these startds)",
    )
    fallback_to_daemonset: bool = Field(
        default=True, description="when the collector cannot be queried, call the member ready once its DaemonSet is"
    )

    @field_validator("image")
    @classmethod
    def _pinned(cls, value: str) -> str:
        name, _, tag = value.rpartition(":")
        if "@sha256:" not in value and (not name or "/" in tag or tag in ("", "latest")):
            raise ValueError(f"image {value!r} must be pinned to a version tag or digest (not latest)")
        return value

    @field_validator("namespace")
    @classmethod
    def _dns_label(cls, value: str) -> str:
        if not _DNS_LABEL.match(value):
            raise ValueError(f"namespace {value!r} is not a DNS label")
        return value

    def build(self, ctx: FederationContext) -> HTCondorPool:
        connector = ctx.extras.get("htcondor.connector") or condor.HTCondorConnector()
        credentials = ctx.extras.get("credentials")
        token_path = Path(self.token_file)
        if not token_path.is_absolute():
            token_path = Path(ctx.config_dir) / token_path
        return HTCondorPool(
            self,
            owner=ctx.owner,
            token_path=token_path,
            connector=connector,  # type: ignore[arg-type]
            credentials=credentials if callable(credentials) else None,
        )


def _quoted(value: str) -> str:
    """A ClassAd string literal, for a config value the startd publishes as a string attribute."""
    return str(classad2.quote(value))


def startd_constraint(cluster_id: str, owner: str) -> str:
    """The startds of one burst cluster of one burst installation."""
    return f"BurstCluster =?= {_quoted(cluster_id)} && BurstOwner =?= {_quoted(owner)}"


def running_jobs(ads: list[classad2.ClassAd]) -> int:
    """Slots running a job: claimed dynamic/static slots that are Busy, Retiring or Suspended.
    Partitionable slots are never claimed themselves; their dynamic slots are counted."""
    return sum(
        1
        for ad in ads
        if slot_kind(ad) != "Partitionable"
        and ad.get("State") == "Claimed"
        and ad.get("Activity") in RUNNING_ACTIVITIES
    )


def _int(ad: classad2.ClassAd, attr: str) -> int:
    """A whole-number attribute for a message; 0 when missing or not a number."""
    value = ad.get(attr)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _draining(ads: list[classad2.ClassAd], address: str) -> bool:
    return any(ad.get("MyAddress") == address and ad.get("Draining") is True for ad in ads)


#: ``condor_drain -check``: the startd drains only if every slot is idle (checked by the startd).
IDLE_CHECK = " || ".join(f"State =?= {_quoted(state)}" for state in IDLE_STATES)


def idle_nodes(ads: list[classad2.ClassAd]) -> dict[str, list[classad2.ClassAd]]:
    """The slot ads of each Kubernetes node (``BurstNode``) whose every slot is idle.  Startds
    that do not say their node (started from an older DaemonSet) are left out."""
    by_node: dict[str, list[classad2.ClassAd]] = {}
    for ad in ads:
        node = ad.get(NODE_ATTR)
        if isinstance(node, str) and node:
            by_node.setdefault(node, []).append(ad)
    return {node: slots for node, slots in by_node.items() if all(ad.get("State") in IDLE_STATES for ad in slots)}


class HTCondorPool:
    """A :class:`~burst.api.Federation` that joins members to an HTCondor pool."""

    name = "htcondor"

    def __init__(
        self,
        config: HTCondorPoolConfig,
        *,
        owner: str,
        token_path: Path,
        connector: condor.Connector,
        credentials: Callable[[str], str] | None = None,
        api_client_factory: Callable[[str], k8s.ApiClient] | None = None,
    ) -> None:
        self._config = config
        self._owner = owner
        self._token_path = token_path
        #: nodes release_idle handed out per cluster: the provider may be deleting them, so undrain
        #: leaves their startds draining (a job matched there would die with the VM).  In memory
        #: only: after a restart the released nodes' startds are gone or soon will be.
        self._handed_out: dict[str, set[str]] = {}
        self._connector = connector
        self._credentials = credentials
        self._api_client = api_client_factory or api_client_from_kubeconfig
        # Kubeconfigs seen at join, for unjoin when no credentials callback was given.  Secrets:
        # kept in memory only, never logged.
        self._kubeconfigs: dict[str, str] = {}

    # --- join ---------------------------------------------------------------------------------

    def join(self, cluster: ClusterRecord, kubeconfig: str) -> JoinStatus:
        """Create (or find) the namespace, token secret and startd DaemonSet, then report whether
        the pool sees the startds.  Idempotent; never waits."""
        cid = cluster.cluster_id
        self._kubeconfigs[cid] = kubeconfig
        token = self._read_token()
        with self._api_client(kubeconfig) as api:
            core, apps = k8s.CoreV1Api(api), k8s.AppsV1Api(api)
            ns = self._config.namespace
            with _kube(f"joining {cid}: namespace {ns}"):
                _create(lambda: core.create_namespace(self.namespace_body(cluster)))
            with _kube(f"joining {cid}: secret {ns}/{SECRET}"):
                body = self.secret_body(cluster, token)
                if not _create(lambda: core.create_namespaced_secret(ns, body)):
                    # Already there: make it hold the token the operator's file holds now (rotation).
                    core.patch_namespaced_secret(SECRET, ns, {"data": body.data})
            with _kube(f"joining {cid}: daemonset {ns}/{DAEMONSET}"):
                # The response is not needed; not decoding it also spares kubernetes 37's strict
                # models a DaemonSet whose status no controller has written yet.
                _create(
                    lambda: apps.create_namespaced_daemon_set(ns, self.daemonset_body(cluster), _preload_content=False)
                )
            return self._readiness(cluster, apps)

    def _read_token(self) -> str:
        try:
            token = self._token_path.read_text().strip()
        except OSError as err:
            raise FederationError(f"cannot read the IDTOKEN file {self._token_path}: {err.strerror}") from err
        if not token:
            raise FederationError(f"the IDTOKEN file {self._token_path} is empty")
        return token

    def _readiness(self, cluster: ClusterRecord, apps: k8s.AppsV1Api) -> JoinStatus:
        cid = cluster.cluster_id
        try:
            ads = self._startd_ads(cluster)
        except condor.CondorError as err:
            if not self._config.fallback_to_daemonset:
                return JoinStatus(False, f"collector cannot be queried: {err}")
            log.warning("htcondor federation: %s; readiness of %s from its DaemonSet", err, cid)
            ready, status = self._daemonset_ready(cluster, apps)
            return JoinStatus(ready, f"collector cannot be queried ({err}); DaemonSet {status}")
        startds = condor.unique_by(ads, "MyAddress")
        if startds:
            cores = sum(_int(ad, "TotalSlotCpus") or _int(ad, "Cpus") for ad in startds)
            return JoinStatus(True, f"{len(startds)} startds of {cid} in the pool ({cores} cores)")
        _, status = self._daemonset_ready(cluster, apps)
        return JoinStatus(False, f"no startd of {cid} in the pool yet; DaemonSet {status}")

    def _daemonset_ready(self, cluster: ClusterRecord, apps: k8s.AppsV1Api) -> tuple[bool, str]:
        with _kube(f"reading daemonset {self._config.namespace}/{DAEMONSET} of {cluster.cluster_id}"):
            response: Any = apps.read_namespaced_daemon_set_status(
                DAEMONSET, self._config.namespace, _preload_content=False
            )
        # Read raw: the status counters are absent until the DaemonSet controller has run, which
        # kubernetes 37's strict models reject.
        try:
            status = json.loads(response.data).get("status") or {}
        except (ValueError, AttributeError) as err:
            raise FederationError(f"daemonset {DAEMONSET} of {cluster.cluster_id}: unreadable status") from err
        desired = int(status.get("desiredNumberScheduled") or 0)
        ready = int(status.get("numberReady") or 0)
        return desired > 0 and ready == desired, f"{ready}/{desired} pods ready"

    # --- drain --------------------------------------------------------------------------------

    def drain(self, cluster: ClusterRecord) -> int:
        """Drain every startd of the cluster gracefully (once: a startd whose ad already says
        Draining is left alone) and return how many of its slots still run a job."""
        cid = cluster.cluster_id
        ads = self._startd_ads_or_fail(cluster, "draining")
        failed = []
        for ad in condor.unique_by(ads, "MyAddress"):
            address = str(ad["MyAddress"])
            if _draining(ads, address):
                continue
            where = f"startd {condor.ad_name(ad)} of {cid}"
            try:
                condor.drain(self._connector.startd(ad), reason=f"burst: removing cluster {cid}", where=where)
            except condor.CondorError as err:
                log.warning("htcondor federation: %s", err)
                failed.append(str(err))
        if failed:
            raise FederationError(f"draining {cid}: {'; '.join(failed)}")
        return running_jobs(ads)

    def undrain(self, cluster: ClusterRecord) -> None:
        """Cancel the drains of the cluster's startds so they take work again.  Every startd gets
        a cancel (its ad may not show Draining yet); a refusal only counts for those that do."""
        cid = cluster.cluster_id
        ads = self._startd_ads_or_fail(cluster, "undraining")
        failed = []
        leaving = self._handed_out.get(cid, set())
        for ad in condor.unique_by(ads, "MyAddress"):
            if ad.get(NODE_ATTR) in leaving:
                continue  # released for removal: its VM may be going away
            where = f"startd {condor.ad_name(ad)} of {cid}"
            try:
                condor.cancel_drain(self._connector.startd(ad), where=where)
            except condor.CondorError as err:
                if _draining(ads, str(ad["MyAddress"])):
                    failed.append(str(err))
                else:
                    log.debug("htcondor federation: %s (it was not draining)", err)
        if failed:
            raise FederationError(f"undraining {cid}: {'; '.join(failed)}")

    def running(self, cluster: ClusterRecord) -> int:
        """Slots of the cluster running a job (as :meth:`drain` counts them); changes nothing."""
        return running_jobs(self._startd_ads_or_fail(cluster, "counting the jobs of"))

    def release_idle(self, cluster: ClusterRecord, count: int) -> list[str]:
        """Up to ``count`` Kubernetes nodes of the cluster whose startds run no job, drained
        gracefully so none starts there, and returned by name (``BurstNode``).

        Nodes whose startds are draining already (an earlier call, or drain) come first and are
        not asked again.  The others are drained with ``condor_drain -check`` that every slot is
        idle: a startd that took a job since the collector's ad was written refuses, and the node
        is not returned (drains this call started on its other startds are cancelled).
        """
        if count <= 0:
            return []
        cid = cluster.cluster_id
        idle = idle_nodes(self._startd_ads_or_fail(cluster, "releasing idle nodes of"))
        marked = sorted(n for n, slots in idle.items() if all(ad.get("Draining") is True for ad in slots))
        fresh = sorted(n for n in idle if n not in marked)
        released: list[str] = []
        for node in marked + fresh:
            if len(released) == count:
                break
            if self._drain_node(cid, node, idle[node]):
                released.append(node)
        self._handed_out.setdefault(cid, set()).update(released)
        return released

    def _drain_node(self, cid: str, node: str, slots: list[classad2.ClassAd]) -> bool:
        """Drain the startds of one node unless already draining; False (and nothing left
        draining by this call) when one refuses or cannot be reached."""
        started: list[tuple[condor.StartdLike, str]] = []
        for ad in condor.unique_by(slots, "MyAddress"):
            if _draining(slots, str(ad["MyAddress"])):
                continue
            where = f"startd {condor.ad_name(ad)} on node {node} of {cid}"
            startd = self._connector.startd(ad)
            try:
                condor.drain(startd, reason=f"burst: releasing node {node} of {cid}", where=where, check=IDLE_CHECK)
            except condor.CondorError as err:
                log.info("htcondor federation: node %s not released (a job may have started): %s", node, err)
                for begun, at in started:
                    try:
                        condor.cancel_drain(begun, where=at)
                    except condor.CondorError as cancel_err:
                        log.warning("htcondor federation: %s", cancel_err)
                return False
            started.append((startd, where))
        return True

    def _startd_ads(self, cluster: ClusterRecord) -> list[classad2.ClassAd]:
        collector = self._connector.collector(self._config.collector)
        return condor.startd_ads(
            collector,
            startd_constraint(cluster.cluster_id, self._owner),
            where=f"collector {self._config.collector}",
        )

    def _startd_ads_or_fail(self, cluster: ClusterRecord, action: str) -> list[classad2.ClassAd]:
        try:
            return self._startd_ads(cluster)
        except condor.CondorError as err:
            # Never report zero running jobs on a blind read: the cluster would be deleted.
            raise FederationError(f"{action} {cluster.cluster_id}: {err}") from err

    # --- unjoin -------------------------------------------------------------------------------

    def unjoin(self, cluster: ClusterRecord) -> None:
        """Delete the DaemonSet, the token Secret and the namespace (only if join created it);
        idempotent."""
        cid = cluster.cluster_id
        self._handed_out.pop(cid, None)
        kubeconfig = self._kubeconfig_for(cid)
        with self._api_client(kubeconfig) as api:
            core, apps = k8s.CoreV1Api(api), k8s.AppsV1Api(api)
            ns = self._config.namespace
            with _kube(f"unjoining {cid}: daemonset {ns}/{DAEMONSET}"):
                _delete(lambda: apps.delete_namespaced_daemon_set(DAEMONSET, ns))
            with _kube(f"unjoining {cid}: secret {ns}/{SECRET}"):
                _delete(lambda: core.delete_namespaced_secret(SECRET, ns))
            with _kube(f"unjoining {cid}: namespace {ns}"):
                try:
                    found = core.read_namespace(ns)
                except ApiException as err:
                    if err.status != 404:
                        raise
                    found = None
                labels = (found.metadata.labels or {}) if found is not None and found.metadata else {}
                if found is not None and labels.get(OWNER_TAG) == self._owner and labels.get(CLUSTER_TAG) == cid:
                    _delete(lambda: core.delete_namespace(ns))
                elif found is not None:
                    log.info("htcondor federation: namespace %s in %s was not created by burst; left in place", ns, cid)

    def _kubeconfig_for(self, cluster_id: str) -> str:
        if self._credentials is not None:
            try:
                return self._credentials(cluster_id)
            except BurstError as err:
                raise FederationError(f"unjoining {cluster_id}: no kubeconfig: {err}") from err
        if cluster_id in self._kubeconfigs:
            return self._kubeconfigs[cluster_id]
        raise FederationError(
            f"unjoining {cluster_id}: no kubeconfig (give the federation a 'credentials' callback in its context)"
        )

    # --- the objects join creates -------------------------------------------------------------

    def labels(self, cluster: ClusterRecord) -> dict[str, str]:
        return {
            MANAGED_BY: "burst",
            APP: "htcondor-startd",
            OWNER_TAG: self._owner,
            CLUSTER_TAG: cluster.cluster_id,
        }

    def namespace_body(self, cluster: ClusterRecord) -> k8s.V1Namespace:
        return k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=self._config.namespace, labels=self.labels(cluster)))

    def secret_body(self, cluster: ClusterRecord, token: str) -> k8s.V1Secret:
        return k8s.V1Secret(
            metadata=k8s.V1ObjectMeta(name=SECRET, namespace=self._config.namespace, labels=self.labels(cluster)),
            type="Opaque",
            data={TOKEN_KEY: base64.b64encode(token.encode()).decode()},
        )

    def startd_env(self, cluster: ClusterRecord) -> dict[str, str]:
        """The execute image's settings plus HTCondor config knobs (``_CONDOR_<KNOB>``)."""
        cpus, memory = self.slot_size(cluster)
        return {
            "CONDOR_HOST": self._config.collector,
            "NUM_CPUS": str(cpus),
            "MEMORY": str(memory),
            "_CONDOR_BurstCluster": _quoted(cluster.cluster_id),
            "_CONDOR_BurstCampaign": _quoted(cluster.campaign),
            "_CONDOR_BurstOwner": _quoted(self._owner),
            "_CONDOR_BurstProvider": _quoted(cluster.provider),
            # the node name, from the Downward API variable the DaemonSet sets (a DNS name: no
            # quote or backslash to escape); burst reads it back to release single nodes
            f"_CONDOR_{NODE_ATTR}": f'"$ENV({NODE_ENV})"',
            "_CONDOR_STARTD_ATTRS": f"$(STARTD_ATTRS) BurstCluster BurstCampaign BurstOwner BurstProvider {NODE_ATTR}",
        }

    def slot_size(self, cluster: ClusterRecord) -> tuple[int, int]:
        """Cores and MB one startd advertises: the node less what the kubelet keeps."""
        cpus = max(1, cluster.cpus_per_node - self._config.reserve_cpus)
        memory = max(512, cluster.memory_mb_per_node - self._config.reserve_memory_mb)
        return cpus, memory

    def daemonset_body(self, cluster: ClusterRecord) -> k8s.V1DaemonSet:
        labels = self.labels(cluster)
        selector = {APP: labels[APP], CLUSTER_TAG: labels[CLUSTER_TAG]}
        cpus, memory = self.slot_size(cluster)
        quantities: dict[str, str] = {"cpu": str(cpus), "memory": f"{memory}Mi"}
        if cluster.gpus_per_node:
            quantities["nvidia.com/gpu"] = str(cluster.gpus_per_node)
        container = k8s.V1Container(
            name="startd",
            image=self._config.image,
            env=[
                k8s.V1EnvVar(
                    name=NODE_ENV,
                    value_from=k8s.V1EnvVarSource(field_ref=k8s.V1ObjectFieldSelector(field_path="spec.nodeName")),
                ),
                *(k8s.V1EnvVar(name=k, value=v) for k, v in self.startd_env(cluster).items()),
            ],
            resources=k8s.V1ResourceRequirements(requests=dict(quantities), limits=dict(quantities)),
            volume_mounts=[k8s.V1VolumeMount(name="idtoken", mount_path=TOKEN_DIR, read_only=True)],
        )
        pod = k8s.V1PodSpec(
            containers=[container],
            volumes=[
                k8s.V1Volume(
                    name="idtoken",
                    secret=k8s.V1SecretVolumeSource(
                        secret_name=SECRET,
                        items=[k8s.V1KeyToPath(key=TOKEN_KEY, path="burst-idtoken")],
                        default_mode=0o400,
                    ),
                )
            ],
            tolerations=[k8s.V1Toleration(**t) for t in self._config.tolerations],
            # Removal only follows a drain that reported zero running jobs; the grace period
            # lets the startd shut down cleanly and withdraw its ads.
            termination_grace_period_seconds=300,
        )
        return k8s.V1DaemonSet(
            metadata=k8s.V1ObjectMeta(name=DAEMONSET, namespace=self._config.namespace, labels=labels),
            spec=k8s.V1DaemonSetSpec(
                selector=k8s.V1LabelSelector(match_labels=selector),
                template=k8s.V1PodTemplateSpec(metadata=k8s.V1ObjectMeta(labels=labels), spec=pod),
            ),
        )


def api_client_from_kubeconfig(kubeconfig: str) -> k8s.ApiClient:
    """A client for the member from its kubeconfig text (never written to disk, never logged)."""
    try:
        return client_from_kubeconfig(kubeconfig)[0]
    except KubeconfigError as err:
        raise FederationError(f"the member kubeconfig is not usable: {err}") from err


def _create(call: Callable[[], object]) -> bool:
    """True when created, False when it already existed (409)."""
    try:
        call()
    except ApiException as err:
        if err.status == 409:
            return False
        raise
    return True


def _delete(call: Callable[[], object]) -> None:
    try:
        call()
    except ApiException as err:
        if err.status != 404:
            raise


@contextmanager
def _kube(action: str) -> Iterator[None]:
    """The one place Kubernetes client errors become FederationError.  Only the status and
    reason go into the message: a response body is the server's business, not the log's."""
    try:
        yield
    except ApiException as err:
        hint = " (credentials rejected)" if err.status in (401, 403) else ""
        raise FederationError(f"{action}: HTTP {err.status} {err.reason}{hint}") from err
    except HTTPError as err:
        raise FederationError(f"{action}: API server unreachable: {type(err).__name__}") from err
