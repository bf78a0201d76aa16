"""Config files, fuzzed: whatever the text, ``config.parse``/``config.load`` return a Config or
raise ConfigError (one line naming file, line and field), never anything else, never hang."""

from __future__ import annotations

import copy
import math
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from burst import config
from burst.errors import ConfigError
from burst.units import MAX_DURATION, parse_duration, parse_money

from .support import FUZZ, HOSTILE_NUMBERS, HOSTILE_TEXT, watchdog

#: A valid file: every core section and one of each plugin kind that needs no network to validate.
BASE: dict[str, Any] = {
    "installation": "fuzz",
    "currency": "EUR",
    "onprem": {"cores": 512, "memory_gb": 2048},
    "backlog": {"kind": "trace", "speedup": 60, "offset": "1d"},
    "federation": {"kind": "local", "join_latency": "3m"},
    "providers": {
        "sim": {"kind": "local", "cloud": "aws", "delete_latency": "2s", "latency_scale": 0.5, "max_nodes": 100},
        "eks": {"kind": "aws", "region": "eu-west-1", "instance_types": ["m5.2xlarge"],
                "subnets": ["subnet-1", "subnet-2"], "cluster_role_arn": "arn:aws:iam::123456789012:role/c",
                "node_role_arn": "arn:aws:iam::123456789012:role/n"},
    },
    "policies": [
        {"kind": "backlog", "for": "5m", "max_cores": 1000},
        {"kind": "budget", "monthly": "40000 EUR"},
        {"kind": "forecast", "slot": "1h"},
    ],
    "reconciler": {"tick": "1m", "provisioning_timeout": "45m", "sample_every": "1h"},
    "simulation": {"tick": "5m", "seed": 1},
    "leader_election": {"kubeconfig": "k", "lease_duration": "3m"},
}  # fmt: skip

#: Values written as YAML text: what crashed before (1e999, .nan, 50 000-deep nesting, 0s…).
HOSTILE_YAML = st.one_of(
    st.sampled_from(
        [".nan", ".inf", "-.inf", "1e999", "99999999999999999999999", "0s", "0", "-1", "99999999999999d", "~", "''",
         "[]", "{}", "!!binary AAAA", "!!python/object:os.system ls", "&a [*a]", "*nope", "2s", "1h30m", "'[/x]'",
         "[" * 5000 + "]" * 5000, "{a: " * 3000 + "1" + "}" * 3000, "\t", "- - -", "? [a, b]: 1", "<<: 1", "'\\x00'"]
    ),
    HOSTILE_NUMBERS.map(lambda v: yaml.safe_dump(v).removesuffix("\n...\n").strip()),
    HOSTILE_TEXT.map(lambda s: yaml.safe_dump(s, allow_unicode=True).removesuffix("\n...\n").strip()),
)  # fmt: skip


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


PATHS = _paths(BASE)
BASE_LINES = yaml.safe_dump(BASE, sort_keys=False).splitlines()
MARK = "HOSTILE-VALUE-HERE"


def _with(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    doc: Any = copy.deepcopy(BASE)
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return dict(doc)


def _parse(text: str) -> config.Config | None:
    with watchdog():
        try:
            return config.parse(text, "fuzz.yaml")
        except ConfigError as err:
            message = str(err)
            assert message.startswith("fuzz.yaml") and "\n" not in message.strip(), message
            return None


def test_the_base_file_is_valid() -> None:
    cfg = _parse(yaml.safe_dump(BASE))
    assert cfg is not None and cfg.providers["sim"].delete_latency == 2.0  # type: ignore[attr-defined]


@FUZZ
@given(st.sampled_from(PATHS), HOSTILE_YAML)
def test_a_hostile_value_anywhere_is_a_config_error_or_valid(path: tuple[Any, ...], value: str) -> None:
    text = yaml.safe_dump(_with(path, MARK), sort_keys=False).replace(MARK, value.replace("\n", " "))
    cfg = _parse(text)
    if cfg is not None:  # accepted: then every number in it is sane
        assert cfg.file.reconciler.tick > timedelta(0) and cfg.file.simulation.tick > timedelta(0)
        assert 0 <= cfg.file.onprem.cores <= 10_000_000


@FUZZ
@given(st.sampled_from(PATHS), st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12), HOSTILE_YAML)
def test_an_unknown_or_duplicate_key_is_named(path: tuple[Any, ...], key: str, value: str) -> None:
    """An extra key next to any existing one: unknown (named, with a suggestion) or a duplicate."""
    leaf = str(path[-1])
    lines = BASE_LINES.copy()
    at = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith(f"{leaf}:")), None)
    if at is None:
        return
    indent = lines[at][: len(lines[at]) - len(lines[at].lstrip())]
    lines.insert(at + 1, f"{indent}{key}: {value.replace(chr(10), ' ')}")
    _parse("\n".join(lines) + "\n")


