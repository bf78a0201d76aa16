"""Plugin discovery through entry points.

Every plugin family is an entry-point group whose entries are pydantic config classes; the entry's
name is the ``kind`` an operator writes in YAML.  Built-in plugins register exactly like
third-party ones, so there is no central list to edit.  Only the kinds a config names are
imported, so one broken plugin does not break the others.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points

from pydantic import BaseModel

from burst.backlog.api import BacklogConfig
from burst.errors import ConfigError
from burst.federation.api import FederationConfig
from burst.policy import PolicyConfig
from burst.provider import ProviderConfig

GROUPS: dict[str, type[BaseModel]] = {
    "burst.providers": ProviderConfig,
    "burst.federations": FederationConfig,
    "burst.backlogs": BacklogConfig,
    "burst.policies": PolicyConfig,
}


FAMILY = {
    "burst.providers": "provider",
    "burst.federations": "federation",
    "burst.backlogs": "backlog",
    "burst.policies": "policy",
}


def names(group: str) -> list[str]:
    return sorted({ep.name for ep in entry_points(group=group)})


@cache
def config_class(group: str, kind: str) -> type[BaseModel]:
    """The config class registered as ``kind`` in ``group``, checked against the group's base."""
    base = GROUPS[group]
    found = [ep for ep in entry_points(group=group) if ep.name == kind]
    if not found:
        family = FAMILY[group]
        known = ", ".join(names(group)) or "none installed"
        raise ConfigError(f"unknown {family} kind {kind!r} (known: {known})")
    ep = found[0]
    try:
        cls = ep.load()
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"plugin {ep.value!r} for {group}:{kind} cannot be loaded: {err}") from err
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ConfigError(f"plugin {ep.value!r} registered as {group}:{kind} is not a {base.__name__}")
    return cls


def kinds(group: str) -> dict[str, type[BaseModel]]:
    """Every loadable kind of one group (for `burst config schema`)."""
    out: dict[str, type[BaseModel]] = {}
    for name in names(group):
        try:
            out[name] = config_class(group, name)
        except ConfigError:
            continue
    return out
