"""The one YAML configuration file, validated by pydantic models.

Errors name the file, the line and the field (``burst.yaml:12: providers.aws.region: …``).
Plugin sections (providers, backlog, federation, policies) are validated by the plugin's own
model, found through the entry point named by the section's ``kind``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from burst.backlog.api import BacklogConfig
from burst.errors import ConfigError
from burst.federation.api import FederationConfig
from burst.policy import PolicyConfig
from burst.provider import ProviderConfig
from burst.registry import config_class
from burst.units import Duration


class OnPremConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cores: int = Field(ge=0, description="cores of the on-prem batch system")
    memory_gb: float | None = Field(
        default=None, ge=0, description="memory of the on-prem system; unset = not limiting"
    )


class ReconcilerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tick: Duration = Field(default=timedelta(minutes=1), description="how often the reconcile tick runs")
    provisioning_timeout: Duration = Field(
        default=timedelta(minutes=45), description="a cluster still provisioning after this is deleted"
    )
    joining_timeout: Duration = Field(
        default=timedelta(minutes=20), description="a member not taking work after this is rolled back"
    )
    max_attempts: int = Field(
        default=3, ge=1, description="cloud attempts per cluster before it is given up and cleaned"
    )
    retry_backoff: Duration = Field(default=timedelta(minutes=2), description="first retry delay; doubles per attempt")
    provider_backoff_first: Duration = Field(
        default=timedelta(minutes=1),
        description="how long placement first avoids a provider after a failed create (quota, capacity, "
        "throttling, auth, failed or stuck provisioning); doubles per failure in a row",
    )
    provider_backoff: Duration = Field(
        default=timedelta(minutes=30),
        description="the longest a provider is avoided at once: a persistent fault costs one probe per this",
    )
    orphan_grace: Duration = Field(
        default=timedelta(minutes=10),
        description="a cluster with our owner tag that the store does not know is left alone this long "
        "before it is adopted, drained through the federation and removed",
    )
    sample_every: Duration = Field(
        default=timedelta(hours=1), description="how often demand/capacity/spend is sampled for reports"
    )
    call_timeout: Duration = Field(
        default=timedelta(seconds=10),
        description="longest one cloud, federation or lease call may take (SDK connect/read timeouts); "
        "a leader acts only with at least this much lease left",
    )
    release_idle_nodes: bool = Field(
        default=True,
        description="give back idle nodes of draining and shrinking clusters where the provider and the "
        "federation can (off: capacity only leaves with whole drained clusters)",
    )


class SimulationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seed: int = 0
    tick: Duration = Field(default=timedelta(minutes=5), description="reconcile tick in simulated time")
    spike_factor: float = Field(
        default=1.0,
        gt=0,
        description="a job is 'spike-time' when pending cores exceed this × on-prem cores at its submit",
    )
    drain_horizon: Duration = Field(
        default=timedelta(days=30),
        description="after the last job, how long the simulation waits for clusters to be removed",
    )


class LeaderElectionConfig(BaseModel):
    """One leader among several daemon replicas: a Kubernetes ``Lease`` when ``kubeconfig`` is
    set, else a lease row in the store (what two replicas on one PostgreSQL get by default)."""

    model_config = ConfigDict(extra="forbid")
    kubeconfig: str | None = Field(
        default=None,
        description="kubeconfig of the cluster holding the Lease (relative to this file); unset = a lease in the store",
    )
    context: str | None = None
    namespace: str = "default"
    name: str = Field(default="burst-leader", description="the Lease object's name")
    lease_duration: Duration = Field(default=timedelta(seconds=30), description="a leader silent this long is replaced")
    safety_margin: Duration = Field(
        default=timedelta(seconds=2),
        description="the leader stops this long before its lease ends (clock skew between replicas)",
    )
    identity: str | None = Field(default=None, description="this replica's name (default: host name and process id)")


class BurstFile(BaseModel):
    """The file as written; plugin sections stay dicts until their plugin validates them."""

    model_config = ConfigDict(extra="forbid")
    installation: str = Field(
        default="burst", pattern=r"^[a-z][a-z0-9-]{0,19}$", description="owner tag on every cloud resource"
    )
    state: str = Field(default="sqlite:///burst.db", description="SQLAlchemy URL of the store")
    currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")
    onprem: OnPremConfig
    backlog: dict[str, Any] = Field(default_factory=lambda: {"kind": "trace"})
    federation: dict[str, Any] = Field(default_factory=lambda: {"kind": "local"})
    providers: dict[str, dict[str, Any]] = Field(min_length=1)
    policies: list[dict[str, Any]] = Field(default_factory=list)
    reconciler: ReconcilerConfig = Field(default_factory=ReconcilerConfig)
    simulation: SimulationConfig = Field(default_factory=SimulationConfig)
    leader_election: LeaderElectionConfig | None = None


@dataclass(frozen=True)
class Config:
    """A validated configuration: the core sections plus each plugin's typed section."""

    path: str
    file: BurstFile
    providers: dict[str, ProviderConfig]
    backlog: BacklogConfig
    federation: FederationConfig
    policies: Sequence[PolicyConfig]

    @property
    def config_dir(self) -> str:
        return str(Path(self.path).resolve().parent)

    def state_url(self) -> str:
        """The store URL; a relative sqlite path is taken relative to the config file."""
        url = self.file.state
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and url != "sqlite:///:memory:":
            return prefix + os.path.join(self.config_dir, url[len(prefix) :])
        return url


# --- locating errors in the YAML -------------------------------------------------------------