@FUZZ
@given(st.text(max_size=400))
def test_any_text_is_a_config_error_or_valid(text: str) -> None:
    _parse(text)


@FUZZ
@given(st.binary(max_size=300))
def test_any_bytes_on_disk_are_a_config_error(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    path = tmp_path_factory.mktemp("cfg") / "config.yaml"
    path.write_bytes(data)
    with watchdog():
        try:
            config.load(path)
        except ConfigError as err:
            assert str(err).startswith(str(path)) and "\n" not in str(err)
            try:
                data.decode("utf-8")
            except UnicodeDecodeError as bad:
                assert f"not UTF-8 text (byte 0x{data[bad.start]:02x} at offset {bad.start})" in str(err)


@FUZZ
@given(st.one_of(HOSTILE_NUMBERS, HOSTILE_TEXT, st.booleans(), st.none(), st.lists(st.integers(), max_size=2)))
def test_a_duration_is_bounded_or_refused(value: object) -> None:
    with watchdog():
        try:
            td = parse_duration(value)
        except ValueError as err:
            assert "\n" not in str(err)
            return
    assert timedelta(0) <= td <= MAX_DURATION


@FUZZ
@given(
    st.one_of(
        HOSTILE_TEXT,
        st.builds(lambda n, c: f"{n} {c}", st.one_of(HOSTILE_NUMBERS, HOSTILE_TEXT), HOSTILE_TEXT),
        st.fixed_dictionaries({"amount": st.one_of(HOSTILE_NUMBERS, HOSTILE_TEXT), "currency": HOSTILE_TEXT}),
    )
)
def test_money_is_finite_or_refused(value: object) -> None:
    with watchdog():
        try:
            m = parse_money(value)
        except ValueError:
            return
    assert math.isfinite(m.amount) and m.amount >= 0


def test_the_cases_of_the_issue_are_named_precisely(tmp_path: Path) -> None:
    """Not random: each input the issue listed, and the exact line it now gets."""
    base = "onprem: {cores: 8}\nproviders:\n  a: {kind: local}\n"
    cases = {
        base + "reconciler: {tick: 99999999999999d}\n": "fuzz.yaml:4: reconciler.tick: a duration is at most 366d",
        base + "simulation: {tick: 0s}\n": "fuzz.yaml:4: simulation.tick: must be longer than 0s",
        base.replace("local}", "local, latency_scale: .inf}"): "fuzz.yaml:3: providers.a.latency_scale: inf is not",
        "onprem: {cores: 8}\nonprem: {cores: 9}\n": "fuzz.yaml:2: not valid YAML: duplicate key 'onprem' (first on",
        base.replace("local}", "aws, regoin: x}"): "providers.a.regoin: unknown key 'regoin' — did you mean 'region'?",
        base + "installation: Bad\n": "installation: String should match pattern '^[a-z][a-z0-9-]{0,19}$'",
        base + "x: " + "[" * 50000 + "]" * 50000 + "\n": "fuzz.yaml:4: not valid YAML: nested deeper than 64 levels",
        base + "onprem: {cores: 99999999999999999999}\n": "duplicate key",
        "onprem: {cores: 99999999999999999999}\nproviders: {a: {kind: local}}\n": "onprem.cores: 9999999999999999",
        base + "leader_election: {kubeconfig: k, lease_duration: 30s}\n": "lease_duration: 30s is shorter than two",
    }  # fmt: skip
    for text, expected in cases.items():
        with pytest.raises(ConfigError) as caught:
            config.parse(text, "fuzz.yaml")
        assert expected in str(caught.value)
    ok = config.parse(base.replace("local}", "local, delete_latency: 2s, resize_latency: 90}"), "fuzz.yaml")
    assert ok.providers["a"].delete_latency == 2.0 and ok.providers["a"].resize_latency == 90.0  # type: ignore[attr-defined]
    (tmp_path / "latin1.yaml").write_bytes(b"onprem: {cores: 8}\n# caf\xe9\n")
    with pytest.raises(ConfigError, match=r"latin1.yaml: not UTF-8 text \(byte 0xe9 at offset 24\)"):
        config.load(tmp_path / "latin1.yaml")
