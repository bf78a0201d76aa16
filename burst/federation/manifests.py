"""Applying a set of manifests (an operator's ``kubectl apply -f manifests.yaml``) through the
official client: what the ``multikueue`` federation does to install Kueue on a new worker.

Kinds are found through the API server's discovery, so any manifest works (CRDs, RBAC,
Deployments, webhook configurations); objects that exist are left as they are.
"""

from __future__ import annotations

from typing import Any

import yaml
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from burst.errors import FederationError
from burst.federation.kube import Kind, Kube, _json, condition

JSON = dict[str, Any]

CRD = Kind("apiextensions.k8s.io/v1", "CustomResourceDefinition", "customresourcedefinitions", namespaced=False)
DEPLOYMENT = Kind("apps/v1", "Deployment", "deployments")


def apply_manifests(kube: Kube, manifests: list[JSON], where: str) -> str:
    """Create the missing objects of ``manifests`` (never changes existing ones); what is still
    awaited ("" when everything is up): a kind not served yet, a CRD not ``Established``, a
    Deployment not available (a controller whose webhooks must answer before its kinds are used)."""
    kinds = _Discovery(kube)
    for doc in manifests:
        kind = kinds.kind(doc)
        if kind is None:
            return f"waiting for the {where} to serve {doc['apiVersion']} {doc['kind']}"
        ns = str((doc.get("metadata") or {}).get("namespace") or "") if kind.namespaced else ""
        body = {k: v for k, v in doc.items() if k not in ("apiVersion", "kind", "status")}
        kube.create(kind, body, ns)
    for doc in manifests:
        name = str(doc["metadata"]["name"])
        if doc["kind"] == "CustomResourceDefinition":
            if not _established(kube.get(CRD, name)):
                return f"waiting for the {where}'s CRD {name} to be Established"
        elif doc["kind"] == "Deployment" and doc["apiVersion"] == "apps/v1":
            ns = str(doc["metadata"].get("namespace") or "")
            if not _available(kube.get(DEPLOYMENT, name, ns)):
                return f"waiting for the {where}'s Deployment {ns}/{name} to be available"
    return ""


def load_manifests(path: str, what: str) -> list[JSON]:
    """The objects of a multi-document YAML file, CRDs first (the others may be of their kinds);
    a bad file is a one-line error naming ``what`` (the config field), the file and the line."""
    try:
        with open(path, encoding="utf-8") as fh:
            docs = list(yaml.safe_load_all(fh))
    except OSError as err:
        raise FederationError(f"{what}: cannot read {path}: {err.strerror}") from err
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise FederationError(f"{what}: {path}{where}: not valid YAML") from None
    out = []
    for i, doc in enumerate(docs, 1):
        if doc is None:
            continue
        if not isinstance(doc, dict) or not doc.get("apiVersion") or not doc.get("kind"):
            raise FederationError(f"{what}: {path} document {i}: needs apiVersion and kind")
        if not (doc.get("metadata") or {}).get("name"):
            raise FederationError(f"{what}: {path} document {i}: needs metadata.name")
        out.append(doc)
    return sorted(out, key=lambda d: d["kind"] != "CustomResourceDefinition")


class _Discovery:
    """Which resource serves a manifest's kind on one API server (asked once per group/version)."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self._lists: dict[str, dict[str, tuple[str, bool]]] = {}

    def kind(self, doc: JSON) -> Kind | None:
        api_version, kind = str(doc["apiVersion"]), str(doc["kind"])
        if api_version not in self._lists:
            self._lists[api_version] = self._resources(api_version)
        found = self._lists[api_version].get(kind)
        return None if found is None else Kind(api_version, kind, found[0], found[1])

    def _resources(self, api_version: str) -> dict[str, tuple[str, bool]]:
        opts: dict[str, Any] = {"_preload_content": False, "_request_timeout": self.kube.timeout_s}
        group, _, version = api_version.rpartition("/")
        try:
            if group:
                resp = k8s.CustomObjectsApi(self.kube.api).get_api_resources(group, version, **opts)
            else:
                resp = k8s.CoreV1Api(self.kube.api).get_api_resources(**opts)
        except ApiException as err:
            if err.status == 404:
                return {}
            raise
        return {
            str(r["kind"]): (str(r["name"]), bool(r.get("namespaced")))
            for r in (_json(resp) or {}).get("resources") or []
            if "/" not in str(r.get("name"))
        }


def _established(crd: JSON | None) -> bool:
    return _true(crd, "Established")


def _available(deployment: JSON | None) -> bool:
    if deployment is None:
        return False
    if _true(deployment, "Available"):
        return True
    wanted = int((deployment.get("spec") or {}).get("replicas", 1))
    return int((deployment.get("status") or {}).get("availableReplicas") or 0) >= max(1, wanted)


def _true(obj: JSON | None, type_: str) -> bool:
    cond = condition(obj, type_)
    return cond is not None and cond.get("status") == "True"
