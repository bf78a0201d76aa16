"""The Kubernetes backlog source: pending pods and not-yet-admitted Jobs of the on-prem cluster.

What counts as pending work:

* **pods** that are ``Pending``, not bound to a node, whose ``PodScheduled`` condition is False
  with reason ``Unschedulable`` (the scheduler found no node) or ``SchedulingGated`` (held back
  by a queue such as Kueue);
* **Jobs** whose pods do not exist yet (REANA/yadage workflow steps are Jobs): a suspended Job
  (``spec.suspend``, how Kueue holds a Job it has not admitted) counts all the pods it would
  start; an unfinished Job counts the pods it wants but has not got (``min(parallelism,
  completions − succeeded) − active``, e.g. when a ResourceQuota forbids creating them).  Pods a
  Job already has are counted as pods, so nothing is counted twice.

A pod's request is what the scheduler uses: per resource, the larger of the sum over containers
and the largest init container, plus ``spec.overhead``; a container without a request but with a
limit requests its limit.  Cores are rounded up (``250m`` → 1), a pod without a cpu request counts
as 1 core (HTCondor's default), memory is in MiB rounded up (``1.5Gi`` → 1536; burst's "MB", as
HTCondor's ``RequestMemory``), GPUs are the ``gpu_resource`` extended resource.  Equal shapes make
one :class:`~burst.model.Bucket` with a count and the oldest wait (from ``creationTimestamp``
and the injected clock), so 10 000 pods are a handful of buckets.

Running cores are the cpu requests of the Running pods in scope.  On-prem capacity is the
allocatable cpu of the Ready, schedulable nodes (``node_selector`` picks them), and the free part
is allocatable minus the requests of the non-terminated pods bound to each node.

The kubeconfig file is read at every poll (a rotated token is picked up).  An unreachable API
server, a rejected (expired) token or an unreadable kubeconfig raise
:class:`~burst.api.BacklogUnavailable`: the caller keeps the last demand, marked stale.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from kubernetes.utils.quantity import parse_quantity
from pydantic import Field

from burst.api import (
    MAX_CORES,
    BacklogConfig,
    BacklogContext,
    BacklogUnavailable,
    Bucket,
    Clock,
    Demand,
    PositiveDuration,
    Shape,
)
from burst.federation.kube import (
    FEDERATED_JOB,
    JOB,
    NODE,
    POD,
    Kube,
    KubeconfigError,
    client_from_kubeconfig,
    condition,
    kube_errors,
)

log = logging.getLogger(__name__)

JSON = dict[str, Any]
MIB = Decimal(1024 * 1024)
WAITING_REASONS = frozenset({"Unschedulable", "SchedulingGated"})
NON_TERMINAL = "status.phase!=Succeeded,status.phase!=Failed"


class KubernetesBacklogConfig(BacklogConfig):
    """``backlog: {kind: kubernetes, kubeconfig: host.kubeconfig, namespaces: [reana], ...}``."""

    kind: Literal["kubernetes"] = "kubernetes"
    kubeconfig: str = Field(description="path of the host cluster's kubeconfig (relative to the config file)")
    context: str | None = Field(default=None, description="kubeconfig context (default: its current context)")
    namespaces: list[str] = Field(default_factory=list, description="namespaces to watch; empty means all")
    label_selector: str = Field(default="", description="only pods and Jobs with these labels, e.g. 'app=reana'")
    jobs: bool = Field(default=True, description="count the pods of Jobs not admitted or not started yet")
    federated: bool = Field(
        default=False,
        description="also count KubeFed FederatedJobs not yet propagated to any member (needs the kubefed CRDs)",
    )
    node_selector: str = Field(default="", description="label selector of the on-prem nodes that give capacity")
    gpu_resource: str = Field(default="nvidia.com/gpu", description="extended resource name of a GPU")
    timeout: PositiveDuration = Field(default=timedelta(seconds=15), description="per request timeout")

    def build(self, ctx: BacklogContext) -> KubernetesBacklog:
        path = self.kubeconfig if os.path.isabs(self.kubeconfig) else os.path.join(ctx.config_dir, self.kubeconfig)
        return KubernetesBacklog(self, path, ctx.clock)


@dataclass(frozen=True, slots=True)
class Request:
    """What one pod asks of a node, exactly (millicores, bytes, GPUs)."""

    cpu: Decimal = Decimal(0)
    memory: Decimal = Decimal(0)
    gpus: Decimal = Decimal(0)

    def shape(self) -> Shape:
        cpus = max(1, math.ceil(self.cpu))
        return Shape(cpus=cpus, memory_mb=math.ceil(self.memory / MIB), gpus=math.ceil(self.gpus))


#: Past these a pod's request is not a pod's (and would overflow sums stored as 64-bit integers).
_MOST = {"cpu": Decimal(MAX_CORES), "memory": Decimal(2**50), "gpus": Decimal(100_000)}


def _quantity(value: object) -> Decimal:
    return Decimal(parse_quantity(value)) if value not in (None, "") else Decimal(0)  # type: ignore[no-untyped-call]


def pod_request(spec: JSON, gpu_resource: str = "nvidia.com/gpu") -> Request:
    """The scheduler's view of a pod spec's request (see the module docstring)."""
    names = {"cpu": "cpu", "memory": "memory", "gpus": gpu_resource}

    def container(c: JSON) -> dict[str, Decimal]:
        res = c.get("resources") or {}
        requests, limits = res.get("requests") or {}, res.get("limits") or {}
        return {k: _quantity(requests.get(r, limits.get(r))) for k, r in names.items()}

    total = dict.fromkeys(names, Decimal(0))
    for c in spec.get("containers") or []:
        for k, v in container(c).items():
            total[k] += v
    for c in spec.get("initContainers") or []:
        for k, v in container(c).items():
            total[k] = max(total[k], v)
    overhead = spec.get("overhead") or {}
    for k, r in names.items():
        total[k] += _quantity(overhead.get(r))
    for k, most in _MOST.items():
        if not total[k].is_finite() or total[k] > most:  # a typo or garbage, not a pod: no node has this
            raise ValueError(f"{k} request {total[k]} is more than any node has")
    return Request(cpu=total["cpu"], memory=total["memory"], gpus=total["gpus"])


def _created(obj: JSON) -> datetime | None:
    stamp = (obj.get("metadata") or {}).get("creationTimestamp")
    if not stamp:
        return None
    return datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))


def is_waiting(pod: JSON) -> bool:
    """Pending, unbound, and the scheduler said it cannot place it (or a gate holds it)."""
    if (pod.get("status") or {}).get("phase") != "Pending" or (pod.get("spec") or {}).get("nodeName"):
        return False
    cond = condition(pod, "PodScheduled") or {}
    return cond.get("status") == "False" and cond.get("reason") in WAITING_REASONS


def job_missing_pods(job: JSON) -> int:
    """How many pods a Job wants to run now but has not got (all of them while suspended)."""
    spec, status = job.get("spec") or {}, job.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            return 0
    parallelism = spec.get("parallelism")
    parallelism = 1 if parallelism is None else int(parallelism)
    completions = spec.get("completions")
    remaining = parallelism if completions is None else int(completions) - int(status.get("succeeded") or 0)
    wanted = max(0, min(parallelism, remaining))
    if spec.get("suspend"):
        return wanted
    return max(0, wanted - int(status.get("active") or 0))


class _Buckets:
    def __init__(self, now: datetime) -> None:
        self.now = now
        self.counts: dict[Shape, int] = {}
        self.oldest: dict[Shape, float] = {}

    def add(self, shape: Shape, count: int, created: datetime | None) -> None:
        if count <= 0:
            return
        self.counts[shape] = self.counts.get(shape, 0) + count
        wait = max(0.0, (self.now - created).total_seconds()) if created else 0.0
        self.oldest[shape] = max(self.oldest.get(shape, 0.0), wait)

    def buckets(self) -> tuple[Bucket, ...]:
        return tuple(Bucket(s, self.counts[s], self.oldest[s]) for s in sorted(self.counts))


def poll_host(
    source: str,
    what: str,
    kubeconfig_path: str,
    context: str | None,
    timeout: timedelta,
    read: Callable[[Kube], Demand],
) -> Demand:
    """One poll of a backlog read from a Kubernetes API (pods and Jobs, Kueue Workloads): the
    kubeconfig read afresh (credentials rotate), one client for the poll, every failure
    ``BacklogUnavailable`` so the engine holds the last demand as stale, never zero."""
    try:
        with open(kubeconfig_path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as err:
        raise BacklogUnavailable(f"{source}: cannot read the kubeconfig {kubeconfig_path}: {err.strerror}") from err
    try:
        api, endpoint = client_from_kubeconfig(text, context)
    except KubeconfigError as err:
        raise BacklogUnavailable(f"{source}: {kubeconfig_path}: {err}") from err
    kube = Kube(api, endpoint, timeout_s=timeout.total_seconds())
    try:
        with kube_errors(f"{source}: {what}", BacklogUnavailable, kube.endpoint):
            return read(kube)
    finally:
        kube.close()


class KubernetesBacklog:
    """A :class:`~burst.api.BacklogSource` over one Kubernetes API server."""

    name = "kubernetes"

    def __init__(self, config: KubernetesBacklogConfig, kubeconfig_path: str, clock: Clock) -> None:
        self.config = config
        self.kubeconfig_path = kubeconfig_path
        self.clock = clock

    def poll(self) -> Demand:
        return poll_host(
            "kubernetes backlog",
            "reading pods, jobs and nodes",
            self.kubeconfig_path,
            self.config.context,
            self.config.timeout,
            self._read,
        )

    def _scoped(self, kube: Kube, kind: Any, fields: str = "") -> list[JSON]:
        namespaces: Iterable[str] = self.config.namespaces or [""]
        out: list[JSON] = []
        for ns in namespaces:
            out.extend(kube.list(kind, ns, labels=self.config.label_selector, fields=fields))
        return out

    def _read(self, kube: Kube) -> Demand:
        cfg = self.config
        now = self.clock.now()
        buckets = _Buckets(now)
        pods = self._scoped(kube, POD, NON_TERMINAL)
        running_cpu = Decimal(0)
        waiting_pods = 0
        for pod in pods:
            req = self._request(pod)
            if req is None:
                continue
            if (pod.get("status") or {}).get("phase") == "Running":
                running_cpu += req.cpu
            elif is_waiting(pod):
                waiting_pods += 1
                buckets.add(req.shape(), 1, _created(pod))
        waiting_jobs = 0
        if cfg.jobs:
            for job in self._scoped(kube, JOB):
                missing = job_missing_pods(job)
                req = self._request({"metadata": job.get("metadata"), "spec": _template_spec(job)})
                if missing and req is not None:
                    waiting_jobs += 1
                    buckets.add(req.shape(), missing, _created(job))
        if cfg.federated:
            for fjob in self._scoped(kube, FEDERATED_JOB):
                job = federated_job_template(fjob)
                missing = job_missing_pods(job) if not propagated(fjob) else 0
                req = self._request({"metadata": fjob.get("metadata"), "spec": _template_spec(job)})
                if missing and req is not None:
                    waiting_jobs += 1
                    buckets.add(req.shape(), missing, _created(fjob))
        # Capacity looks at every pod bound to a node, whatever namespace or label it has.
        if cfg.namespaces or cfg.label_selector:
            bound = kube.list(POD, fields=f"spec.nodeName!=,{NON_TERMINAL}")
        else:
            bound = [p for p in pods if (p.get("spec") or {}).get("nodeName")]
        onprem, free = self._capacity(kube, bound)
        pending = buckets.buckets()
        scope = ",".join(cfg.namespaces) or "all namespaces"
        note = f"{waiting_pods} unschedulable pods and {waiting_jobs} waiting jobs in {scope} at {kube.endpoint}"
        return Demand(
            at=now,
            pending=pending,
            running_cores=math.ceil(running_cpu),
            onprem_cores=onprem,
            onprem_free_cores=free,
            note=note,
        )

    def _request(self, obj: JSON) -> Request | None:
        try:
            return pod_request(obj.get("spec") or {}, self.config.gpu_resource)
        except (ValueError, ArithmeticError, TypeError) as err:
            meta = obj.get("metadata") or {}
            log.warning(
                "kubernetes backlog: skipping %s/%s: unreadable resource request (%s)",
                meta.get("namespace"),
                meta.get("name"),
                err,
            )
            return None

    def _capacity(self, kube: Kube, bound: list[JSON]) -> tuple[int, int]:
        used: dict[str, Decimal] = {}
        for pod in bound:
            req = self._request(pod)
            if req is not None:
                node = pod["spec"]["nodeName"]
                used[node] = used.get(node, Decimal(0)) + req.cpu
        total = free = 0
        for node in kube.list(NODE, labels=self.config.node_selector):
            if (node.get("spec") or {}).get("unschedulable"):
                continue
            ready = condition(node, "Ready")
            if ready is not None and ready.get("status") != "True":
                continue
            try:
                alloc = _quantity(((node.get("status") or {}).get("allocatable") or {}).get("cpu"))
            except (ValueError, ArithmeticError) as err:
                log.warning(
                    "kubernetes backlog: node %s has unreadable allocatable cpu (%s)", node["metadata"]["name"], err
                )
                continue
            total += math.floor(alloc)
            free += max(0, math.floor(alloc - used.get(node["metadata"]["name"], Decimal(0))))
        return total, free


def federated_job_template(fjob: JSON) -> JSON:
    """The Job a FederatedJob stands for: its ``spec.template`` (a Job's metadata and spec), with
    no status — nothing of it runs until KubeFed propagates it to a member."""
    template = (fjob.get("spec") or {}).get("template") or {}
    return {"metadata": fjob.get("metadata"), "spec": template.get("spec") or {}, "status": {}}


def propagated(fjob: JSON) -> bool:
    """KubeFed lists in ``status.clusters`` the members it placed the object on."""
    return bool(((fjob.get("status") or {}).get("clusters")) or [])


def _template_spec(job: JSON) -> JSON:
    return (((job.get("spec") or {}).get("template") or {}).get("spec")) or {}
