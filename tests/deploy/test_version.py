"""``burst --version``: what the image test and operators ask a deployed burst first."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version


def test_burst_version_prints_the_installed_version_and_exits_0() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "burst.cli", "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"burst {version('burst')}"
