"""The Terraform tests read burst's terraform/ tree through tf_tree.py (beside this file)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from tf_tree import CLOUDS


@pytest.fixture(params=sorted(CLOUDS))
def cloud(request: pytest.FixtureRequest) -> str:
    """Each cloud of the landing zones: aws, gce, otc, openstack."""
    return str(request.param)
