"""What every fuzz target shares: the settings (≥ 1 000 inputs each), a per-example watchdog
(a hang is a failure, not a stuck CI run) and strategies for hostile values."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from burst.testing.fuzzing import fuzz_examples

#: Per target: 1 000 inputs, no per-example deadline (the machine is shared), no example database
#: written into the work tree.
FUZZ = settings(
    max_examples=fuzz_examples(),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

#: Seconds one example may take before it counts as a hang.
HANG_S = 5.0


class Hang(AssertionError):
    """An example ran past the watchdog."""


@contextmanager
def watchdog(seconds: float = HANG_S) -> Iterator[None]:
    """Fail the example (raise :class:`Hang`) if the block runs longer than ``seconds``."""

    def expired(signum: int, frame: FrameType | None) -> None:
        raise Hang(f"no answer within {seconds} s: a hang")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


#: Numbers that broke parsers before: NaN, infinities, overflowing magnitudes, zero, negatives.
HOSTILE_NUMBERS = st.one_of(
    st.sampled_from([float("nan"), float("inf"), float("-inf"), 0, -1, -0.0, 1e308, 2**63, 2**64, 10**30, -(2**63)]),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
)

#: Text as numbers are written in files: the same hostile values, spelt out.
HOSTILE_NUMBER_TEXT = st.one_of(
    st.sampled_from(
        ["nan", "NaN", "inf", "-inf", "1e999", "-1e999", "1e308", "99999999999999999999", "9" * 400, "0", "-1", "-2",
         "1.5", "0x10", "1_000", "", " ", "3e9", "9223372036854775808", "-0"]
    ),
    st.integers(min_value=-(10**25), max_value=10**25).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)  # fmt: skip

#: Strings with what crashed printing (rich markup), control characters and odd code points.
HOSTILE_TEXT = st.one_of(
    st.sampled_from(["[/x]", "[bold]", "[a-z][a-z0-9-]{0,19}", "\x00", "\udcff", "\u202e", "é", "'", '"', "\\", "-"]),
    st.text(max_size=40),
)
