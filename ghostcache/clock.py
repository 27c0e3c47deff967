"""Time as a dependency, so tests can move it instead of sleeping."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


class Clock:
    """The real clock: aware UTC datetimes."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for deadlines and intervals)."""
        return time.monotonic()

    def wait(self, wait_for: Callable[[float], bool], timeout: float) -> bool:
        """Wait up to `timeout` seconds with `wait_for` (say, an event's wait); True if woken."""
        return wait_for(timeout)


class FakeClock(Clock):
    """A clock that only moves when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._now.timestamp()

    def wait(self, wait_for: Callable[[float], bool], timeout: float) -> bool:
        """Never blocks: woken already, or the whole timeout passes at once."""
        if wait_for(0):
            return True
        self.advance(seconds=max(timeout, 0))
        return False

    def advance(self, **delta: float) -> None:
        """Move forward by a timedelta's keyword arguments (days=31, ...)."""
        self._now += timedelta(**delta)
