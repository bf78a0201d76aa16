"""Time, passed in.

No module of burst reads wall time itself: the daemon gets a :class:`RealClock`, the simulator and
the tests a :class:`SimClock`, and the same policies, reconciler and store run on both.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards (for durations)."""
        ...


class RealClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


class SimClock:
    """A clock that only moves when the simulation says so."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("SimClock needs a timezone-aware start time")
        self._start = start
        self._offset = 0.0
        self._now = start  # start + offset, kept: now() is asked far more often than time moves

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a SimClock never goes backwards")
        self._offset += seconds
        self._now = self._start + timedelta(seconds=self._offset)

    def advance_to(self, when: datetime) -> None:
        self.advance(max(0.0, (when - self.now()).total_seconds()))
