"""The fence: only the replica that holds the lease acts on a cloud or a federation.

A lease checked once per tick is not enough: one slow cloud call, or a process paused (SIGSTOP, a
VM migration, a long GC), outlives it, and another replica takes over while the old one still
thinks it leads.  So the reconciler asks the fence before *every* provider or federation side
effect.  The fence says yes only while the lease is valid for longer than one bounded call
(``call_timeout``) plus a safety margin against clock skew between replicas, renewing it when that
is no longer so; validity is measured on the local monotonic clock from the moment the renewal
request was *sent* (its answer may come late; the lease started no later than the request).

What this cannot cover: a pause between the check and the request leaving the process (a window of
microseconds), or a cloud that applies a request after the client gave up on it.  Closing those
needs a fencing token checked by the cloud itself, which no cloud API offers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from burst.clock import Clock
from burst.errors import BurstError

log = logging.getLogger("burst.fence")


class LeaseLost(BurstError):
    """This replica no longer holds the lease (or cannot prove it does): it must not act."""


class Fence(Protocol):
    def check(self, action: str) -> None:
        """Return only if this replica may perform ``action`` now; raise :class:`LeaseLost` otherwise."""
        ...


class AlwaysHeld:
    """A single process with nothing to share the store with (``burst apply``, tests, the simulator)."""

    def check(self, action: str) -> None:
        return None


class Elector(Protocol):
    """Something that grants a time-bounded lease: a Kubernetes Lease or a row in the store."""

    identity: str
    #: at the last try_lead: another replica held a live lease (the "no leader" alarm reads it)
    others_lead: bool

    def try_lead(self) -> bool:
        """Acquire or renew the lease; False when another live replica holds it or the call fails."""
        ...

    def release(self) -> None: ...


@dataclass
class LeaseFence:
    """The fence of one replica over an :class:`Elector`.

    ``renew()`` is what the daemon calls at the start of a tick; ``check()`` what the reconciler
    calls before each side effect.  The lease counts as held until
    ``sent + duration - margin`` (monotonic), ``sent`` being when the renewal request left.
    """

    elector: Elector
    clock: Clock
    duration: float
    margin: float
    call_timeout: float
    _valid_until: float = float("-inf")
    checks: int = 0
    renewals: int = 0

    def remaining(self) -> float:
        return self._valid_until - self.clock.monotonic()

    def renew(self) -> bool:
        sent = self.clock.monotonic()
        if self.elector.try_lead():
            self._valid_until = sent + self.duration - self.margin
            self.renewals += 1
            return True
        self._valid_until = float("-inf")
        return False

    def check(self, action: str) -> None:
        self.checks += 1
        if self.remaining() >= self.call_timeout:
            return
        # Not enough lease left for one bounded call: renew (itself a bounded call) or stop.
        if self.remaining() <= 0 and self._valid_until != float("-inf"):
            log.warning("lease expired before %s (paused or slow past it): renewing before acting", action)
        if not self.renew() or self.remaining() < self.call_timeout:
            raise LeaseLost(f"not acting ({action}): this replica ({self.elector.identity}) does not hold the lease")

    def drop(self) -> None:
        """Forget the lease (after a failed tick or at shutdown): the next action renews first."""
        self._valid_until = float("-inf")
