"""Structure of the landing-zone modules: files, documented and validated variables, pinned
providers, and references that resolve.  Parsing only: no terraform binary runs here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from tf_tree import CLOUDS, EXAMPLES, MODULES, TERRAFORM, TfDir, module, parse_file

from burst.config import BurstFile

_PROVIDER_OF = {"aws": "aws", "gce": "google", "otc": "opentelekomcloud", "openstack": "openstack"}
_PROVIDER_SOURCE = {
    "aws": "hashicorp/aws",
    "google": "hashicorp/google",
    "opentelekomcloud": "opentelekomcloud/opentelekomcloud",
    "openstack": "terraform-provider-openstack/openstack",
}


def _all_tf_files() -> list[Path]:
    return sorted(TERRAFORM.rglob("*.tf"))


def test_the_tree_has_one_module_and_one_example_per_cloud() -> None:
    assert sorted(p.name for p in MODULES.iterdir() if p.is_dir()) == sorted(CLOUDS.values())
    assert sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir()) == sorted(CLOUDS)
    assert (TERRAFORM / "README.md").is_file()


@pytest.mark.parametrize("path", _all_tf_files(), ids=lambda p: str(p.relative_to(TERRAFORM)))
def test_every_tf_file_parses_as_hcl2(path: Path) -> None:
    parsed = parse_file(path)
    assert parsed, f"{path} parsed to nothing"


def test_every_module_has_the_four_files_and_a_readme(cloud: str) -> None:
    path = MODULES / CLOUDS[cloud]
    for name in ("versions.tf", "variables.tf", "main.tf", "outputs.tf", "README.md"):
        assert (path / name).is_file(), f"{path.name} lacks {name}"
    # Each kind of block lives in its file, so readers find them where the layout says.
    for name, kinds in {"variables.tf": {"variable"}, "outputs.tf": {"output"}, "versions.tf": {"terraform"}}.items():
        assert set(parse_file(path / name)) == kinds, f"{path.name}/{name} holds {set(parse_file(path / name))}"


def test_versions_pin_the_provider_with_both_bounds(cloud: str) -> None:
    versions = parse_file(MODULES / CLOUDS[cloud] / "versions.tf")
    (terraform,) = versions["terraform"]
    assert terraform["required_version"].startswith(">= 1.")
    (required,) = terraform["required_providers"]
    provider = _PROVIDER_OF[cloud]
    assert set(required) == {provider}
    assert required[provider]["source"] == _PROVIDER_SOURCE[provider]
    constraint = required[provider]["version"]
    assert re.fullmatch(r">= [0-9.]+, < [0-9.]+", constraint), constraint


def test_every_resource_belongs_to_the_pinned_provider(cloud: str) -> None:
    mod = module(cloud)
    provider = _PROVIDER_OF[cloud]
    types = {t for t, _ in mod.resources} | {t for t, _ in mod.data}
    assert types, "module declares no resources"
    assert all(t.startswith(provider + "_") for t in types), sorted(types)


def _every_dir() -> list[Path]:
    return [MODULES / m for m in sorted(CLOUDS.values())] + [EXAMPLES / c for c in sorted(CLOUDS)]


@pytest.mark.parametrize("path", _every_dir(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_variable_and_output_is_documented_and_typed(path: Path) -> None:
    d = TfDir.load(path)
    assert d.variables, f"{path} declares no variables"
    for name, var in d.variables.items():
        assert len(var.get("description", "")) >= 15, f"variable {name}: no real description"
        assert "type" in var, f"variable {name}: no type"
    for name, out in d.outputs.items():
        assert len(out.get("description", "")) >= 15, f"output {name}: no real description"
        assert "value" in out, f"output {name}: no value"


def test_every_scalar_or_list_variable_of_a_module_is_validated(cloud: str) -> None:
    """bools and free-form tag maps need no check; everything else an operator types does."""
    for name, var in module(cloud).variables.items():
        if var["type"] in ("bool", "${map(string)}") and name != "burst_roles":
            continue
        checks = var.get("validation", [])
        assert checks, f"variable {name} ({var['type']}) has no validation"
        for check in checks:
            assert f"var.{name}" in check["condition"], f"{name}: validation does not test the variable"
            assert check["error_message"].endswith("."), f"{name}: error_message must be a sentence"


@pytest.mark.parametrize("path", _every_dir(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_var_and_local_references_are_declared(path: Path) -> None:
    d = TfDir.load(path)
    text = d.text()
    used_vars = set(re.findall(r"\bvar\.([A-Za-z_][A-Za-z0-9_]*)", text))
    assert used_vars <= set(d.variables), f"undeclared variables: {used_vars - set(d.variables)}"
    # A declared variable nobody reads is a knob that does nothing.
    assert set(d.variables) <= used_vars, f"unused variables: {set(d.variables) - used_vars}"
    used_locals = set(re.findall(r"\blocal\.([A-Za-z_][A-Za-z0-9_]*)", text))
    assert used_locals <= set(d.locals), f"undeclared locals: {used_locals - set(d.locals)}"


def test_resource_and_data_references_are_declared(cloud: str) -> None:
    mod = module(cloud)
    prefix = _PROVIDER_OF[cloud]
    text = mod.text()
    data_refs = set(re.findall(rf"\bdata\.({prefix}_[a-z0-9_]+)\.([a-z_][a-z0-9_]*)", text))
    assert bool(data_refs) == bool(mod.data), "data sources declared but none found: the pattern is broken"
    assert data_refs <= set(mod.data), f"undeclared data sources: {data_refs - set(mod.data)}"
    resource_refs = set(re.findall(rf"(?<![.\w\"])({prefix}_[a-z0-9_]+)\.([a-z_][a-z0-9_]*)", text))
    assert resource_refs, "no resource references found: the pattern is broken"
    assert resource_refs <= set(mod.resources), f"undeclared resources: {resource_refs - set(mod.resources)}"


def test_module_and_burst_agree_on_the_installation_id() -> None:
    """The owner tag the AWS policy is scoped by is burst's ``installation``: the module must
    accept exactly the ids burst accepts."""
    (check,) = module("aws").variables["installation"]["validation"]
    m = re.search(r'regex\("([^"]+)", var\.installation\)', check["condition"])
    assert m, check["condition"]
    pattern = BurstFile.model_fields["installation"].metadata
    burst_pattern = next(getattr(p, "pattern", None) for p in pattern if getattr(p, "pattern", None))
    assert m.group(1) == burst_pattern


def test_public_key_validation_accepts_a_real_openssh_key() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    keys: list[ed25519.Ed25519PublicKey | rsa.RSAPublicKey] = [
        ed25519.Ed25519PrivateKey.generate().public_key(),
        rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key(),
    ]
    for cloud in ("otc", "openstack"):
        (check,) = module(cloud).variables["public_key"]["validation"]
        m = re.search(r'regex\("([^"]+)", var\.public_key\)', check["condition"])
        assert m, check["condition"]
        # HCL string escapes: \\ is one backslash (none here today, but keep the reading honest).
        regex = re.compile(m.group(1).replace("\\\\", "\\"))
        for key in keys:
            line = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
            assert regex.match(line + " burst@example"), line[:20]
        assert not regex.match("-----BEGIN PUBLIC KEY-----")
