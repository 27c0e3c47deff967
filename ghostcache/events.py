"""The event Broker port: wakes a user's live streams when a message arrives."""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Protocol


class Broker(Protocol):
    def publish(self, user_id: int) -> None:
        """Tell user_id's listeners that something new is waiting for them."""

    def wait(self, user_id: int, seen: int, timeout: float) -> int:
        """Block until the user's counter passes `seen` or timeout; returns the counter."""

    def counter(self, user_id: int) -> int:
        """The user's current counter, to wait on next."""


class LocalBroker:
    """In-process broker. Streams also re-check the database on a short timer,
    so a message sent through another worker process still arrives promptly."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._counters: dict[int, int] = defaultdict(int)

    def publish(self, user_id: int) -> None:
        with self._cond:
            self._counters[user_id] += 1
            self._cond.notify_all()

    def wait(self, user_id: int, seen: int, timeout: float) -> int:
        with self._cond:
            self._cond.wait_for(lambda: self._counters[user_id] != seen, timeout=timeout)
            return self._counters[user_id]

    def counter(self, user_id: int) -> int:
        with self._cond:
            return self._counters[user_id]
