"""Offerings from the packaged catalog, price overrides, config validation and plugin registration."""

from __future__ import annotations

import json
from importlib import resources
from importlib.metadata import entry_points
from typing import Any

import pytest
from burst_aws import AwsProviderConfig, load_catalog
from pydantic import ValidationError

from burst.api import LatencyModel, ProviderConfig

from .support import REGION, ProviderFactory, config


def test_offerings_come_from_the_catalog(make_offline: ProviderFactory) -> None:
    offerings = {o.flavor: o for o in make_offline().offerings()}
    assert list(offerings) == ["m5.2xlarge", "c5.4xlarge", "g4dn.xlarge"]
    m5 = offerings["m5.2xlarge"]
    assert (m5.provider, m5.region, m5.cpus, m5.memory_mb, m5.gpus) == ("aws", REGION, 8, 32768, 0)
    assert (m5.price_per_hour, m5.currency, m5.control_plane_per_hour, m5.spot) == (0.46, "USD", 0.1, False)
    assert m5.latency == LatencyModel(base_s=840.0, per_node_s=0.5, sigma=0.3)
    assert 600 <= m5.latency.median_s(10) <= 900
    assert m5.max_nodes_per_cluster == 50  # the config's nodes_per_cluster, below EKS's 450
    assert offerings["g4dn.xlarge"].gpus == 1


def test_us_east_1_prices_are_the_cited_ones(make_offline: ProviderFactory) -> None:
    prices = {o.flavor: o.price_per_hour for o in make_offline(region="us-east-1").offerings()}
    assert prices["m5.2xlarge"] == 0.384
    assert prices["c5.4xlarge"] == 0.68


def test_region_without_catalog_prices_uses_the_default_region(make_offline: ProviderFactory) -> None:
    prices = {o.flavor: o.price_per_hour for o in make_offline(region="ap-south-1").offerings()}
    assert prices["m5.2xlarge"] == 0.384


def test_spot_discount(make_offline: ProviderFactory) -> None:
    (m5, *_) = make_offline(spot=True).offerings()
    assert m5.spot
    assert m5.price_per_hour == pytest.approx(0.46 * 0.5)


def test_price_override(make_offline: ProviderFactory) -> None:
    provider = make_offline(prices={"c5.4xlarge": {"price_per_hour": 0.41, "currency": "EUR"}})
    offerings = {o.flavor: o for o in provider.offerings()}
    assert (offerings["c5.4xlarge"].price_per_hour, offerings["c5.4xlarge"].currency) == (0.41, "EUR")
    assert offerings["m5.2xlarge"].price_per_hour == 0.46


def test_catalog_cites_a_source_and_date_for_every_figure() -> None:
    raw = json.loads(resources.files("burst_aws").joinpath("catalog.json").read_text(encoding="utf-8"))
    assert raw["retrieved"] and raw["currency"] == "USD"
    for key in ("control_plane_source", "spot_source", "min_billed_source", "max_nodes_per_nodegroup_source"):
        assert raw[key]
    assert raw["latency"]["source"]
    catalog = load_catalog()
    assert set(catalog.types) == set(raw["instance_types"])
    for name, t in catalog.types.items():
        assert t.source, name
        assert catalog.default_region in t.prices, name
        if name in ("m5.2xlarge", "c5.4xlarge"):  # the figures shared/clouds.md verified
            assert "zz_generated.pricing_aws.go (2026-07)" in t.source, name
        else:
            assert t.source.startswith("assumption"), name


BAD_CONFIGS: dict[str, dict[str, Any]] = {
    "unknown instance type": {"instance_types": ["m5.2xlarge", "x9.huge"]},
    "no instance types": {"instance_types": []},
    "role without account": {"cluster_role_arn": "arn:aws:iam::role/eks"},
    "node role not a role": {"node_role_arn": "arn:aws:iam::123456789012:user/bob"},
    "one subnet": {"subnets": ["subnet-0aaa1111"]},
    "unknown key": {"instance_type": "m5.2xlarge"},
    "secret in the file": {"aws_secret_access_key": "nope"},
    "wrong kind": {"kind": "gce"},
    "no retries budget": {"max_attempts": 0},
}


@pytest.mark.parametrize("bad", list(BAD_CONFIGS.values()), ids=list(BAD_CONFIGS))
def test_config_rejects(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        config("http://127.0.0.1:1", **bad)


def test_unknown_instance_type_error_names_the_known_ones() -> None:
    with pytest.raises(ValidationError, match=r"c5\.9xlarge"):
        config("http://127.0.0.1:1", instance_types=["x9.huge"])


def test_registered_as_the_aws_provider_plugin() -> None:
    (ep,) = [e for e in entry_points(group="burst.providers") if e.name == "aws"]
    loaded = ep.load()
    assert loaded is AwsProviderConfig
    assert issubclass(loaded, ProviderConfig)
    schema = AwsProviderConfig.model_json_schema()
    assert {"region", "cluster_role_arn", "node_role_arn", "subnets"} <= set(schema["required"])
