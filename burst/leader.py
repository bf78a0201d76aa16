"""Who acts: one replica at a time, through a lease, and the fence that holds it to that.

Two electors grant the lease: a Kubernetes ``Lease`` (``leader_election.kubeconfig``) or, by
default, a row in the store, so two replicas sharing one PostgreSQL never both act even with no
Kubernetes around.  :func:`build_fence` wraps the one in force in a :class:`~burst.fence.LeaseFence`.
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import urllib3
from sqlalchemy.exc import SQLAlchemyError

from burst.clock import Clock
from burst.config import Config, LeaderElectionConfig, action_timeout, leader_election
from burst.errors import ConfigError
from burst.federation.kube import client_from_kubeconfig
from burst.fence import Elector, LeaseFence
from burst.store import Store

log = logging.getLogger("burst.leader")


def _local_prefix() -> str:
    """The host name and the PID namespace: two containers sharing a host name (host networking)
    but not their process ids must not judge each other's processes."""
    try:
        return f"{socket.gethostname()}-pidns{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return socket.gethostname()


def default_identity() -> str:
    return f"{_local_prefix()}-{os.getpid()}"


def _dead_local_process(identity: str | None) -> bool:
    """``identity`` is a default identity from this host and PID namespace whose process is gone:
    a replica killed without releasing its lease (``kill -9``, an OOM).  Its successor need not
    wait the lease out."""
    prefix = _local_prefix()
    if identity is None or not identity.startswith(prefix + "-"):
        return False
    pid = identity[len(prefix) + 1 :]
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, another user's
        return False
    return False


class LeaseElector:
    """Leader election with a ``coordination.k8s.io/v1`` Lease, as client-go's leaderelection does:
    the holder renews ``renewTime``; anyone may take a lease not renewed for ``leaseDurationSeconds``.
    Conflicting writes (two replicas at once) are resolved by the API server's resourceVersion check."""

    def __init__(self, cfg: LeaderElectionConfig, config_dir: str, clock: Clock, call_timeout: float = 10.0) -> None:
        from kubernetes import client

        assert cfg.kubeconfig is not None
        path = cfg.kubeconfig if os.path.isabs(cfg.kubeconfig) else os.path.join(config_dir, cfg.kubeconfig)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as err:
            raise ConfigError(f"leader_election.kubeconfig: cannot read {path}: {err.strerror}") from None
        api_client, _ = client_from_kubeconfig(text, cfg.context)
        self.api = client.CoordinationV1Api(api_client)
        self.cfg = cfg
        self.clock = clock
        self.identity = cfg.identity or default_identity()
        self.leading = False
        self.timeout = call_timeout  # every Lease call is bounded like a cloud call

    def _lease(self, resource_version: str | None, transitions: int, acquire: datetime) -> Any:
        from kubernetes import client

        return client.V1Lease(
            api_version="coordination.k8s.io/v1",
            kind="Lease",
            metadata=client.V1ObjectMeta(
                name=self.cfg.name, namespace=self.cfg.namespace, resource_version=resource_version
            ),
            spec=client.V1LeaseSpec(
                holder_identity=self.identity,
                lease_duration_seconds=int(self.cfg.lease_duration.total_seconds()),
                acquire_time=acquire,
                renew_time=self.clock.now(),
                lease_transitions=transitions,
            ),
        )

    def try_lead(self) -> bool:
        """Acquire or renew the lease; False when another live replica holds it or the API fails."""
        from kubernetes.client.exceptions import ApiException

        now = self.clock.now()
        self.others_lead = False
        try:
            try:
                lease = self.api.read_namespaced_lease(self.cfg.name, self.cfg.namespace, _request_timeout=self.timeout)
            except ApiException as err:
                if err.status != 404:
                    raise
                self.api.create_namespaced_lease(
                    self.cfg.namespace, self._lease(None, 0, now), _request_timeout=self.timeout
                )
                self.leading = True
                return True
            spec = lease.spec
            holder = spec.holder_identity if spec else None
            renew = spec.renew_time if spec else None
            duration = timedelta(seconds=(spec.lease_duration_seconds or 0) if spec else 0)
            expired = renew is None or renew.astimezone(UTC) + duration < now
            if holder != self.identity and not expired:
                self.leading = False
                self.others_lead = True
                return False
            transitions = (spec.lease_transitions or 0) if spec else 0
            acquire = spec.acquire_time if (spec and holder == self.identity and spec.acquire_time) else now
            if holder != self.identity:
                transitions += 1
            version = lease.metadata.resource_version if lease.metadata else None
            self.api.replace_namespaced_lease(
                self.cfg.name,
                self.cfg.namespace,
                self._lease(version, transitions, acquire.astimezone(UTC)),
                _request_timeout=self.timeout,
            )
            self.leading = True
            return True
        except ApiException as err:
            log.warning(
                "leader election: lease %s/%s: %s %s", self.cfg.namespace, self.cfg.name, err.status, err.reason
            )
            self.leading = False
            return False
        except (OSError, urllib3.exceptions.HTTPError) as err:  # unreachable or too slow: never act on a guess
            log.warning("leader election: cannot reach the API server: %s", err)
            self.leading = False
            return False

    def release(self) -> None:
        """Hand the lease over at shutdown, so a standby takes over at once."""
        if not self.leading:
            return
        from kubernetes.client.exceptions import ApiException

        try:
            lease = self.api.read_namespaced_lease(self.cfg.name, self.cfg.namespace, _request_timeout=self.timeout)
            if lease.spec and lease.spec.holder_identity == self.identity:
                lease.spec.renew_time = datetime(1970, 1, 1, tzinfo=UTC)
                lease.spec.holder_identity = None
                self.api.replace_namespaced_lease(
                    self.cfg.name, self.cfg.namespace, lease, _request_timeout=self.timeout
                )
        except (ApiException, OSError, urllib3.exceptions.HTTPError) as err:
            log.warning("leader election: could not release the lease: %s", err)
        self.leading = False


