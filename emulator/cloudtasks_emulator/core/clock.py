"""Time source of the emulator. Tests of backoff and schedules drive a ManualClock instead of sleeping."""
from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""

    def wait(self, condition: threading.Condition, timeout: float | None) -> None:
        """Wait on ``condition`` (held by the caller) for at most ``timeout`` seconds of this clock."""


class SystemClock:
    def now(self) -> float:
        return time.time()

    def wait(self, condition: threading.Condition, timeout: float | None) -> None:
        condition.wait(timeout)


class ManualClock:
    """A clock that only moves when told to; waiters wake when it is advanced."""

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start
        self._lock = threading.Lock()
        self._conditions: set[threading.Condition] = set()

    def now(self) -> float:
        with self._lock:
            return self._now

    def wait(self, condition: threading.Condition, timeout: float | None) -> None:
        # The waiter sleeps until notified (a state change or advance()); a short real timeout
        # guards against a lost wake-up without making anything depend on real time.
        with self._lock:
            self._conditions.add(condition)
        condition.wait(0.05 if timeout is not None else 0.5)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds
            waiters = list(self._conditions)
        for cond in waiters:
            with cond:
                cond.notify_all()

    def set(self, epoch_seconds: float) -> None:
        self.advance(epoch_seconds - self.now())


def to_datetime(epoch_seconds: float) -> datetime:
    return datetime.fromtimestamp(epoch_seconds, tz=timezone.utc)
