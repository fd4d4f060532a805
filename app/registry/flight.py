"""Coalescing and remembering fetches: one registry round per digest however many ask.

``SingleFlight``: concurrent calls with one key share the first caller's work and result (or
error); ``NegativeCache``: a fetch that failed or found nothing is not repeated for a short
while, so a burst of admissions of an unsigned image costs the registry one round, not one
per Pod.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[Hashable, Future[T]] = {}

    def do(self, key: Hashable, work: Callable[[], T], wait: float | None = None) -> T:
        """``work()``'s result, computed once for concurrent callers with ``key``. A follower
        waits at most ``wait`` seconds (TimeoutError after), the leader runs to completion."""
        with self._lock:
            future = self._flights.get(key)
            leader = future is None
            if future is None:
                future = self._flights[key] = Future()
        if not leader:
            try:
                return future.result(timeout=wait)
            except FutureTimeout as exc:
                raise TimeoutError("waited for a fetch already in flight") from exc
        try:
            result = work()
        except BaseException as exc:
            future.set_exception(exc)
            raise
        else:
            future.set_result(result)
            return result
        finally:
            with self._lock:
                self._flights.pop(key, None)


class NegativeCache(Generic[T]):
    """key -> what a recent fetch ended with, for ``seconds`` (0 disables it)."""

    def __init__(self, seconds: float, max_entries: int = 10_000) -> None:
        self.seconds = seconds
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: dict[Hashable, tuple[float, T]] = {}

    def get(self, key: Hashable) -> T | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[0] <= time.monotonic():
                del self._entries[key]
                return None
            return entry[1]

    def put(self, key: Hashable, value: T) -> None:
        if self.seconds <= 0:
            return
        with self._lock:
            if len(self._entries) >= self.max_entries:
                now = time.monotonic()
                self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
            self._entries[key] = (time.monotonic() + self.seconds, value)

    def forget(self, key: Hashable) -> None:
        with self._lock:
            self._entries.pop(key, None)
