"""The one YAML configuration file, validated by pydantic models.

Errors name the file, the line and the field (``burst.yaml:12: providers.aws.region: …``).
Plugin sections (providers, backlog, federation, policies) are validated by the plugin's own
model, found through the entry point named by the section's ``kind``.
"""

from __future__ import annotations

import difflib
import math
import os
import types
import typing
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
from burst.units import MAX_CORES, Duration, PositiveDuration, format_duration


class OnPremConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cores: int = Field(ge=0, le=MAX_CORES, description="cores of the on-prem batch system")
    memory_gb: float | None = Field(
        default=None, ge=0, description="memory of the on-prem system; unset = not limiting"
    )


class ReconcilerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tick: PositiveDuration = Field(default=timedelta(minutes=1), description="how often the reconcile tick runs")
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
    sample_every: PositiveDuration = Field(
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
    tick: PositiveDuration = Field(default=timedelta(minutes=5), description="reconcile tick in simulated time")
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
    lease_duration: PositiveDuration = Field(
        default=timedelta(minutes=3),
        description="a leader silent this long is replaced; at least twice reconciler.tick",
    )
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


def _first_error(
    path: str, root: yaml.Node | None, err: ValidationError, prefix: Sequence[str | int], model: type[BaseModel]
) -> ConfigError:
    """The error an operator should see first: an unknown key (a typo explains the rest), else pydantic's first."""
    errors = err.errors()
    e = next((x for x in errors if x["type"] == "extra_forbidden"), errors[0])
    own = [p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
    loc = [*prefix, *own]
    field = ".".join(str(p) for p in loc) or "(top level)"
    line = _node_line(root, loc)
    msg = e["msg"].removeprefix("Value error, ")
    if e["type"] == "extra_forbidden":
        key = str(own[-1]) if own else ""
        msg = f"unknown key {key!r}"
        near = difflib.get_close_matches(key, _keys_at(model, own[:-1]), n=1, cutoff=0.6)
        if near:
            msg += f" — did you mean {near[0]!r}?"
    elif e["type"] == "missing":
        msg = "required field is missing"
    more = len(errors) - 1
    suffix = f" (and {more} more)" if more else ""
    return ConfigError(f"{field}: {msg}{suffix}", f"{path}:{line}" if line else path)


def _keys_at(model: type[BaseModel], loc: Sequence[str | int]) -> list[str]:
    """The keys the model accepts at ``loc`` (for "did you mean"); [] where that is not a model."""
    tp: Any = model
    for part in loc:
        tp = _step(tp, part)
        if tp is None:
            return []
    m = _model_in(tp)
    return [f.alias or name for name, f in m.model_fields.items()] if m is not None else []


def _model_in(tp: Any) -> type[BaseModel] | None:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return tp
    if typing.get_origin(tp) in (typing.Union, types.UnionType, typing.Annotated):
        for arg in typing.get_args(tp):
            m = _model_in(arg)
            if m is not None:
                return m
    return None


def _step(tp: Any, part: str | int) -> Any:
    m = _model_in(tp)
    if m is not None and isinstance(part, str):
        f = m.model_fields.get(part) or next((f for f in m.model_fields.values() if f.alias == part), None)
        return f.annotation if f is not None else None
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType, typing.Annotated):
        return next((r for r in (_step(a, part) for a in args) if r is not None), None)
    if origin is dict and len(args) == 2:
        return args[1]
    if origin in (list, tuple) or (origin is not None and getattr(origin, "__name__", "") == "Sequence"):
        return args[0] if args and isinstance(part, int) else None
    return None


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
        raise _first_error(path, root, err, loc, cls) from None


def load(path: str | os.PathLike[str]) -> Config:
    p = str(path)
    try:
        raw = Path(p).read_bytes()
    except FileNotFoundError:
        raise ConfigError("config file not found", p) from None
    except OSError as err:
        raise ConfigError(f"cannot read config: {err.strerror or type(err).__name__}", p) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        bad = raw[err.start : err.start + 1].hex()
        raise ConfigError(f"not UTF-8 text (byte 0x{bad} at offset {err.start})", p) from None
    return parse(text, p)


# --- reading the YAML --------------------------------------------------------------------------

#: Deeper than this no config section goes; past it a hostile file would exhaust the stack.
MAX_DEPTH = 64
#: Numbers in a config stay within this (cores, nodes, prices): past it they overflow SQLite's
#: 64-bit integers or ``timedelta`` somewhere downstream.
MAX_NUMBER = 10**15


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key written twice in one mapping is an error.

    PyYAML keeps the last of duplicate keys silently, so a second ``region:`` would win unseen.
    Nesting is bounded while composing, before anything recursive walks the tree.
    """

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        """Refuse absurd nesting while composing: PyYAML's composer recurses once per level."""
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"nested deeper than {MAX_DEPTH} levels",
                    self.peek_event().start_mark,  # type: ignore[no-untyped-call]
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first on line {seen[key]})", key_node.start_mark
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _compose(text: str, path: str) -> tuple[yaml.Node | None, Any]:
    loader: _Loader | None = None
    try:
        loader = _Loader(text)  # the reader refuses control characters here already
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else path
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        if isinstance(err, yaml.reader.ReaderError):
            problem = f"character #x{err.character:04x} at offset {err.position} is not allowed in YAML"
        raise ConfigError(f"not valid YAML: {problem}", where) from None
    except RecursionError:
        raise ConfigError(f"nested deeper than {MAX_DEPTH} levels", path) from None
    finally:
        if loader is not None:
            loader.dispose()
    return root, data


