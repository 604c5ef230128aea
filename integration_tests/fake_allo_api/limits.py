"""Per-key rate limits (sliding 1-second window) and the daily request quota."""

from __future__ import annotations

import math
import threading
import time
from collections import deque


def method_class(method: str) -> str:
    """Allo budgets reads (GET) and writes (everything else, so POST searches too) apart."""
    return "read" if method in ("GET", "HEAD") else "write"


class RateLimiter:
    """Sliding window of accepted request times per (key, class).

    Only accepted requests enter the window, so a client that waits
    Retry-After seconds gets through.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, str], deque] = {}

    def check(self, key: str | None, klass: str, limit: int, enforce: bool) -> tuple[bool, dict, int]:
        """Returns (allowed, headers, retry_after_seconds)."""
        now = time.monotonic()
        wall = time.time()
        if key is None:
            return True, self._headers(limit, limit, wall + 1), 0
        with self._lock:
            win = self._windows.setdefault((key, klass), deque())
            while win and win[0] <= now - 1.0:
                win.popleft()
            if enforce and len(win) >= limit:
                wait = win[0] + 1.0 - now
                retry = max(1, math.ceil(wait))
                return False, self._headers(limit, 0, wall + wait), retry
            win.append(now)
            reset = wall + (win[0] + 1.0 - now)
            return True, self._headers(limit, max(0, limit - len(win)), reset), 0

    @staticmethod
    def _headers(limit: int, remaining: int, reset: float) -> dict:
        return {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(remaining),
                "X-RateLimit-Reset": str(int(math.ceil(reset)))}

    def reset(self) -> None:
        with self._lock:
            self._windows.clear()


class DailyQuota:
    """Counts requests per key in a window that starts with the key's first counted request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._used: dict[str, list[float]] = {}  # key -> [count, window_start]

    def consume(self, key: str, limit: int | None, window: int) -> tuple[bool, int]:
        """Count one request; returns (allowed, seconds_to_reset). Refused requests are not counted."""
        now = time.time()
        with self._lock:
            entry = self._used.get(key)
            if entry is None or now >= entry[1] + window:
                entry = self._used[key] = [0, now]
            reset_in = max(1, int(math.ceil(entry[1] + window - now)))
            if limit is not None and entry[0] >= limit:
                return False, reset_in
            entry[0] += 1
            return True, reset_in

    def usage(self, window: int) -> dict[str, dict]:
        now = time.time()
        with self._lock:
            return {k: {"used": int(c), "reset_in": max(0, int(math.ceil(s + window - now)))}
                    for k, (c, s) in self._used.items()}

    def reset(self) -> None:
        with self._lock:
            self._used.clear()
