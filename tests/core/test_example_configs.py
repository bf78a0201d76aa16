"""Every shipped config is one an operator can start from: `burst config validate` accepts it."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from burst.cli import app

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "examples").rglob("*.yaml"))


def test_the_real_setups_are_all_there() -> None:
    sites = {p.stem for p in (ROOT / "examples" / "sites").glob("*.yaml")}
    assert {
        "htcondor-kubefed-otc",
        "htcondor-kubefed-aws",
        "htcondor-kubefed-gce",
        "kubernetes-karmada",
        "htcondor-pool-magnum",
    } <= sites


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_config_validates(path: Path) -> None:
    """In process (the CLI as a subprocess is tested elsewhere): the verb's own code path."""
    r = CliRunner().invoke(app, ["config", "validate", str(path), "--output", "json"])
    assert r.exit_code == 0, r.output
    assert '"ok": true' in r.output


@pytest.mark.parametrize("path", sorted((ROOT / "examples" / "sites").glob("*.yaml")), ids=lambda p: p.name)
def test_site_configs_mark_what_the_operator_fills(path: Path) -> None:
    """A real site's values are placeholders: each is marked FILL, so none is mistaken for advice."""
    text = path.read_text(encoding="utf-8")
    assert "FILL" in text
    for needle in ("installation:", "state:", "cores:"):
        line = next(li for li in text.splitlines() if li.lstrip().startswith(needle))
        assert "FILL" in line, f"{path.name}: {line!r} is not marked FILL"
