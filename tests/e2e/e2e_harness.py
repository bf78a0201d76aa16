"""End-to-end harness: ``burst run`` as a real subprocess against real (fake) Kubernetes API servers.

The host cluster is a :class:`KubeApiServer` in the test process, so the test plays the on-prem
users (pending pods), the KubeFed controller and the kubelets.  The burst clusters are the local
cloud's ``kube_api`` servers, which live inside the daemon's process; the test reaches them the way
the KubeFed controller does: through the ``apiEndpoint`` and the credentials Secret that the
``KubeFedCluster`` in the host points to.  Everything is on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from burst.federation.kube import ClusterEndpoint, client_from_token, unb64
from burst.lifecycle import ClusterRecord
from burst.store import Store
from burst.testing.kube_server import KubeApiServer

ROOT = Path(__file__).resolve().parents[2]
KFS = "kube-federation-system"
OWNER = "e2e"


def cli(*args: str, cwd: Path, timeout: float = 60, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """``burst …`` as an operator types it (a fresh process each time)."""
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    try:
        return subprocess.run(
            [sys.executable, "-m", "burst.cli", *args],
            capture_output=True,
            text=True,
            cwd=cwd,
            env=env,
            timeout=timeout,
            input=stdin,
            check=False,
        )
    except subprocess.TimeoutExpired as err:
        raise AssertionError(
            f"burst {' '.join(args)} still running after {timeout}s:\n{err.stdout}\n{err.stderr}"
        ) from None


def wait_until(what: str, pred: Callable[[], Any], timeout: float = 20, every: float = 0.2) -> Any:
    """Poll ``pred`` until it is truthy; fail naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


class BurstRun:
    """``burst run`` in a subprocess; its (JSON) log lines are collected by a reader thread."""

    def __init__(self, config: Path, *extra: str, metrics: bool = True) -> None:
        args = [sys.executable, "-m", "burst.cli", "run", "--config", str(config), "--log-format", "json"]
        if metrics:
            args += ["--metrics-port", "0"]
        self.proc = subprocess.Popen(
            [*args, *extra],
            cwd=config.parent,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "NO_COLOR": "1"},
        )
        self.raw: list[str] = []
        self.lines: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lock:
                self.raw.append(line)
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue
                if isinstance(obj, dict):
                    self.lines.append(obj)

    def logs(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.lines)

    def text(self) -> str:
        with self._lock:
            return "".join(self.raw)

    def find(self, needle: str) -> list[dict[str, Any]]:
        return [ln for ln in self.logs() if needle in str(ln.get("msg", ""))]

    def wait_log(self, needle: str, timeout: float = 20) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            if self.proc.poll() is not None and not self.find(needle):
                raise AssertionError(f"burst run exited ({self.proc.returncode}) before {needle!r}:\n{self.text()}")
            hits = self.find(needle)
            return hits[0] if hits else None

        try:
            return wait_until(f"log line {needle!r}", found, timeout)  # type: ignore[no-any-return]
        except AssertionError as err:
            raise AssertionError(f"{err}\n--- burst run output ---\n{self.text()[-6000:]}") from None

    def ticks(self) -> list[dict[str, Any]]:
        return [ln for ln in self.logs() if ln.get("event") == "tick"]

    @property
    def status_url(self) -> str:
        line = self.wait_log("status page and /metrics on ")
        return str(line["msg"]).rsplit(" ", 1)[1]

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM, then the exit code (the daemon finishes its current step first)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._reader.join(timeout=5)


def stopped_at_end() -> Iterator[list[BurstRun]]:
    """Every daemon a test starts; any still running at the end is stopped (then killed)."""
    started: list[BurstRun] = []
    yield started
    for r in started:
        try:
            r.stop(timeout=15)
        except subprocess.TimeoutExpired:
            r.kill()


def make_host(*, ready_members: bool = True, pending: int = 4, pending_cpu: str = "4") -> KubeApiServer:
    """The on-prem host cluster: one full 4-core node and ``pending`` Unschedulable pods."""
    host = KubeApiServer(ready_members=ready_members)
    host.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": KFS}})
    host.add_node("onprem-1", cpu="4", memory="16Gi")
    host.add_pod("onprem-busy", cpu="4", memory="1Gi", phase="Running", node="onprem-1")
    for i in range(pending):
        host.add_pod(f"job-{i}", cpu=pending_cpu, memory="1Gi", unschedulable=True)
    host.start()
    return host


def host_server() -> Iterator[KubeApiServer]:
    srv = make_host()
    yield srv
    srv.stop()


