"""The examples: they call their module correctly, and the `burst_provider_yaml` they print is a
providers section burst's own config loader accepts, with each module output landing on the
config key it is meant for."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml
from burst_aws import AwsProviderConfig
from burst_gce import GceProviderConfig
from burst_openstack import OpenStackProviderConfig
from burst_tsystems import TSystemsProviderConfig
from pydantic import BaseModel
from tf_tree import CLOUDS, MODULES, example, heredoc, module

from burst.config import parse

_META_ARGS = {"source", "providers", "depends_on", "count", "for_each", "version"}

#: module output → the burst config key it feeds, per cloud: the 1:1 map the README promises.
OUTPUT_TO_KEY: dict[str, dict[str, str]] = {
    "aws": {
        "region": "region",
        "cluster_role_arn": "cluster_role_arn",
        "node_role_arn": "node_role_arn",
        "subnets": "subnets",
        "security_groups": "security_groups",
    },
    "gce": {
        "project": "project",
        "network": "network",
        "subnetwork": "subnetwork",
        "node_service_account": "service_account",
    },
    "otc": {"vpc_id": "vpc_id", "subnet_id": "subnet_id", "keypair": "keypair"},
    "openstack": {
        "cluster_template": "cluster_template",
        "keypair": "keypair",
        "network": "fixed_network",
        "subnet": "fixed_subnet",
        "floating_ip_enabled": "floating_ip_enabled",
    },
}

#: What `terraform apply` would put in each output, in the cloud's own id formats.  The OpenStack
#: template name carries YAML-special characters on purpose: jsonencode must keep them inert.
DUMMY_OUTPUTS: dict[str, dict[str, Any]] = {
    "aws": {
        "region": "eu-central-1",
        "cluster_role_arn": "arn:aws:iam::123456789012:role/burst-eks-cluster",
        "node_role_arn": "arn:aws:iam::123456789012:role/burst-eks-node",
        "subnets": ["subnet-0aaa1111bbbb2222c", "subnet-0ddd3333eeee4444f", "subnet-0fff5555aaaa6666b"],
        "security_groups": ["sg-0ccc3333dddd4444e"],
    },
    "gce": {
        "project": "cern-burst",
        "network": "burst",
        "subnetwork": "burst-europe-west4",
        "node_service_account": "burst-nodes@cern-burst.iam.gserviceaccount.com",
    },
    "otc": {
        "vpc_id": "6e0f1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b",
        "subnet_id": "2c9d8e7f-6a5b-4c3d-9e1f-0a2b3c4d5e6f",
        "keypair": "burst-nodes",
    },
    "openstack": {
        "cluster_template": "burst: k8s 1.29 #prod & <v2>",
        "keypair": "burst-nodes",
        "network": "0f1e2d3c-4b5a-4968-8776-655443322110",
        "subnet": "1a2b3c4d-5e6f-4a8b-9c0d-1e2f3a4b5c6d",
        "floating_ip_enabled": False,
    },
}

#: Values for example variables that have no default (the operator must pass them).
REQUIRED_VARS: dict[str, dict[str, Any]] = {
    "aws": {},
    "gce": {"project": "cern-burst"},
    "otc": {"public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB burst@example"},
    "openstack": {"image": "fedora-coreos-38", "public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB burst@example"},
}

MODELS: dict[str, type[BaseModel]] = {
    "aws": AwsProviderConfig,
    "gce": GceProviderConfig,
    "otc": TSystemsProviderConfig,
    "openstack": OpenStackProviderConfig,
}

_INTERPOLATION = re.compile(r"\$\{(.*?)\}")
_JSONENCODED_REF = re.compile(r"jsonencode\((module\.landing_zone\.[a-z_]+|var\.[a-z_]+)\)")


def _landing_zone(cloud: str) -> dict[str, Any]:
    mods = example(cloud).modules
    assert set(mods) == {"landing_zone"}, f"example {cloud} should call exactly one module, landing_zone"
    return dict(mods["landing_zone"])


def test_example_sources_its_own_module(cloud: str) -> None:
    call = _landing_zone(cloud)
    target = (example(cloud).path / call["source"]).resolve()
    assert target == (MODULES / CLOUDS[cloud]).resolve()


def test_example_passes_only_declared_inputs_and_every_required_one(cloud: str) -> None:
    call = _landing_zone(cloud)
    variables = module(cloud).variables
    passed = set(call) - _META_ARGS
    assert passed <= set(variables), f"not module variables: {passed - set(variables)}"
    required = {name for name, var in variables.items() if "default" not in var}
    assert required <= passed, f"required module variables not passed: {required - passed}"


def test_example_reads_only_outputs_the_module_has(cloud: str) -> None:
    used = set(re.findall(r"\bmodule\.landing_zone\.([a-z_]+)", example(cloud).text()))
    outputs = set(module(cloud).outputs)
    assert used, "example reads no module output"
    assert used <= outputs, f"example reads outputs the module lacks: {used - outputs}"


def test_mapped_outputs_exist_and_name_their_burst_key(cloud: str) -> None:
    outputs = module(cloud).outputs
    for output, key in OUTPUT_TO_KEY[cloud].items():
        assert output in outputs, f"module lacks output {output}"
        assert f"`{key}`" in outputs[output]["description"], f"output {output} should say it is burst's `{key}`"


def _jsonencode(value: Any) -> str:
    """Terraform's jsonencode: compact JSON with Go's HTML-safe escapes for <, > and &."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for char, escape in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escape)
    return text


