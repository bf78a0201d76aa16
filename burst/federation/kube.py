"""Shared Kubernetes plumbing for the kubernetes backlog source and the kubefed/Karmada federations.

Five things live here, so each plugin stays about its own semantics:

* building official ``kubernetes`` clients from kubeconfig *text* (member kubeconfigs are secrets
  handed over by a provider; burst keeps them in memory — only the official loader writes the
  certificate data it needs to private temporary files, as it always does) or from an endpoint +
  service-account token (what the federation control plane itself uses to reach a member);
* :class:`Kube`, dict-in/dict-out access to one API server through the official typed APIs
  (``CoreV1Api``, ``RbacAuthorizationV1Api``, ``BatchV1Api``, ``AppsV1Api``) and
  ``CustomObjectsApi`` for custom kinds — JSON is read raw (``_preload_content=False``), which is
  both what the plugins want and fast for 10 000 pods;
* :func:`kube_errors`, the one place where the SDK's exceptions become burst's typed errors
  (``BacklogUnavailable`` for the backlog source, ``FederationError`` for federations), with
  the action as context and never a token in the message;
* the member-side service account that ``kubefedctl join`` / ``karmadactl join`` create
  (:class:`MemberAccount`), shared by both federations;
* what both federations do on a member's nodes once they reach it: cordons and node release
  (:class:`MemberNodes`), ``running`` and ``release_idle`` (:class:`MemberFederation`).
"""

from __future__ import annotations

import base64
import json
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import urllib3
import yaml
from kubernetes import client as k8s
from kubernetes.client import ApiClient, Configuration
from kubernetes.client.exceptions import ApiException
from kubernetes.config import new_client_from_config_dict
from kubernetes.config.config_exception import ConfigException

from burst.answers import MALFORMED
from burst.errors import BurstError, FederationError
from burst.lifecycle import ClusterRecord
from burst.model import CLUSTER_TAG, OWNER_TAG

log = logging.getLogger(__name__)

JSON = dict[str, Any]

MANAGED_BY = "app.kubernetes.io/managed-by"
SA_TOKEN_TYPE = "kubernetes.io/service-account-token"
SA_NAME_ANNOTATION = "kubernetes.io/service-account.name"

#: Namespaces whose pods are the cluster's own machinery, not work.
SYSTEM_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease")


class KubeconfigError(ValueError):
    """A kubeconfig that cannot be used; the message never quotes the file's content."""


# ------------------------------------------------------------------------------------------------
# kubeconfig handling
# ------------------------------------------------------------------------------------------------


def parse_kubeconfig(text: str) -> JSON:
    """The kubeconfig as a dict; YAML errors name the line, not the (secret) content."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise KubeconfigError(f"the kubeconfig is not valid YAML{where}") from None
    if not isinstance(doc, dict) or not doc.get("clusters"):
        raise KubeconfigError("the kubeconfig has no clusters")
    return doc


@dataclass(frozen=True, slots=True)
class ClusterEndpoint:
    """Where a cluster's API is and which CA signs it (base64 PEM, may be empty)."""

    server: str
    ca_data: str = ""
    insecure: bool = False


def kubeconfig_endpoint(doc: JSON, context: str | None = None) -> ClusterEndpoint:
    """The API endpoint of the kubeconfig's (current or named) context."""
    ctx_name = context or doc.get("current-context")
    contexts = {c.get("name"): c.get("context") or {} for c in doc.get("contexts") or []}
    clusters = {c.get("name"): c.get("cluster") or {} for c in doc.get("clusters") or []}
    if ctx_name:
        if ctx_name not in contexts:
            raise KubeconfigError(f"the kubeconfig has no context {ctx_name!r}")
        cluster = clusters.get(contexts[ctx_name].get("cluster"))
    else:
        cluster = next(iter(clusters.values()), None)
    if not cluster or not cluster.get("server"):
        raise KubeconfigError("the kubeconfig's cluster has no server")
    ca = str(cluster.get("certificate-authority-data") or "")
    if not ca and cluster.get("certificate-authority"):
        try:
            with open(str(cluster["certificate-authority"]), "rb") as fh:
                ca = base64.b64encode(fh.read()).decode()
        except OSError as err:
            raise KubeconfigError(f"the kubeconfig's certificate-authority cannot be read: {err}") from err
    return ClusterEndpoint(str(cluster["server"]), ca, bool(cluster.get("insecure-skip-tls-verify")))


