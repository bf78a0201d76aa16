"""deploy/Containerfile builds with buildah and the image runs burst: ``--version`` and a short
``burst simulate`` whose figures equal the same simulation run outside the container.

The base is a bookworm bootstrapped from Debian packages (see ``image_base``; no container registry
is reachable here), cached across runs.  Marked ``image``: minutes on a first run (bootstrap
about 1 min, the build about 6 min on this loaded 2-core machine, mostly PyPI downloads into the
build's uv cache), about 2 min after.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.image_base import ensure_base_image, storage_args

pytestmark = [pytest.mark.image, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[2]
TRACE = "examples/traces/KTH-SP2-1996-slice-1997w06-w11.swf.gz"
#: what differs between two runs of one simulation: wall time
UNSTABLE = {"wall_seconds"}


def buildah(*args: str, timeout: float = 600) -> str:
    done = subprocess.run(
        ["buildah", *storage_args(), *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"buildah {' '.join(args[:2])} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    if shutil.which("buildah") is None or shutil.which("debootstrap") is None:
        pytest.fail(
            "buildah and debootstrap are needed: scripts/test installs them (apt-get install buildah debootstrap)"
        )
    base = ensure_base_image()
    tag = f"localhost/burst-image-test:{uuid.uuid4().hex[:8]}"
    buildah(
        "bud",
        "--isolation",
        "chroot",
        "--pull=false",
        "--build-arg",
        f"BASE={base}",
        "-f",
        "deploy/Containerfile",
        "-t",
        tag,
        str(ROOT),
        timeout=1500,
    )
    try:
        yield tag
    finally:
        buildah("rmi", "--force", tag)


@pytest.fixture(scope="module")
def container(image: str) -> Iterator[str]:
    name = buildah("from", "--pull=false", image).strip()
    try:
        yield name
    finally:
        buildah("rm", name)


def run_in(container: str, *cmd: str) -> str:
    return buildah(
        "run", "--isolation", "chroot", "--volume", f"{ROOT / 'examples'}:/examples:ro", container, "--", *cmd
    )


def test_image_runs_as_non_root_with_burst_as_entrypoint(image: str) -> None:
    cfg = json.loads(buildah("inspect", "--type", "image", image))["OCIv1"]["config"]
    assert cfg["Entrypoint"] == ["burst"]
    user = cfg["User"].split(":")[0]
    assert user.isdigit() and int(user) != 0  # numeric, so Kubernetes' runAsNonRoot can check it
    assert "9090/tcp" in cfg["ExposedPorts"]


def test_burst_version_in_the_image(container: str) -> None:
    from importlib.metadata import version

    assert run_in(container, "burst", "--version").strip() == f"burst {version('burst')}"
    assert run_in(container, "id", "-u").strip() == "10001"


def test_simulate_in_the_image_equals_the_simulation_here(container: str) -> None:
    inside = json.loads(
        run_in(container, "burst", "simulate", f"/{TRACE}", "--config", "/examples/burst.yaml", "--output", "json")
    )
    here = subprocess.run(
        [sys.executable, "-m", "burst.cli", "simulate", TRACE, "--config", "examples/burst.yaml", "--output", "json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=True,
    )
    outside: dict[str, Any] = json.loads(here.stdout)
    assert inside["jobs"] > 1000 and inside["cost_total"] > 0
    assert {k: v for k, v in inside.items() if k not in UNSTABLE} == {
        k: v for k, v in outside.items() if k not in UNSTABLE
    }