def render_provider_yaml(cloud: str) -> str:
    """The example's burst_provider_yaml as `terraform output -raw` would print it, with the
    dummy module outputs and the example variables' defaults.  Only ``${jsonencode(<ref>)}`` is
    understood; any other interpolation fails the test instead of being guessed at."""
    ex = example(cloud)
    template = heredoc(ex.outputs["burst_provider_yaml"]["value"])
    variables = ex.variables

    def value_of(ref: str) -> Any:
        kind, _, name = ref.rpartition(".")
        if kind == "module.landing_zone":
            return DUMMY_OUTPUTS[cloud][name]
        if "default" in variables[name]:
            return variables[name]["default"]
        return REQUIRED_VARS[cloud][name]

    def substitute(m: re.Match[str]) -> str:
        inner = _JSONENCODED_REF.fullmatch(m.group(1))
        assert inner, f"interpolation {m.group(0)!r} is not jsonencode(<reference>): YAML safety unproven"
        return _jsonencode(value_of(inner.group(1)))

    return _INTERPOLATION.sub(substitute, template)


def test_provider_yaml_is_a_providers_section_that_appends_cleanly(cloud: str) -> None:
    text = render_provider_yaml(cloud)
    assert text.startswith("providers:\n"), text[:30]
    assert text.endswith("\n"), "`>> burst.yaml` would glue the next line onto the last key"
    data = yaml.safe_load(text)
    assert list(data) == ["providers"]
    assert len(data["providers"]) == 1


def test_provider_yaml_passes_burst_config_validation(cloud: str) -> None:
    """Through burst.config.parse, i.e. the entry point named by `kind` and the plugin's model."""
    snippet = render_provider_yaml(cloud)
    config = parse("installation: atlas\nonprem: {cores: 64}\n" + snippet, f"terraform/examples/{cloud}")
    ((name, provider),) = config.providers.items()
    assert isinstance(provider, MODELS[cloud]), type(provider)
    for output, key in OUTPUT_TO_KEY[cloud].items():
        assert getattr(provider, key) == DUMMY_OUTPUTS[cloud][output], f"{output} did not land on {key}"
    # And the snippet is no more than the keys written: a typo'd key would have been rejected.
    written = set(yaml.safe_load(snippet)["providers"][name])
    assert written <= set(MODELS[cloud].model_fields) | {"kind"}


def test_provider_yaml_without_a_module_output_is_refused(cloud: str) -> None:
    """The validation above can fail: without a required key the module supplies, or with a key
    burst does not know, burst refuses the section."""
    from burst.api import ConfigError

    data = yaml.safe_load(render_provider_yaml(cloud))
    ((name, section),) = data["providers"].items()
    model = MODELS[cloud]
    required = [k for k in OUTPUT_TO_KEY[cloud].values() if model.model_fields[k].is_required()]
    assert required, f"no module output feeds a required {cloud} key"
    for key in required:
        broken = {**section}
        del broken[key]
        with pytest.raises(ConfigError, match=f"providers.{name}.{key}: required field is missing"):
            parse(yaml.safe_dump({"onprem": {"cores": 64}, "providers": {name: broken}}))
    with pytest.raises(ConfigError, match="unknown key"):
        parse(yaml.safe_dump({"onprem": {"cores": 64}, "providers": {name: {**section, "vpc": "x"}}}))


def test_example_pins_the_provider_like_its_module(cloud: str) -> None:
    """Different constraints in example and module would make `terraform init` fail (or pick a
    version the module was not written for)."""

    def required(parsed: dict[str, Any]) -> dict[str, Any]:
        (terraform,) = parsed["terraform"]
        (providers,) = terraform["required_providers"]
        return dict(providers)

    ex = example(cloud)
    (example_terraform,) = [p for p in ex.parsed.values() if "terraform" in p]
    module_versions = module(cloud).parsed["versions.tf"]
    assert required(example_terraform) == required(module_versions)