def _configuration(retries: int) -> Configuration:
    conf = cast(Configuration, type.__call__(Configuration))  # a fresh one, not the global default
    conf.retries = retries
    return conf


def client_from_kubeconfig(text: str, context: str | None = None, *, retries: int = 1) -> tuple[ApiClient, str]:
    """An ApiClient for the kubeconfig text and its endpoint URL (for messages).

    Everything the official loader supports works (tokens, client certificates, exec plugins);
    nothing is written back to the kubeconfig.
    """
    doc = parse_kubeconfig(text)
    endpoint = kubeconfig_endpoint(doc, context)
    try:
        api = new_client_from_config_dict(  # type: ignore[no-untyped-call]
            doc, context=context, persist_config=False, client_configuration=_configuration(retries)
        )
    except ConfigException as err:
        raise KubeconfigError(f"the kubeconfig is not usable: {err}") from err
    return cast(ApiClient, api), endpoint.server


def client_from_token(endpoint: ClusterEndpoint, token: str, *, retries: int = 1) -> ApiClient:
    """An ApiClient that authenticates with a bearer token (a member's service-account token)."""
    conf = _configuration(retries)
    conf.host = endpoint.server.rstrip("/")
    conf.api_key = {"authorization": f"Bearer {token}"}
    if endpoint.ca_data:
        conf.ca_cert_data = base64.b64decode(endpoint.ca_data).decode()  # in memory: no temp file per call
    conf.verify_ssl = not endpoint.insecure
    return ApiClient(configuration=conf)


# ------------------------------------------------------------------------------------------------
# the one exception boundary
# ------------------------------------------------------------------------------------------------


def _status_message(err: ApiException) -> str:
    try:
        body = json.loads(err.body or "")
    except (ValueError, TypeError):
        return str(err.reason or "")
    return str(body.get("message") or err.reason or "") if isinstance(body, dict) else str(err.reason or "")


def describe(err: BaseException, endpoint: str) -> str:
    """One line about an SDK failure, naming the API server; never includes credentials."""
    if isinstance(err, ApiException):
        status = err.status or 0
        if status == 401:
            return f"the API server at {endpoint} rejected the credentials (401 Unauthorized: token wrong or expired)"
        if status == 403:
            return (
                f"the API server at {endpoint} refused: {_status_message(err)} (403 Forbidden: missing RBAC permission)"
            )
        return f"the API server at {endpoint} answered {status} {err.reason}: {_status_message(err)}"
    if isinstance(err, KubeconfigError):
        return str(err)
    if isinstance(err, BadResponse):
        return f"the API server at {endpoint} gave a bad answer: {err}"
    if isinstance(err, urllib3.exceptions.MaxRetryError):
        reason = err.reason
        return f"cannot reach the API server at {endpoint}: {type(reason).__name__ if reason else 'retries exhausted'}"
    if isinstance(err, urllib3.exceptions.HTTPError | OSError):
        return f"cannot reach the API server at {endpoint}: {type(err).__name__}"
    return f"{type(err).__name__} talking to {endpoint}"


@contextmanager
def kube_errors(action: str, error: type[BurstError], endpoint: str = "") -> Iterator[None]:
    """Turn SDK exceptions raised inside into ``error(f"{action}: …")`` (``raise … from err``)."""
    try:
        yield
    except (ApiException, KubeconfigError, BadResponse, urllib3.exceptions.HTTPError, OSError) as err:
        raise error(f"{action}: {describe(err, endpoint or 'the configured endpoint')}") from err
    except MALFORMED as err:  # well-formed HTTP, nonsense inside: a field missing, a wrong type, a bad quantity
        detail = " ".join(str(err).split())[:200]
        raise error(f"{action}: the API server answered malformed data: {type(err).__name__}: {detail}") from err