class StoreElector:
    """The lease as a row in the store (:meth:`Store.try_lease`): the default when no Kubernetes
    Lease is configured.  Its expiry is written in the acquirer's wall time, so replicas' clocks
    must agree within the safety margin, as with a Kubernetes Lease."""

    def __init__(self, store: Store, cfg: LeaderElectionConfig, clock: Clock, identity: str | None = None) -> None:
        self.store = store
        self.cfg = cfg
        self.clock = clock
        self.identity = identity or cfg.identity or default_identity()
        self.leading = False
        self.token: int | None = None
        #: at the last try_lead: another replica held a live lease (False: none, or unknown)
        self.others_lead = False

    def try_lead(self) -> bool:
        self.others_lead = False
        try:
            token = self.store.try_lease(self.cfg.name, self.identity, self.clock.now(), self.cfg.lease_duration)
            if token is None:
                holder, _ = self.store.lease(self.cfg.name)
                if _dead_local_process(holder):
                    log.info("leader election: lease holder %s is no longer running: taking over", holder)
                    token = self.store.try_lease(
                        self.cfg.name, self.identity, self.clock.now(), self.cfg.lease_duration, take_from=holder
                    )
                self.others_lead = token is None and holder is not None
        except SQLAlchemyError as err:
            log.warning("leader election: cannot reach the store: %s", err.__class__.__name__)
            token = None
        if token is not None and token != self.token:
            log.info("leader election: leading (lease %s, token %d)", self.cfg.name, token, extra={"leader": True})
        self.token = token
        self.leading = token is not None
        return self.leading

    def release(self) -> None:
        if not self.leading:
            return
        try:
            self.store.release_lease(self.cfg.name, self.identity)
        except SQLAlchemyError as err:
            log.warning("leader election: could not release the lease: %s", err.__class__.__name__)
        self.leading = False


def build_fence(cfg: Config, store: Store, clock: Clock, identity: str | None = None) -> LeaseFence:
    """The fence of this process: over the Kubernetes Lease if configured, else the store's lease.
    An action needs as much lease left as its call may take (see :func:`burst.config.action_timeout`)."""
    le = leader_election(cfg.file)
    elector: Elector
    duration = le.lease_duration.total_seconds()
    if le.kubeconfig is not None:
        elector = LeaseElector(le, cfg.config_dir, clock, cfg.file.reconciler.call_timeout.total_seconds())
        duration = float(int(duration))  # the Lease holds whole seconds: what the others go by
    else:
        elector = StoreElector(store, le, clock, identity)
    return LeaseFence(
        elector,
        clock,
        duration,
        le.safety_margin.total_seconds(),
        action_timeout(cfg.file, cfg.federation).total_seconds(),
    )
