"""Offerings from the packaged catalog, operator price overrides, and config validation."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import pytest
from burst_gce import GceProvider, GceProviderConfig, label_key, label_value, load_catalog
from pydantic import ValidationError

from burst.api import ProviderContext, SimClock
from burst.registry import config_class


def _cfg(**over: Any) -> GceProviderConfig:
    raw: dict[str, Any] = {"kind": "gce", "project": "p", "location": "us-east1-b"}
    raw.update(over)
    return GceProviderConfig.model_validate(raw)


def _ctx() -> ProviderContext:
    return ProviderContext(clock=SimClock(datetime(2026, 11, 25, tzinfo=UTC)), owner="cern-burst")


def test_catalog_cites_source_and_date_and_marks_assumptions() -> None:
    doc = json.loads(resources.files("burst_gce").joinpath("catalog.json").read_text())
    assert doc["compiled"] == "2026-11-25" and doc["currency"] == "USD" and doc["price_region"] == "us-east1"
    assert doc["control_plane_per_hour"]["value"] == 0.10
    for name, f in doc["flavors"].items():
        assert f["source"], name
    assert doc["flavors"]["e2-standard-8"]["verified"] is False
    assert doc["flavors"]["n1-standard-8+t4"]["assumption"] is True
    assert doc["latency"]["assumption"] is True and doc["spot"]["assumption"] is True


def test_offerings_on_demand() -> None:
    p = _cfg(machine_types=["n2-standard-8", "n2-standard-16", "e2-standard-8", "n1-standard-8+t4"]).build(
        "gce", _ctx()
    )
    offs = {o.flavor: o for o in p.offerings()}
    n2 = offs["n2-standard-8"]
    assert (n2.provider, n2.region, n2.cpus, n2.memory_mb, n2.gpus) == ("gce", "us-east1-b", 8, 32768, 0)
    assert (n2.price_per_hour, n2.currency, n2.control_plane_per_hour, n2.spot) == (0.3885, "USD", 0.10, False)
    assert offs["n2-standard-16"].price_per_hour == pytest.approx(0.777)
    assert offs["e2-standard-8"].price_per_hour == 0.268
    assert (offs["n1-standard-8+t4"].gpus, offs["n1-standard-8+t4"].cpus) == (1, 8)
    lat = n2.latency
    assert 300 <= lat.median_s(3) <= 480  # ~5-8 min with the node pool
    assert lat.p90_s(3) > lat.median_s(3)


def test_spot_prices_assume_the_smallest_discount() -> None:
    (off,) = _cfg(spot=True).build("gce", _ctx()).offerings()
    assert off.spot and off.price_per_hour == pytest.approx(0.3885 * 0.40)


def test_operator_price_overrides_win() -> None:
    cfg = _cfg(
        machine_types=["n2-standard-8", "e2-standard-8"],
        prices={"n2-standard-8": {"price_per_hour": 0.21, "currency": "EUR"}},
    )
    offs = {o.flavor: o for o in cfg.build("gce", _ctx()).offerings()}
    assert (offs["n2-standard-8"].price_per_hour, offs["n2-standard-8"].currency) == (0.21, "EUR")
    assert (offs["e2-standard-8"].price_per_hour, offs["e2-standard-8"].currency) == (0.268, "USD")


def test_entry_point_builds_a_provider_without_credentials_or_network() -> None:
    cls = config_class("burst.providers", "gce")
    cfg = cls.model_validate(
        {"kind": "gce", "project": "cern-burst", "zone": "europe-west4-a", "machine_type": "n2-standard-8"}
    )
    assert isinstance(cfg, GceProviderConfig)
    assert (cfg.location, cfg.machine_types) == ("europe-west4-a", ["n2-standard-8"])  # DESIGN.md's spelling
    p = cfg.build("gce", _ctx())
    assert isinstance(p, GceProvider)
    assert [o.flavor for o in p.offerings()] == ["n2-standard-8"]  # no client was built for this


@pytest.mark.parametrize(
    ("over", "match"),
    [
        ({"machine_types": ["n9-huge"]}, "not in the gce catalog"),
        ({"location": "europe-west4"}, "set node_zone"),
        ({"location": "europe-west4", "node_zone": "us-east1-b"}, "set node_zone"),
        ({"node_zone": "us-east1-c"}, "differs from the zonal location"),
        ({"location": "mars"}, "neither a GCE zone nor a region"),
        ({"flavor": "x"}, "Extra inputs are not permitted"),
        ({"machine_type": "n2-standard-8", "machine_types": ["n2-standard-8"]}, "either machine_type"),
        ({"credentials": "key.json"}, "application-default"),
    ],
)
def test_config_errors(over: dict[str, Any], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        _cfg(**over)


def test_regional_config_with_node_zone() -> None:
    cfg = GceProviderConfig.model_validate(
        {"kind": "gce", "project": "p", "region": "europe-west4", "node_zone": "europe-west4-b"}
    )
    assert (cfg.location, cfg.node_zone) == ("europe-west4", "europe-west4-b")


def test_label_mapping() -> None:
    assert [label_key(k) for k in ("burst.owner", "burst.cluster", "burst.campaign")] == [
        "burst-owner",
        "burst-cluster",
        "burst-campaign",
    ]
    assert label_key("Team.Name") == "team-name"
    assert label_key("1x") == "l-1x"
    assert label_value("CERN.Prod/ATLAS") == "cern-prod-atlas"
    assert len(label_value("x" * 100)) == 63


def test_catalog_loads_into_models() -> None:
    cat = load_catalog()
    assert cat.flavor_of("n1-standard-8", "nvidia-tesla-t4", 1) == "n1-standard-8+t4"
    assert cat.flavor_of("c3-standard-4", "", 0) == "c3-standard-4"
