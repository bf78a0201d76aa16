"""How many inputs each fuzz target draws.

A fuzz campaign draws 1 000 inputs per target (the default, and what the README's fuzz command
runs); the whole test suite, which must stay within its time budget on two cores, sets
``BURST_FUZZ_EXAMPLES`` lower in ``scripts/test`` and so replays a smaller sample of the same
strategies on every change.
"""

from __future__ import annotations

import os
from typing import Any


def fuzz_examples(default: int = 1000) -> int:
    """Inputs per fuzz target: ``BURST_FUZZ_EXAMPLES`` when set (a positive integer), else ``default``."""
    raw = os.environ.get("BURST_FUZZ_EXAMPLES", "")
    try:
        n = int(raw) if raw else default
    except ValueError:
        raise ValueError(f"BURST_FUZZ_EXAMPLES: not an integer: {raw!r}") from None
    if n < 1:
        raise ValueError(f"BURST_FUZZ_EXAMPLES: must be at least 1, not {n}")
    return n


def answer_fuzz_settings() -> Any:
    """Hypothesis settings of the cloud-answer fuzzers: the inputs above, no deadline (a shared
    machine), no example database in the work tree, a function-scoped proxy fixture reused."""
    from hypothesis import HealthCheck, settings

    return settings(
        max_examples=fuzz_examples(),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