def write_config(
    tmp: Path,
    host: KubeApiServer | None,
    *,
    host_kubeconfig: str | None = None,
    latency_scale: float = 0.003,
    federation: dict[str, Any] | None = None,
    reconciler: dict[str, Any] | None = None,
    provider: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    idle_after: str = "5s",
    name: str = "burst.yaml",
) -> Path:
    """A burst config in ``tmp``: kubernetes backlog + kubefed on ``host``, local cloud with API servers.

    660 s × 0.003 ≈ 2 s of provisioning; 2 nodes of 8 cores = the 16 pending cores: one cluster.
    """
    kubeconfig = tmp / "host.kubeconfig"
    if host_kubeconfig is not None:
        kubeconfig.write_text(host_kubeconfig, encoding="utf-8")
    elif host is not None:
        kubeconfig.write_text(host.kubeconfig(name="condor-host"), encoding="utf-8")
    doc: dict[str, Any] = {
        "installation": OWNER,
        "state": "sqlite:///burst.db",
        "onprem": {"cores": 4},
        "backlog": {"kind": "kubernetes", "kubeconfig": "host.kubeconfig", "timeout": "3s"},
        "federation": federation
        or {"kind": "kubefed", "host_kubeconfig": "host.kubeconfig", "host_context": "condor-host", "timeout": "3s"},
        "providers": {
            "aws": {
                "kind": "local",
                "cloud": "aws",
                "flavors": ["m5.2xlarge"],
                "max_nodes": 2,
                "nodes_per_cluster": 2,
                "latency_scale": latency_scale,
                "delete_latency": 1,
                "kube_api": True,
                "state_file": "cloud.json",
                **(provider or {}),
            }
        },
        "policies": [
            {"kind": "backlog", "for": "0s", "idle_after": idle_after, "cooldown": "0s"},
            {"kind": "placement"},
        ],
        "reconciler": {"tick": "1s", **(reconciler or {})},
        **(extra or {}),
    }
    path = tmp / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def open_store(tmp: Path) -> Store:
    return Store(f"sqlite:///{tmp / 'burst.db'}", OWNER)


def clusters(store: Store) -> dict[str, ClusterRecord]:
    return {c.cluster_id: c for c in store.all_clusters()}


def state_of(store: Store, cid: str) -> str:
    rec = clusters(store).get(cid)
    return rec.state.value if rec else ""


def cloud_ids(tmp: Path) -> list[str]:
    """Cluster ids in the local cloud's account (its state file)."""
    path = tmp / "cloud.json"
    if not path.exists():
        return []
    return sorted(json.loads(path.read_text(encoding="utf-8")))


def member_api(host: KubeApiServer, cid: str) -> client.ApiClient:
    """A client for a joined member, built the way the KubeFed controller does: the
    KubeFedCluster's ``apiEndpoint`` + ``caBundle`` and the token in its ``secretRef``."""
    kfc = host.get("core.kubefed.io/v1beta1", "kubefedclusters", cid, KFS)
    secret = host.get("v1", "secrets", kfc["spec"]["secretRef"]["name"], KFS)
    token = unb64(secret["data"]["token"])
    return client_from_token(ClusterEndpoint(kfc["spec"]["apiEndpoint"], kfc["spec"].get("caBundle") or ""), token)


def run_pod(core: client.CoreV1Api, name: str, node: str, namespace: str = "default") -> None:
    """What the KubeFed sync controller + scheduler + kubelet would do: a pod bound and Running."""
    core.create_namespaced_pod(
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {
                "nodeName": node,
                "containers": [{"name": "main", "image": "busybox", "resources": {"requests": {"cpu": "4"}}}],
            },
        },
    )
    set_phase(core, name, "Running", namespace)


def set_phase(core: client.CoreV1Api, name: str, phase: str, namespace: str = "default") -> None:
    core.patch_namespaced_pod_status(name, namespace, {"status": {"phase": phase}})


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return str(resp.read().decode("utf-8"))


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one Prometheus sample in an exposition text (0 when absent)."""
    total = 0.0
    found = False
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        metric_name = head.split("{", 1)[0]
        if metric_name != name:
            continue
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
            found = True
    return total if found else 0.0


class PodWatch:
    """Watches every pod of a member (as the KubeFed status controller would) and keeps the
    events, so a test can prove no pod was deleted while it ran."""

    def __init__(self, api: client.ApiClient) -> None:
        self.core = client.CoreV1Api(api)
        self.events: list[tuple[str, str, str]] = []  # (type, pod, phase)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from kubernetes import watch

        version = ""
        while not self._stop.is_set():
            w = watch.Watch()
            try:
                for ev in w.stream(
                    self.core.list_pod_for_all_namespaces, timeout_seconds=1, resource_version=version or None
                ):
                    pod = ev["object"]
                    version = pod.metadata.resource_version or version
                    self.events.append((ev["type"], pod.metadata.name, (pod.status.phase if pod.status else "") or ""))
                    if self._stop.is_set():
                        break
            except Exception:  # the member is gone (its cluster was deleted): nothing more to see
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def killed(self) -> list[str]:
        """Pods deleted while not finished."""
        return [pod for kind, pod, phase in self.events if kind == "DELETED" and phase not in ("Succeeded", "Failed")]
