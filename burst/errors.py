"""One error family for burst.

Every failure burst reports derives from :class:`BurstError`, so the CLI can turn any of them into
one clear line and a non-zero exit.  Provider errors are typed by *what the caller should do*
(fall back, retry later, treat as done, stop), not by which SDK raised them: each provider converts
its SDK's exceptions into these at one boundary (``raise … from err``).
"""

from __future__ import annotations


class BurstError(Exception):
    """Base of every error burst raises on purpose."""


class ConfigError(BurstError):
    """The configuration file is wrong; ``where`` names the file, line and field."""

    def __init__(self, what: str, where: str = "") -> None:
        self.what = what
        self.where = where
        super().__init__(f"{where}: {what}" if where else what)


class TraceError(BurstError):
    """A job trace cannot be read; the message names the file and line."""


class IllegalTransition(BurstError):
    """A cluster was asked to move between lifecycle states that are not connected."""


class ProviderError(BurstError):
    """A cloud operation failed.  Subclasses say what the caller should do about it."""

    retryable: bool = True


class QuotaExceeded(ProviderError):
    """The account's quota does not allow this: placement falls back to the next provider."""


class CapacityUnavailable(ProviderError):
    """The cloud has no capacity for this flavor/zone now: fall back, retry later."""


class Throttled(ProviderError):
    """The API rate-limited us; retry after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float = 30.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NotFound(ProviderError):
    """The resource does not exist.  For deletes this means *done*."""

    retryable = False


class AuthFailed(ProviderError):
    """Credentials are missing, expired or lack a permission: an operator must act."""

    retryable = False


class ProvisioningFailed(ProviderError):
    """The cloud gave up creating the cluster (its status says so); clean up and maybe retry."""


class FederationError(BurstError):
    """Joining, draining or unjoining a member cluster failed."""


class BacklogUnavailable(BurstError):
    """A backlog source could not be read: the demand is stale, never zero."""


def is_fallback(err: BaseException) -> bool:
    """True when placement should try the next provider instead of failing the tick."""
    return isinstance(err, QuotaExceeded | CapacityUnavailable)


class InstallationConflict(BurstError):
    """Another store creates clusters under our installation name in the same cloud account: two
    installations (or a wrong ``state:`` URL) would delete each other's work, so burst refuses to act."""