def status_of(err: BaseException) -> int:
    """The HTTP status of an ApiException inside a BurstError (0 when there is none)."""
    cause = err.__cause__ if isinstance(err, BurstError) else err
    return int(cause.status or 0) if isinstance(cause, ApiException) else 0


# ------------------------------------------------------------------------------------------------
# dict-in/dict-out access to one API server
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Kind:
    """A resource as the API serves it: ``Kind("v1", "Secret", "secrets")``."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool = True

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]

    @property
    def snake(self) -> str:
        return re.sub(r"(?<!^)(?=[A-Z])", "_", self.kind).lower()


NAMESPACE = Kind("v1", "Namespace", "namespaces", namespaced=False)
NODE = Kind("v1", "Node", "nodes", namespaced=False)
POD = Kind("v1", "Pod", "pods")
SECRET = Kind("v1", "Secret", "secrets")
SERVICE_ACCOUNT = Kind("v1", "ServiceAccount", "serviceaccounts")
CLUSTER_ROLE = Kind("rbac.authorization.k8s.io/v1", "ClusterRole", "clusterroles", namespaced=False)
CLUSTER_ROLE_BINDING = Kind("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "clusterrolebindings", False)
JOB = Kind("batch/v1", "Job", "jobs")
FEDERATED_JOB = Kind("types.kubefed.io/v1beta1", "FederatedJob", "federatedjobs")

_TYPED_APIS: dict[str, Any] = {
    "v1": k8s.CoreV1Api,
    "rbac.authorization.k8s.io/v1": k8s.RbacAuthorizationV1Api,
    "batch/v1": k8s.BatchV1Api,
    "apps/v1": k8s.AppsV1Api,
}


class BadResponse(Exception):
    """The API answered 2xx with a body that is not JSON (a proxy's page, a truncated answer)."""


def _json(resp: Any) -> Any:
    """The JSON body of a raw (``_preload_content=False``) response."""
    try:
        return json.loads(resp.data or b"null")
    except ValueError as err:
        raise BadResponse(f"the answer is not JSON ({err.msg if hasattr(err, 'msg') else err})") from err


@dataclass
class Kube:
    """One API server.  Methods return plain dicts (camelCase, as on the wire).

    ``get`` returns None and ``delete`` False for missing objects; ``create`` returns None when the
    object already exists (join steps are idempotent that way).  Other API errors propagate as the
    SDK's exceptions, for :func:`kube_errors` to convert at the plugin boundary.
    """

    api: ApiClient
    endpoint: str
    timeout_s: float = 15.0
    page_size: int = 2000
    _apis: dict[str, Any] = field(default_factory=dict, repr=False)

    def _typed(self, kind: Kind) -> Any:
        if kind.api_version not in self._apis:
            self._apis[kind.api_version] = _TYPED_APIS[kind.api_version](self.api)
        return self._apis[kind.api_version]

    def _custom(self) -> Any:
        if "custom" not in self._apis:
            self._apis["custom"] = k8s.CustomObjectsApi(self.api)
        return self._apis["custom"]

    def _opts(self) -> dict[str, Any]:
        return {"_preload_content": False, "_request_timeout": self.timeout_s}

    def get(self, kind: Kind, name: str, namespace: str = "") -> JSON | None:
        try:
            if kind.api_version in _TYPED_APIS:
                api = self._typed(kind)
                if kind.namespaced:
                    resp = getattr(api, f"read_namespaced_{kind.snake}")(name, namespace, **self._opts())
                else:
                    resp = getattr(api, f"read_{kind.snake}")(name, **self._opts())
            elif kind.namespaced:
                resp = self._custom().get_namespaced_custom_object(
                    kind.group, kind.version, namespace, kind.plural, name, **self._opts()
                )
            else:
                resp = self._custom().get_cluster_custom_object(
                    kind.group, kind.version, kind.plural, name, **self._opts()
                )
        except ApiException as err:
            if err.status == 404:
                return None
            raise
        return cast(JSON, _json(resp))

    def list(self, kind: Kind, namespace: str = "", *, labels: str = "", fields: str = "") -> list[JSON]:
        """Every matching object, following ``continue`` pages; all namespaces when ``namespace`` is ""."""
        items: list[JSON] = []
        token: str | None = None
        while True:
            query: dict[str, Any] = {"limit": self.page_size, **self._opts()}
            if labels:
                query["label_selector"] = labels
            if fields:
                query["field_selector"] = fields
            if token:
                query["_continue"] = token
            if kind.api_version in _TYPED_APIS:
                api = self._typed(kind)
                if not kind.namespaced:
                    resp = getattr(api, f"list_{kind.snake}")(**query)
                elif namespace:
                    resp = getattr(api, f"list_namespaced_{kind.snake}")(namespace, **query)
                else:
                    resp = getattr(api, f"list_{kind.snake}_for_all_namespaces")(**query)
            elif kind.namespaced and namespace:
                resp = self._custom().list_namespaced_custom_object(
                    kind.group, kind.version, namespace, kind.plural, **query
                )
            else:
                resp = self._custom().list_cluster_custom_object(kind.group, kind.version, kind.plural, **query)
            page = _json(resp)
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items

    def create(self, kind: Kind, obj: JSON, namespace: str = "") -> JSON | None:
        body = {"apiVersion": kind.api_version, "kind": kind.kind, **obj}
        try:
            if kind.api_version in _TYPED_APIS:
                api = self._typed(kind)
                if kind.namespaced:
                    resp = getattr(api, f"create_namespaced_{kind.snake}")(namespace, body, **self._opts())
                else:
                    resp = getattr(api, f"create_{kind.snake}")(body, **self._opts())
            elif kind.namespaced:
                resp = self._custom().create_namespaced_custom_object(
                    kind.group, kind.version, namespace, kind.plural, body, **self._opts()
                )
            else:
                resp = self._custom().create_cluster_custom_object(
                    kind.group, kind.version, kind.plural, body, **self._opts()
                )
        except ApiException as err:
            if err.status == 409:
                return None
            raise
        return cast(JSON, _json(resp))

    def patch(self, kind: Kind, name: str, patch: JSON, namespace: str = "") -> JSON:
        """A merge patch (strategic merge for built-in kinds, which is the same for maps and scalars)."""
        if kind.api_version in _TYPED_APIS:
            api = self._typed(kind)
            if kind.namespaced:
                resp = getattr(api, f"patch_namespaced_{kind.snake}")(name, namespace, patch, **self._opts())
            else:
                resp = getattr(api, f"patch_{kind.snake}")(name, patch, **self._opts())
        elif kind.namespaced:
            resp = self._custom().patch_namespaced_custom_object(
                kind.group, kind.version, namespace, kind.plural, name, patch, **self._opts()
            )
        else:
            resp = self._custom().patch_cluster_custom_object(
                kind.group, kind.version, kind.plural, name, patch, **self._opts()
            )
        return cast(JSON, _json(resp))

    def patch_status(self, kind: Kind, name: str, patch: JSON, namespace: str = "") -> JSON:
        """A merge patch of a custom object's ``status`` subresource (what a controller writes)."""
        custom = self._custom()
        if kind.namespaced:
            resp = custom.patch_namespaced_custom_object_status(
                kind.group, kind.version, namespace, kind.plural, name, patch, **self._opts()
            )
        else:
            resp = custom.patch_cluster_custom_object_status(
                kind.group, kind.version, kind.plural, name, patch, **self._opts()
            )
        return cast(JSON, _json(resp))

    def replace(self, kind: Kind, obj: JSON) -> JSON:
        """PUT ``obj`` (a custom object read earlier): a changed resourceVersion is a 409."""
        meta = obj["metadata"]
        if kind.namespaced:
            resp = self._custom().replace_namespaced_custom_object(
                kind.group, kind.version, meta["namespace"], kind.plural, meta["name"], obj, **self._opts()
            )
        else:
            resp = self._custom().replace_cluster_custom_object(
                kind.group, kind.version, kind.plural, meta["name"], obj, **self._opts()
            )
        return cast(JSON, _json(resp))

    def delete(self, kind: Kind, name: str, namespace: str = "") -> bool:
        try:
            if kind.api_version in _TYPED_APIS:
                api = self._typed(kind)
                if kind.namespaced:
                    getattr(api, f"delete_namespaced_{kind.snake}")(name, namespace, **self._opts())
                else:
                    getattr(api, f"delete_{kind.snake}")(name, **self._opts())
            elif kind.namespaced:
                self._custom().delete_namespaced_custom_object(
                    kind.group, kind.version, namespace, kind.plural, name, **self._opts()
                )
            else:
                self._custom().delete_cluster_custom_object(kind.group, kind.version, kind.plural, name, **self._opts())
        except ApiException as err:
            if err.status == 404:
                return False
            raise
        return True

    def close(self) -> None:
        self.api.close()  # type: ignore[no-untyped-call]


# ------------------------------------------------------------------------------------------------
# helpers on objects
# ------------------------------------------------------------------------------------------------

_DNS_LABEL = re.compile(r"[^a-z0-9-]+")


def k8s_name(text: str, limit: int = 63) -> str:
    """A DNS-1123 label made from ``text`` (burst cluster ids are usually one already)."""
    name = _DNS_LABEL.sub("-", text.lower()).strip("-")[:limit].strip("-")
    if not name:
        raise FederationError(f"cannot make a Kubernetes name from {text!r}")
    return name


def label_value(text: str) -> str:
    """``text`` as a valid label value (at most 63 of ``[A-Za-z0-9._-]``, alphanumeric at both ends)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text)[:63].strip("-._")


def condition(obj: JSON | None, type_: str) -> JSON | None:
    """The ``status.conditions`` entry of ``type_``, if any."""
    if not obj:
        return None
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == type_:
            return cond
    return None


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def unb64(text: str | None) -> str:
    return base64.b64decode(text or "").decode() if text else ""


#: Pods that have not ended (the real API server supports this field selector on pods).
UNFINISHED = "status.phase!=Succeeded,status.phase!=Failed"


def is_work(pod: JSON, *, skip_namespaces: tuple[str, ...]) -> bool:
    """Whether an unfinished pod is work: not in the system namespaces and not a DaemonSet pod
    (cluster machinery that never finishes, which ``kubectl drain --ignore-daemonsets`` skips too)."""
    meta = pod.get("metadata") or {}
    if meta.get("namespace") in skip_namespaces:
        return False
    return not any(ref.get("kind") == "DaemonSet" for ref in meta.get("ownerReferences") or [])


def running_pods(member: Kube, *, skip_namespaces: tuple[str, ...]) -> list[JSON]:
    """Pods that are work running (or bound and starting) in a member.

    Counted: every pod not Succeeded/Failed that is Running or bound to a node and
    :func:`is_work`.  Not counted: DaemonSet pods, pods in the system namespaces, and unbound
    Pending pods (they cannot start on a drained member and never ran, so removing the member
    kills nothing).
    """
    return [
        pod
        for pod in member.list(POD, fields=UNFINISHED)
        if is_work(pod, skip_namespaces=skip_namespaces)
        and ((pod.get("status") or {}).get("phase") == "Running" or (pod.get("spec") or {}).get("nodeName"))
    ]


# ------------------------------------------------------------------------------------------------
# burst's marks on a member's nodes: cordons and node release
# ------------------------------------------------------------------------------------------------

#: Annotation on a node burst cordoned (value: the owner), so only burst's cordons are undone.
CORDONED_BY = "burst.cordoned-by"
#: Annotation on a node burst picked for release (value: the owner), so a retry picks it first.
RELEASED_BY = "burst.released-by"
#: Nodes with one of these labels run the control plane: never released.
CONTROL_PLANE_LABELS = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")


def _annotations(node: JSON) -> dict[str, str]:
    return cast(dict[str, str], (node.get("metadata") or {}).get("annotations") or {})


@dataclass(frozen=True, slots=True)
class MemberNodes:
    """Cordoning and releasing the nodes of one member, for one burst installation (``owner``).

    Both marks are annotations naming the owner, so what burst did can be told from what an
    operator did: a node someone else cordoned is never uncordoned, and never released.
    """

    owner: str
    skip_namespaces: tuple[str, ...]

    def cordon_all(self, member: Kube) -> None:
        """Cordon every schedulable node (idempotent; new nodes too), annotated as burst's."""
        for node in member.list(NODE):
            if not (node.get("spec") or {}).get("unschedulable"):
                patch = {"metadata": {"annotations": {CORDONED_BY: self.owner}}, "spec": {"unschedulable": True}}
                member.patch(NODE, node["metadata"]["name"], patch)

    def uncordon_ours(self, member: Kube) -> None:
        """Uncordon the nodes burst cordoned, except those picked for release: the provider may
        be deleting them (a pod bound there would die with the VM).  A picked node whose removal
        failed stays fenced until a later release returns it again."""
        for node in member.list(NODE):
            notes = _annotations(node)
            if notes.get(CORDONED_BY) == self.owner and notes.get(RELEASED_BY) != self.owner:
                self._give_back(member, node["metadata"]["name"], notes, keep_cordon=False)

    def _give_back(self, member: Kube, name: str, notes: dict[str, str], *, keep_cordon: bool) -> None:
        """Drop the release mark and, unless ``keep_cordon``, burst's cordon."""
        patch: JSON = {"metadata": {"annotations": {RELEASED_BY: None}}}
        if not keep_cordon and notes.get(CORDONED_BY) == self.owner:
            patch = {
                "metadata": {"annotations": {RELEASED_BY: None, CORDONED_BY: None}},
                "spec": {"unschedulable": None},
            }
        member.patch(NODE, name, patch)

    def _candidate(self, node: JSON) -> bool:
        meta = node.get("metadata") or {}
        if meta.get("deletionTimestamp") or any(k in (meta.get("labels") or {}) for k in CONTROL_PLANE_LABELS):
            return False
        # A node someone else cordoned is theirs (maintenance, debugging): left alone.
        return not (node.get("spec") or {}).get("unschedulable") or _annotations(node).get(CORDONED_BY) == self.owner

    def _busy(self, pods: list[JSON]) -> set[str]:
        return {
            str((pod.get("spec") or {}).get("nodeName"))
            for pod in pods
            if (pod.get("spec") or {}).get("nodeName") and is_work(pod, skip_namespaces=self.skip_namespaces)
        }

    def release_idle(self, member: Kube, count: int, *, draining: bool) -> list[str]:
        """Up to ``count`` idle nodes, marked and cordoned, checked again after the cordon.

        Idle: no unfinished pod that :func:`is_work` is bound to the node.  Nodes marked by an
        earlier call come first.  A node that took work — marked earlier, or between the first
        look and the cordon — is given back (mark dropped, burst's cordon undone); on a
        ``draining`` member it stays cordoned, as drain wants it.  Marked idle nodes beyond
        ``count`` stay marked and cordoned (a provider may be removing them): a later call returns
        them first (``undrain`` leaves them fenced).  See :class:`burst.federation.api.ReleasesNodes`.
        """
        if count <= 0:
            return []
        busy = self._busy(member.list(POD, fields=UNFINISHED))
        marked: list[JSON] = []
        fresh: list[JSON] = []
        for node in sorted(member.list(NODE), key=lambda n: str(n["metadata"]["name"])):
            name, notes = str(node["metadata"]["name"]), _annotations(node)
            ours = notes.get(RELEASED_BY) == self.owner
            if name in busy:
                if ours:
                    log.info("node %s took work since burst picked it for release; given back", name)
                    self._give_back(member, name, notes, keep_cordon=draining)
                continue
            if self._candidate(node):
                (marked if ours else fresh).append(node)
        picked = (marked + fresh)[:count]
        for node in picked:
            notes, spec = _annotations(node), node.get("spec") or {}
            patch: JSON = {}
            if not spec.get("unschedulable"):
                patch = {"metadata": {"annotations": {RELEASED_BY: self.owner, CORDONED_BY: self.owner}}}
                patch["spec"] = {"unschedulable": True}
            elif notes.get(RELEASED_BY) != self.owner:
                patch = {"metadata": {"annotations": {RELEASED_BY: self.owner}}}
            if patch:
                node["metadata"]["annotations"] = {**notes, **patch["metadata"]["annotations"]}
                member.patch(NODE, node["metadata"]["name"], patch)
        released = []
        for node in picked:
            name = str(node["metadata"]["name"])
            # A pod the scheduler bound before it saw the cordon: the node is not idle after all.
            if self._busy(member.list(POD, fields=f"spec.nodeName={name},{UNFINISHED}")):
                log.info("node %s took work while burst cordoned it for release; given back", name)
                self._give_back(member, name, _annotations(node), keep_cordon=draining)
            else:
                released.append(name)
        return released


@contextmanager
def on_member(member: Kube, action: str) -> Iterator[Kube]:
    """Use ``member`` with its SDK errors as :class:`FederationError` naming ``action``; closes it."""
    try:
        with kube_errors(f"{action}: member", FederationError, member.endpoint):
            yield member
    finally:
        member.close()


class MemberFederation(ABC):
    """What kubefed and Karmada share once they reach a member: counting its jobs, releasing its
    idle nodes (:class:`~burst.federation.api.CountsRunning`,
    :class:`~burst.federation.api.ReleasesNodes`) and giving nodes back on undrain."""

    name: str
    owner: str

    def _cid(self, cluster: ClusterRecord) -> str:
        return k8s_name(cluster.cluster_id)

    def _labels(self, cluster: ClusterRecord) -> dict[str, str]:
        """On everything a join creates, so what burst made can be told from what was there."""
        return {CLUSTER_TAG: label_value(cluster.cluster_id), OWNER_TAG: label_value(self.owner)}

    @abstractmethod
    def _reach(self, cluster: ClusterRecord, action: str) -> tuple[Kube | None, bool]:
        """The member (None when it was never joined) and whether it is draining."""

    @abstractmethod
    def _nodes(self) -> MemberNodes: ...

    def _action(self, what: str, cluster: ClusterRecord) -> str:
        return f"{self.name}: {what} {self._cid(cluster)}"

    def running(self, cluster: ClusterRecord) -> int:
        """How many pods run in the member, counted as drain counts them; changes nothing."""
        action = self._action("counting the jobs of", cluster)
        member, _ = self._reach(cluster, action)
        return 0 if member is None else self._count(member, action)

    def _count(self, member: Kube, action: str) -> int:
        with on_member(member, action):
            return len(running_pods(member, skip_namespaces=self._nodes().skip_namespaces))

    def release_idle(self, cluster: ClusterRecord, count: int) -> list[str]:
        """Idle nodes of the member, cordoned for removal (see :meth:`MemberNodes.release_idle`)."""
        action = self._action("releasing idle nodes of", cluster)
        member, draining = self._reach(cluster, action)
        if member is None:
            return []
        with on_member(member, action):
            return self._nodes().release_idle(member, count, draining=draining)

    def _give_back_nodes(self, member: Kube | None, action: str) -> None:
        """On undrain: uncordon what burst cordoned, except nodes picked for release (see
        :meth:`MemberNodes.uncordon_ours`)."""
        if member is not None:
            with on_member(member, action):
                self._nodes().uncordon_ours(member)


# ------------------------------------------------------------------------------------------------
# the member-side service account of a join
# ------------------------------------------------------------------------------------------------

#: What kubefedctl and karmadactl grant the control plane's account in a member: everything.
FULL_ACCESS_RULES: list[JSON] = [
    {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
    {"nonResourceURLs": ["/metrics"], "verbs": ["get"]},
]


@dataclass(frozen=True, slots=True)
class MemberAccount:
    """The service account a federation control plane uses in a member, and its RBAC.

    ``labels`` go on everything created (``burst.cluster`` and ``burst.owner`` among them), so
    what burst created can be told from what was there.
    """

    namespace: str
    name: str
    cluster_role: str
    labels: dict[str, str]
    #: What the account may do in the member; kubefedctl and karmadactl grant everything.
    rules: tuple[JSON, ...] = tuple(FULL_ACCESS_RULES)

    @property
    def token_secret(self) -> str:
        return f"{self.name}-token"

    def ensure(self, member: Kube) -> tuple[str, str] | None:
        """Create what is missing (idempotent); the token and CA (base64) once the member's token
        controller has filled the secret, else None (ask again on a later tick)."""
        labels = {**self.labels, MANAGED_BY: "burst"}
        if member.get(NAMESPACE, self.namespace) is None:
            member.create(NAMESPACE, {"metadata": {"name": self.namespace, "labels": labels}})
        member.create(SERVICE_ACCOUNT, {"metadata": {"name": self.name, "labels": labels}}, self.namespace)
        member.create(
            CLUSTER_ROLE, {"metadata": {"name": self.cluster_role, "labels": labels}, "rules": list(self.rules)}
        )
        member.create(
            CLUSTER_ROLE_BINDING,
            {
                "metadata": {"name": self.cluster_role, "labels": labels},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": self.cluster_role},
                "subjects": [{"kind": "ServiceAccount", "name": self.name, "namespace": self.namespace}],
            },
        )
        # Since Kubernetes 1.24 no token Secret is made for a service account: ask for one.
        member.create(
            SECRET,
            {
                "metadata": {
                    "name": self.token_secret,
                    "labels": labels,
                    "annotations": {SA_NAME_ANNOTATION: self.name},
                },
                "type": SA_TOKEN_TYPE,
            },
            self.namespace,
        )
        secret = member.get(SECRET, self.token_secret, self.namespace) or {}
        data = secret.get("data") or {}
        if not data.get("token"):
            return None
        return unb64(data["token"]), str(data.get("ca.crt") or "")

    def remove(self, member: Kube) -> None:
        """Delete what :meth:`ensure` created; missing objects are fine.

        Order matters: the caller may be authenticated *as* this account, and deleting the
        account revokes its token.  So bindings go first, then the account (or its namespace, when
        burst created it), then — if still allowed — the token Secret.
        """
        member.delete(CLUSTER_ROLE_BINDING, self.cluster_role)
        member.delete(CLUSTER_ROLE, self.cluster_role)
        ns = member.get(NAMESPACE, self.namespace)
        ours = bool(ns) and all(
            ((ns or {}).get("metadata") or {}).get("labels", {}).get(k) == v
            for k, v in {**self.labels, MANAGED_BY: "burst"}.items()
        )
        if ours:
            member.delete(NAMESPACE, self.namespace)
            return
        member.delete(SERVICE_ACCOUNT, self.name, self.namespace)
        try:
            member.delete(SECRET, self.token_secret, self.namespace)
        except ApiException as err:
            # Authenticated as the account just deleted: its token is gone, and the member's
            # token controller deletes the token Secret of a deleted account by itself.
            if err.status not in (401, 403):
                raise


# ------------------------------------------------------------------------------------------------
# clients for federation plugins (errors already converted)
# ------------------------------------------------------------------------------------------------


def control_plane(path: str, context: str | None, action: str, timeout_s: float) -> Kube:
    """The federation control plane (KubeFed host, Karmada API) from a kubeconfig file, read now
    so a rotated token is picked up.  Failures are :class:`FederationError` naming ``action``."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as err:
        raise FederationError(f"{action}: cannot read the kubeconfig {path}: {err.strerror}") from err
    with kube_errors(f"{action}: kubeconfig {path}", FederationError):
        api, endpoint = client_from_kubeconfig(text, context)
    return Kube(api, endpoint, timeout_s=timeout_s)


def member_from_kubeconfig(
    kubeconfig: str, context: str | None, action: str, timeout_s: float
) -> tuple[Kube, ClusterEndpoint]:
    """A member from the admin kubeconfig a provider handed over, and its endpoint."""
    with kube_errors(f"{action}: member kubeconfig", FederationError):
        endpoint = kubeconfig_endpoint(parse_kubeconfig(kubeconfig), context)
        api, _ = client_from_kubeconfig(kubeconfig, context)
    return Kube(api, endpoint.server, timeout_s=timeout_s), endpoint


def member_from_token(endpoint: ClusterEndpoint, token: str, timeout_s: float) -> Kube:
    """A member reached with the service-account token the control plane stores for it."""
    return Kube(client_from_token(endpoint, token), endpoint.server, timeout_s=timeout_s)
