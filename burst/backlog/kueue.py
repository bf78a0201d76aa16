"""The ``kueue`` backlog source: Workloads waiting in Kueue ClusterQueues (MultiKueue included).

Jobs queued in a MultiKueue ClusterQueue never become pending pods on the manager — they wait as
Workload objects — so no node autoscaler sees them.  This source reads those Workloads
(``kueue.x-k8s.io/v1beta1``, Kueue v0.9 – v0.14) from the manager's API:

* **pending**: a Workload that is not Finished, not deactivated (``spec.active: false``) and not
  Admitted — no quota reserved yet, or quota reserved on the manager but an admission check (the
  MultiKueue dispatch to a worker) still pending.  Each pod set counts ``count`` pods of the shape
  its pod template requests (the scheduler's rules, see :func:`burst.backlog.kubernetes.pod_request`);
  the wait is the Workload's age (``creationTimestamp``).
* **running**: the cpu of the pods of Admitted, unfinished Workloads (``podSetAssignments``
  counts when Kueue admitted fewer pods than asked).
* **on-prem capacity**: the nominal cpu quota of the in-scope ClusterQueues that run work locally
  (no MultiKueue admission check), and the part not reserved (``status.flavorsReservation``).  A
  MultiKueue ClusterQueue's quota is a dispatch limit, not machines: it counts as no capacity.

Which ClusterQueues count is configured (``cluster_queues``; empty means all).  A Workload is in
a ClusterQueue through its admission, or, before that, through its LocalQueue.  The kubeconfig is
read at every poll; an API that cannot be read raises :class:`~burst.api.BacklogUnavailable` —
the caller keeps the last demand marked stale, never a zero demand.

Do not combine with the ``kubernetes`` source's ``jobs`` on the same cluster: a suspended Job
that Kueue holds is both a Job and a Workload.
"""

from __future__ import annotations

import logging
import math
import os
from datetime import timedelta
from decimal import Decimal
from typing import Any, Literal

from pydantic import Field

from burst.api import BacklogConfig, BacklogContext, Clock, Demand, Duration
from burst.backlog.kubernetes import Request, _Buckets, _created, _quantity, pod_request, poll_host
from burst.federation import kueue_api as kq
from burst.federation.kube import Kube

log = logging.getLogger(__name__)

JSON = dict[str, Any]


class KueueBacklogConfig(BacklogConfig):
    """``backlog: {kind: kueue, kubeconfig: manager.kubeconfig, cluster_queues: [cms-batch]}``."""

    kind: Literal["kueue"] = "kueue"
    kubeconfig: str = Field(description="path of the Kueue (MultiKueue manager) cluster's kubeconfig")
    context: str | None = Field(default=None, description="kubeconfig context (default: its current context)")
    cluster_queues: list[str] = Field(
        default_factory=list, description="ClusterQueues whose Workloads count; empty: all"
    )
    gpu_resource: str = Field(default="nvidia.com/gpu", description="extended resource name of a GPU")
    timeout: Duration = Field(default=timedelta(seconds=15), description="per request timeout")

    def build(self, ctx: BacklogContext) -> KueueBacklog:
        path = self.kubeconfig if os.path.isabs(self.kubeconfig) else os.path.join(ctx.config_dir, self.kubeconfig)
        return KueueBacklog(self, path, ctx.clock)


class KueueBacklog:
    """A :class:`~burst.api.BacklogSource` over one Kueue installation."""

    name = "kueue"

    def __init__(self, config: KueueBacklogConfig, kubeconfig_path: str, clock: Clock) -> None:
        self.config = config
        self.kubeconfig_path = kubeconfig_path
        self.clock = clock

    def poll(self) -> Demand:
        return poll_host(
            "kueue backlog",
            "reading Workloads and queues",
            self.kubeconfig_path,
            self.config.context,
            self.config.timeout,
            self._read,
        )

    def _in_scope(self, cq: str) -> bool:
        return bool(cq) and (not self.config.cluster_queues or cq in self.config.cluster_queues)

    def _read(self, kube: Kube) -> Demand:
        now = self.clock.now()
        queues = kq.local_queue_map(kube.list(kq.LOCAL_QUEUE))
        buckets = _Buckets(now)
        running_cpu = Decimal(0)
        waiting = running = 0
        for wl in kube.list(kq.WORKLOAD):
            if kq.finished(wl) or not self._in_scope(kq.cluster_queue_of(wl, queues)):
                continue
            if kq.admitted(wl):
                running += 1
                for count, spec in kq.pod_sets(wl):
                    req = self._request(wl, spec)
                    running_cpu += count * req.cpu if req else Decimal(0)
            elif kq.active(wl):
                waiting += 1
                for count, spec in kq.pod_sets(wl):
                    req = self._request(wl, spec)
                    if req is not None:
                        buckets.add(req.shape(), count, _created(wl))
        onprem, free = self._capacity(kube)
        scope = ",".join(self.config.cluster_queues) or "all ClusterQueues"
        return Demand(
            at=now,
            pending=buckets.buckets(),
            running_cores=math.ceil(running_cpu),
            onprem_cores=onprem,
            onprem_free_cores=free,
            note=f"{waiting} pending and {running} admitted Workloads in {scope} at {kube.endpoint}",
        )

    def _request(self, wl: JSON, spec: JSON) -> Request | None:
        try:
            return pod_request(spec, self.config.gpu_resource)
        except (ValueError, ArithmeticError, TypeError) as err:
            meta = wl.get("metadata") or {}
            log.warning(
                "kueue backlog: skipping a pod set of %s/%s: unreadable resource request (%s)",
                meta.get("namespace"),
                meta.get("name"),
                err,
            )
            return None

    def _capacity(self, kube: Kube) -> tuple[int, int]:
        multikueue = {
            str(ac["metadata"]["name"])
            for ac in kube.list(kq.ADMISSION_CHECK)
            if (ac.get("spec") or {}).get("controllerName") == kq.MULTIKUEUE_CONTROLLER
        }
        total = used = Decimal(0)
        for cq in kube.list(kq.CLUSTER_QUEUE):
            if not self._in_scope(str(cq["metadata"]["name"])) or kq.admission_check_names(cq) & multikueue:
                continue
            try:
                total += _cpu(
                    r.get("nominalQuota")
                    for group in (cq.get("spec") or {}).get("resourceGroups") or []
                    for flavor in group.get("flavors") or []
                    for r in flavor.get("resources") or []
                    if r.get("name") == "cpu"
                )
                used += _cpu(
                    r.get("total")
                    for flavor in (cq.get("status") or {}).get("flavorsReservation") or []
                    for r in flavor.get("resources") or []
                    if r.get("name") == "cpu"
                )
            except (ValueError, ArithmeticError) as err:
                log.warning(
                    "kueue backlog: ClusterQueue %s has an unreadable cpu quota (%s)", cq["metadata"]["name"], err
                )
        return math.floor(total), max(0, math.floor(total - used))


def _cpu(values: Any) -> Decimal:
    return sum((_quantity(v) for v in values), Decimal(0))