def _check_numbers(data: Any, root: yaml.Node | None, path: str) -> None:
    """Refuse NaN, infinities and absurd magnitudes anywhere, naming the field and line.

    Pydantic accepts ``.nan`` and ``.inf`` for a float field and any size of int; downstream they
    become a tick that never ends or an integer SQLite cannot store.  Shared subtrees (YAML
    aliases) are walked once, so an alias bomb stays linear.
    """
    stack: list[tuple[Any, list[str | int]]] = [(data, [])]
    seen: set[int] = set()
    while stack:
        value, loc = stack.pop()
        bad = ""
        if isinstance(value, float) and not math.isfinite(value):
            bad = f"{value} is not a finite number"
        elif isinstance(value, int | float) and not isinstance(value, bool) and abs(value) > MAX_NUMBER:
            bad = f"{_magnitude(value)} is out of range (at most {MAX_NUMBER:.0e})"
        if bad:
            field = ".".join(str(p) for p in loc) or "(top level)"
            line = _node_line(root, loc)
            raise ConfigError(f"{field}: {bad}", f"{path}:{line}" if line else path)
        if isinstance(value, dict | list):
            if id(value) in seen:
                continue
            seen.add(id(value))
            items = value.items() if isinstance(value, dict) else enumerate(value)
            stack.extend((v, [*loc, k if isinstance(k, int) else str(k)]) for k, v in items)


def _magnitude(value: float) -> str:
    text = (
        str(value) if isinstance(value, float) or value.bit_length() < 200 else f"a {len(str(abs(value)))}-digit number"
    )
    return text if len(text) <= 40 else text[:37] + "..."


def parse(text: str, path: str = "<config>") -> Config:
    root, data = _compose(text, path)
    if not isinstance(data, dict):
        raise ConfigError("the config must be a YAML mapping", f"{path}:1")
    _check_numbers(data, root, path)
    try:
        file = BurstFile.model_validate(data)
    except ValidationError as err:
        raise _first_error(path, root, err, [], BurstFile) from None

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
        if not isinstance(raw, dict):
            raise ConfigError(f"policies.{i}: must be a mapping", f"{path}:{_node_line(root, ['policies', i])}")
        pol = _plugin(path, root, "burst.policies", raw, ["policies", i])
        assert isinstance(pol, PolicyConfig)
        policies.append(pol)
    assert isinstance(backlog, BacklogConfig) and isinstance(federation, FederationConfig)
    _check_lease(path, root, file, federation)
    cfg_ = Config(path, file, providers, backlog, federation, policies)
    check_lease_vs_tick(cfg_, root)
    return cfg_


def check_lease_vs_tick(cfg: Config, root: yaml.Node | None = None) -> None:
    """A leader renews its Lease once per tick: a lease shorter than two ticks lapses between renewals.

    Then a standby takes over while the leader still acts, and two replicas reconcile at once.
    """
    le = cfg.file.leader_election
    if le is None:
        return
    tick = cfg.file.reconciler.tick
    if le.lease_duration < 2 * tick:
        line = _node_line(root, ["leader_election", "lease_duration"])
        raise ConfigError(
            f"leader_election.lease_duration: {format_duration(le.lease_duration)} is shorter than two "
            f"reconciler ticks ({format_duration(tick)} each): the lease would lapse between renewals",
            f"{cfg.path}:{line}" if line else cfg.path,
        )


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
