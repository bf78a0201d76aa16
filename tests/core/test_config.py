"""Config errors name the file, the line and the field; good configs load into typed sections."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from burst import config
from burst.errors import ConfigError
from burst.units import parse_duration, parse_money

GOOD = """\
installation: cern-burst
onprem:
  cores: 100
providers:
  aws: {kind: local, cloud: aws, max_nodes: 10}
  gce: {kind: local, cloud: gce}
policies:
  - {kind: backlog, pending_cores_above: 32, for: 15m}
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "burst.yaml"
    p.write_text(text)
    return p


def test_good_config_loads(tmp_path: Path) -> None:
    cfg = config.load(write(tmp_path, GOOD))
    assert cfg.file.installation == "cern-burst"
    assert set(cfg.providers) == {"aws", "gce"}
    assert cfg.providers["aws"].max_nodes == 10
    assert cfg.policies[0].kind == "backlog"
    assert cfg.backlog.kind == "trace" and cfg.federation.kind == "local"
    assert cfg.state_url() == f"sqlite:///{tmp_path / 'burst.db'}"  # relative to the config file


def test_example_config_is_valid() -> None:
    root = Path(__file__).resolve().parents[2]
    cfg = config.load(root / "examples" / "burst.yaml")
    assert len(cfg.providers) == 3


@pytest.mark.parametrize(
    ("text", "line", "field", "what"),
    [
        (GOOD.replace("cores: 100", "cores: -5"), 3, "onprem.cores", "greater than or equal to 0"),
        (GOOD.replace("cores: 100", "cores: many"), 3, "onprem.cores", "valid integer"),
        (GOOD + "colour: blue\n", 9, "colour", "unknown key"),
        (GOOD.replace("cloud: gce}", "cloud: gce, regoin: x}"), 6, "providers.gce.regoin", "unknown key"),
        (
            GOOD.replace("kind: local, cloud: aws", "kind: azure, cloud: aws"),
            5,
            "providers.aws.kind",
            "unknown provider kind 'azure'",
        ),
        (GOOD.replace("max_nodes: 10", "max_nodes: -1"), 5, "providers.aws.max_nodes", "greater than or equal"),
        (GOOD.replace("max_nodes: 10", "max_nodes: 10, min_nodes: 12"), 5, "providers.aws", "min_nodes (12) is more"),
        (GOOD.replace("for: 15m", "for: soon"), 8, "policies.0.for", "not a duration"),
        (GOOD.replace("kind: backlog", "kind: clairvoyant"), 8, "policies.0.kind", "unknown policy kind"),
        (GOOD.replace("onprem:\n  cores: 100\n", ""), 1, "onprem", "required field is missing"),
    ],
)
def test_errors_name_file_line_and_field(tmp_path: Path, text: str, line: int, field: str, what: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        config.load(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}:{line}: {field}"), msg
    assert what in msg
    assert "\n" not in msg


def test_not_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "onprem: [1, 2\n")
    with pytest.raises(ConfigError, match=r"burst.yaml:2: not valid YAML"):
        config.load(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        config.load(tmp_path / "nope.yaml")


def test_schema_has_plugins() -> None:
    s = config.schema()
    assert "onprem" in s["properties"]
    assert "local" in s["x-plugins"]["burst.providers"]
    assert "backlog" in s["x-plugins"]["burst.policies"]


def test_units() -> None:
    assert parse_duration("15m") == timedelta(minutes=15)
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration(90) == timedelta(seconds=90)
    m = parse_money("40,000 EUR")
    assert (m.amount, m.currency) == (40000.0, "EUR")
    with pytest.raises(ValueError):
        parse_duration("-5m")
    with pytest.raises(ValueError):
        parse_money("lots")
