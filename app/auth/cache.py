"""A short-lived, per-process cache of authenticated tokens.

Every request authenticates; without a cache that is one database round trip per request,
which the admission path cannot afford. Only successes are cached, so a new token works at
once; a revoked token keeps working in other processes for at most ``ttl`` seconds.
"""

from __future__ import annotations

import threading
import time

from app.auth.schemas import Principal


class TokenCache:
    def __init__(self, ttl: float, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def get(self, token_hash: str) -> Principal | None:
        if self.ttl <= 0:
            return None
        entry = self._entries.get(token_hash)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, token_hash: str, principal: Principal) -> None:
        if self.ttl <= 0:
            return
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[token_hash] = (time.monotonic() + self.ttl, principal)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
