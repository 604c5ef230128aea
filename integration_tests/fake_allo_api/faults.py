"""Run-time knobs and the deterministic fault planner.

Every fault is chosen from a counter of *eligible* requests (API requests
whose path matches ``fault_paths``; by default every path except
``/v2/api/me``), never from randomness, so a test that sets
``fail_every_n=3`` knows the 3rd, 6th, ... eligible request fails. Changing
any knob restarts that counter.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Knobs:
    """Behaviour switches of the fake; all can be changed while it runs (``api.set_knobs``)."""

    latency_ms: tuple[int, int] | None = None    # uniform jitter per request, e.g. (100, 150)
    enforce_rate_limits: bool = True
    read_per_second: int = 20                   # GET budget per key (sliding 1 s window)
    write_per_second: int = 5                   # POST/PUT/PATCH/DELETE budget per key
    daily_quota: int | None = None              # requests per key per day; None = unlimited
    quota_window_seconds: int = 86400           # length of the quota "day", from the first counted request
    fail_every_n: int | None = None             # every n-th eligible request fails with fail_status
    fail_status: int = 500
    rate_limit_storm: int | None = None         # the next N eligible requests get 429, Retry-After 1
    slow_every_n: int | None = None             # every n-th eligible request sleeps slow_seconds first
    slow_seconds: float = 5.0
    drop_every_n: int | None = None             # close the socket without any response
    truncate_every_n: int | None = None         # a 200 whose JSON body is cut in half
    html_every_n: int | None = None             # an HTML proxy error page instead of JSON
    html_status: int = 502
    ignore_since_filter: bool = False           # conversations ignore last_activity_since
    ignore_date_filter: bool = False            # items search ignores date
    calls_oldest_first: list[str] | None = None  # v1 calls of these Allo numbers are served oldest first
    deleted_contacts: list[str] | None = None   # v1 contact ids still listed whose page answers CONTACT_NOT_FOUND
    drift_during_paging: bool = False           # new activity after each conversations page 1
    drift_items: int = 3                        # how many items each drift adds
    # A busy account: activity at any moment, answers in any order (see README "A busy account").
    activity_per_answer: int = 0                # n calls/SMS land right before each list answer is computed
    activity_number: str | None = None          # ... only on this Allo number (None: any number)
    activity_move_share: float = 0.6            # share of events on an existing conversation (the rest: new ones)
    answer_delay_ms: tuple[int, int] | None = None  # random extra delay per list answer, before it is computed
    busy_paths: list[str] | None = field(default=None)  # list endpoints the two knobs above apply to
    fault_paths: list[str] | None = field(default=None)  # path prefixes faults apply to
    fault_limit: int | None = None              # at most this many faulty answers after a knob change

    def updated(self, **changes: Any) -> "Knobs":
        """A copy with ``changes`` applied; TypeError on an unknown knob, ValueError on a bad value."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = set(changes) - names
        if unknown:
            raise TypeError(f"unknown knob(s): {', '.join(sorted(unknown))}; known: {', '.join(sorted(names))}")
        for name in ("latency_ms", "answer_delay_ms"):
            if name in changes and changes[name] is not None:
                lat = changes[name]
                if isinstance(lat, (int, float)):
                    lat = (lat, lat)
                lo, hi = (int(x) for x in lat)
                if lo < 0 or hi < lo:
                    raise ValueError(f"{name} must be (low, high) with 0 <= low <= high")
                changes[name] = (lo, hi)
        if "activity_per_answer" in changes:
            v = changes["activity_per_answer"]
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError("activity_per_answer must be an integer >= 0")
        if "activity_move_share" in changes:
            v = changes["activity_move_share"]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
                raise ValueError("activity_move_share must be a number from 0 to 1")
            changes["activity_move_share"] = float(v)
        if changes.get("busy_paths") is not None:
            changes["busy_paths"] = [str(p) for p in changes["busy_paths"]]
        for name in ("fail_every_n", "slow_every_n", "drop_every_n", "truncate_every_n", "html_every_n", "fault_limit"):
            v = changes.get(name)
            if v is not None and (not isinstance(v, int) or v < 1):
                raise ValueError(f"{name} must be a positive integer or None")
        if changes.get("calls_oldest_first") is not None:
            changes["calls_oldest_first"] = [str(n) for n in changes["calls_oldest_first"]]
        if changes.get("deleted_contacts") is not None:
            changes["deleted_contacts"] = [str(n) for n in changes["deleted_contacts"]]
        if changes.get("fault_paths") is not None:
            changes["fault_paths"] = [str(p) for p in changes["fault_paths"]]
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for name in ("latency_ms", "answer_delay_ms"):
            if d[name] is not None:
                d[name] = list(d[name])
        return d

    def busy(self, path: str) -> bool:
        """True when the busy-account knobs apply to ``path`` (one of Allo's paginated list endpoints)."""
        paths = BUSY_PATHS if self.busy_paths is None else self.busy_paths
        return path in paths


# Allo's paginated list endpoints: where activity and out-of-order answers can lose rows.
BUSY_PATHS = ("/v2/api/conversations", "/v2/api/conversations/items/search", "/v1/api/calls", "/v1/api/contacts")


@dataclass
class FaultDecision:
    """What to do with one request; at most one terminal fault, plus an optional delay."""

    storm: bool = False
    drop: bool = False
    html: bool = False
    fail: bool = False
    truncate: bool = False
    slow: float = 0.0

    @property
    def any(self) -> bool:
        return self.storm or self.drop or self.html or self.fail or self.truncate or self.slow > 0


class FaultPlanner:
    """Counts eligible requests and decides their fault, deterministically."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counter = 0
        self.storm_left = 0
        self.faulty_left: int | None = None

    def reset(self, knobs: Knobs) -> None:
        with self._lock:
            self.counter = 0
            self.storm_left = knobs.rate_limit_storm or 0
            self.faulty_left = knobs.fault_limit

    @staticmethod
    def eligible(knobs: Knobs, path: str) -> bool:
        if knobs.fault_paths is None:
            return path != "/v2/api/me" and not path.startswith("/v2/api/me/")
        return any(path.startswith(p) for p in knobs.fault_paths)

    def decide(self, knobs: Knobs, path: str) -> FaultDecision:
        d = FaultDecision()
        if not self.eligible(knobs, path):
            return d
        with self._lock:
            self.counter += 1
            n = self.counter
            if self.storm_left > 0:
                self.storm_left -= 1
                d.storm = True
                return d

        def hit(every: int | None) -> bool:
            return bool(every) and n % every == 0

        # One terminal fault per request, in a fixed priority order.
        if hit(knobs.drop_every_n):
            d.drop = True
        elif hit(knobs.html_every_n):
            d.html = True
        elif hit(knobs.fail_every_n):
            d.fail = True
        elif hit(knobs.truncate_every_n):
            d.truncate = True
        if hit(knobs.slow_every_n):
            d.slow = float(knobs.slow_seconds)
        if d.any and self.faulty_left is not None:
            with self._lock:
                if self.faulty_left <= 0:
                    return FaultDecision()
                self.faulty_left -= 1
        return d


HTML_PAGE = (
    "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