def _node_line(root: yaml.Node | None, loc: Sequence[str | int]) -> int | None:
    """1-based line of the deepest node of ``loc`` that exists in the composed YAML tree."""
    node = root
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == str(key)), None)
            if nxt is None:
                break
            key_node = next(k for k, v in node.value if v is nxt)
            node, line = nxt, (key_node.start_mark.line + 1)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and 0 <= key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _first_error(path: str, root: yaml.Node | None, err: ValidationError, prefix: Sequence[str | int]) -> ConfigError:
    e = err.errors()[0]
    loc = [*prefix, *[p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-"))]]
    field = ".".join(str(p) for p in loc) or "(top level)"
    line = _node_line(root, loc)
    msg = e["msg"]
    if e["type"] == "extra_forbidden":
        msg = "unknown key"
    elif e["type"] == "missing":
        msg = "required field is missing"
    more = len(err.errors()) - 1
    suffix = f" (and {more} more)" if more else ""
    return ConfigError(f"{field}: {msg}{suffix}", f"{path}:{line}" if line else path)


def _plugin(path: str, root: yaml.Node | None, group: str, raw: dict[str, Any], loc: list[str | int]) -> BaseModel:
    kind = raw.get("kind")
    where = f"{path}:{_node_line(root, loc)}"
    if not isinstance(kind, str):
        raise ConfigError(f"{'.'.join(map(str, loc))}.kind: required field is missing", where)
    try:
        cls = config_class(group, kind)
    except ConfigError as err:
        raise ConfigError(
            f"{'.'.join(map(str, [*loc, 'kind']))}: {err}", f"{path}:{_node_line(root, [*loc, 'kind'])}"
        ) from None
    try:
        return cls.model_validate(raw)
    except ValidationError as err:
        raise _first_error(path, root, err, loc) from None


def load(path: str | os.PathLike[str]) -> Config:
    p = str(path)
    try:
        text = Path(p).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("config file not found", p) from None
    except OSError as err:
        raise ConfigError(f"cannot read config: {err.strerror}", p) from None
    return parse(text, p)


def parse(text: str, path: str = "<config>") -> Config:
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else path
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError(f"not valid YAML: {problem}", where) from None
    if not isinstance(data, dict):
        raise ConfigError("the config must be a YAML mapping", f"{path}:1")
    try:
        file = BurstFile.model_validate(data)
    except ValidationError as err:
        raise _first_error(path, root, err, []) from None

    providers: dict[str, ProviderConfig] = {}
    for name, raw in file.providers.items():
        if not isinstance(raw, dict):
            raise ConfigError(f"providers.{name}: must be a mapping", f"{path}:{_node_line(root, ['providers', name])}")
        cfg = _plugin(path, root, "burst.providers", raw, ["providers", name])
        assert isinstance(cfg, ProviderConfig)
        providers[name] = cfg
    backlog = _plugin(path, root, "burst.backlogs", file.backlog, ["backlog"])
    federation = _plugin(path, root, "burst.federations", file.federation, ["federation"])
    policies: list[PolicyConfig] = []
    for i, raw in enumerate(file.policies):
        pol = _plugin(path, root, "burst.policies", raw, ["policies", i])
        assert isinstance(pol, PolicyConfig)
        policies.append(pol)
    assert isinstance(backlog, BacklogConfig) and isinstance(federation, FederationConfig)
    _check_lease(path, root, file, federation)
    return Config(path, file, providers, backlog, federation, policies)


def leader_election(file: BurstFile) -> LeaderElectionConfig:
    """The leader election in force: the configured one, or a store lease with the defaults."""
    return file.leader_election or LeaderElectionConfig()


def action_timeout(file: BurstFile, federation: BaseModel) -> timedelta:
    """The longest one side-effecting call may take: a cloud call (``reconciler.call_timeout``) or
    a federation call (the federation's own ``timeout``, when it has one and it is longer)."""
    fed = getattr(federation, "timeout", None)
    call = file.reconciler.call_timeout
    return max(call, fed) if isinstance(fed, timedelta) else call


def _check_lease(path: str, root: yaml.Node | None, file: BurstFile, federation: BaseModel) -> None:
    """A leader acts only with one action's worth of lease left, renewing first when less is left;
    so the lease must outlast the renewal call (``call_timeout``), one action and the margin."""
    le = leader_election(file)
    renew = file.reconciler.call_timeout
    action = action_timeout(file, federation)
    need = renew + action + le.safety_margin
    if le.lease_duration <= need:
        loc: list[str | int] = ["leader_election", "lease_duration"] if file.leader_election else ["reconciler"]
        line = _node_line(root, loc)
        raise ConfigError(
            f"{'.'.join(map(str, loc))}: the lease ({le.lease_duration.total_seconds():g}s) must outlast a renewal "
            f"(reconciler.call_timeout {renew.total_seconds():g}s) + one cloud or federation call "
            f"({action.total_seconds():g}s) + safety_margin ({le.safety_margin.total_seconds():g}s) = "
            f"{need.total_seconds():g}s, or a leader could act after its lease ended",
            f"{path}:{line}" if line else path,
        )


def schema() -> dict[str, Any]:
    """JSON Schema of the core file, with each installed plugin's section schema attached."""
    from burst.registry import kinds

    out = BurstFile.model_json_schema()
    out["x-plugins"] = {
        group: {kind: cls.model_json_schema() for kind, cls in sorted(kinds(group).items())}
        for group in ("burst.providers", "burst.backlogs", "burst.federations", "burst.policies")
    }
    return out
