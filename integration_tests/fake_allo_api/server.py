"""HTTP front of the fake: auth, scopes, rate limits, quota, faults, stats, control routes.

Request pipeline (API routes): latency -> fault plan (storm, drop, html,
fail, slow) -> auth -> per-second rate limit -> daily quota -> route
(404/405) -> scope -> on a busy list endpoint: answer delay, then activity
-> endpoint handler (400 validation or 200) -> optional truncation.
``/_fake/...`` control routes skip all of it and are not counted.
"""

from __future__ import annotations

import json
import random
import socket
import sys
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .dataset import TRUTH_STREAMS, Dataset
from .endpoints import Request, find_route, path_params
from .errors import ApiError, new_request_id
from .faults import HTML_PAGE, FaultPlanner, Knobs
from .limits import DailyQuota, RateLimiter, method_class

ALL_READ_SCOPES = (
    "CONVERSATIONS_READ", "CONTACTS_READ", "PHONE_NUMBERS_READ", "USERS_READ", "TAGS_READ",
    "WEBHOOKS_READ_WRITE", "CRM_READ", "SUMMARY_TEMPLATES_READ", "ANALYTICS_READ",
)

DEFAULT_KEYS: dict[str, str] = {
    "full": "ak_live_fullaccess0001",
    "conversations_only": "ak_live_convonly00002",
    "no_conversations": "ak_live_noconv0000003",
    "trial": "ak_live_trialplan0004",
    "revoked": "ak_live_revoked000005",
}

# name -> (scopes, status); status is "active", "trial" or "revoked".
KEY_PROFILES: dict[str, tuple[tuple[str, ...], str]] = {
    "full": (ALL_READ_SCOPES, "active"),
    "conversations_only": (("CONVERSATIONS_READ",), "active"),
    "no_conversations": (tuple(s for s in ALL_READ_SCOPES if s != "CONVERSATIONS_READ"), "active"),
    "trial": (ALL_READ_SCOPES, "trial"),
    "revoked": (ALL_READ_SCOPES, "revoked"),
}


@dataclass
class ApiKey:
    name: str
    key: str
    scopes: tuple[str, ...]
    status: str = "active"

    @property
    def id(self) -> str:
        return "api-" + self.key[-12:]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 256
    api: "FakeAlloApi"

    def handle_error(self, request, client_address) -> None:
        # Client disconnects are normal (timeouts, drop faults); stay quiet.
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, OSError)) and not self.api.verbose:
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"       # keep-alive; every response sends Content-Length
    disable_nagle_algorithm = True      # else ~40 ms per keep-alive response
    server: _Server

    def version_string(self) -> str:
        return "FakeAllo/1.0"

    def setup(self) -> None:
        super().setup()
        self.server.api._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.api._track(self.connection, False)

    def do_GET(self) -> None:
        self.server.api._handle(self)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        if self.server.api.verbose:
            super().log_message(format, *args)


class FakeAlloApi:
    """A local, deterministic stand-in for api.withallo.com.

    ``FakeAlloApi(dataset=Dataset(seed=42, scale="small"), knobs=Knobs()).start()``
    serves on a free loopback port (``api.url``); ``with FakeAlloApi() as api:``
    starts and stops it.
    """

    def __init__(self, dataset: Dataset | None = None, knobs: Knobs | None = None, *,
                 host: str = "127.0.0.1", port: int = 0, verbose: bool = False,
                 log_limit: int = 200_000) -> None:
        self.dataset = dataset if dataset is not None else Dataset()
        self.knobs = knobs if knobs is not None else Knobs()
        self.host, self.port, self.verbose = host, port, verbose
        self.keys: dict[str, str] = {}
        self._keys_by_value: dict[str, ApiKey] = {}
        for name, key in DEFAULT_KEYS.items():
            scopes, status = KEY_PROFILES[name]
            self.add_key(name, key, scopes, status)
        self._knob_lock = threading.Lock()
        self._faults = FaultPlanner()
        self._faults.reset(self.knobs)
        self._limiter = RateLimiter()
        self._quota = DailyQuota()
        self._latency_rng = random.Random(self.dataset.seed)
        self._latency_lock = threading.Lock()
        self._delay_rng = random.Random(f"answer-delay:{self.dataset.seed}")
        self._stats_lock = threading.Lock()
        self._log_limit = log_limit
        self._reset_stats_data()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()

    # ------------------------------------------------------------ lifecycle

    def start(self) -> "FakeAlloApi":
        if self._server is not None:
            return self
        server = _Server((self.host, self.port), _Handler)
        server.api = self
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"fake-allo-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        # Idle keep-alive connections would keep handler threads alive.
        with self._conns_lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "FakeAlloApi":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._conns_lock:
            (self._conns.add if add else self._conns.discard)(conn)

    # ------------------------------------------------------------ controls

    def add_key(self, name: str, key: str, scopes: tuple[str, ...] | list[str], status: str = "active") -> None:
        """Register another API key (status: active, trial or revoked)."""
        if status not in ("active", "trial", "revoked"):
            raise ValueError("status must be active, trial or revoked")
        self.keys[name] = key
        self._keys_by_value[key] = ApiKey(name, key, tuple(scopes), status)

    def set_knobs(self, **changes: Any) -> Knobs:
        """Change knobs at run time. Restarts the fault counter; a new daily_quota restarts quota counts."""
        number = changes.get("activity_number")
        if number is not None and number not in self.dataset.numbers_by_number:
            raise ValueError(f"activity_number {number!r} is not a number of this workspace")
        with self._knob_lock:
            self.knobs = self.knobs.updated(**changes)
            self._faults.reset(self.knobs)
            if "daily_quota" in changes or "quota_window_seconds" in changes:
                self._quota.reset()
            if {"read_per_second", "write_per_second", "enforce_rate_limits"} & set(changes):
                self._limiter.reset()
            return self.knobs

    def truth(self, stream: str, first_day: Any = None, last_day: Any = None) -> list[dict]:
        """Dataset.truth: the days of the analytics streams default to a sync started now."""
        return self.dataset.truth(stream, first_day=first_day, last_day=last_day)

    def add_activity(self, n: int = 5, now: Any = None, allo_number: str | None = None,
                     move_share: float = 0.6) -> dict:
        return self.dataset.add_activity(n=n, now=now, allo_number=allo_number, move_share=move_share)

    def add_number(self, number: str, conversations: int = 100, items: int | None = None,
                   name: str | None = None, newest_days_ago: float = 2) -> dict:
        """A new Allo number appears in the workspace with its own past history (see Dataset.add_number)."""
        return self.dataset.add_number(number, conversations=conversations, items=items, name=name,
                                       newest_days_ago=newest_days_ago)

    def touched(self) -> dict:
        """Conversation keys, item ids, v1 call and contact ids, numbers changed since reset_touched()."""
        return self.dataset.touched()

    def reset_touched(self) -> dict:
        return self.dataset.reset_touched()

    def _before_answer(self, knobs: Knobs, path: str) -> dict:
        """Busy account: on a list endpoint, wait a random extra delay (so a later request can be computed
        and answered first), then let activity land, right before the answer is computed."""
        extra: dict = {}
        if not knobs.busy(path):
            return extra
        if knobs.answer_delay_ms:
            with self._latency_lock:
                delay = self._delay_rng.uniform(*knobs.answer_delay_ms) / 1000
            time.sleep(delay)
            extra["delay_ms"] = round(delay * 1000, 2)
        n = knobs.activity_per_answer
        number = knobs.activity_number
        if n and (number is None or number in self.dataset.numbers_by_number):
            added = self.dataset.add_activity(n=n, allo_number=number, move_share=knobs.activity_move_share)
            extra["activity"] = len(added["items"])
            with self._stats_lock:
                self._activity_events += len(added["items"])
        return extra

    def fill_pending_summaries(self) -> list[str]:
        return self.dataset.fill_pending_summaries()

    def delete_conversation(self, allo_number: str, contact_number: str) -> int:
        return self.dataset.delete_conversation(allo_number, contact_number)

    def after_conversations_page_one(self, allo_number: str) -> None:
        """Drift hook: new activity lands on the number being paged, shifting later pages."""
        if self.knobs.drift_during_paging and allo_number in self.dataset.numbers_by_number:
            added = self.dataset.add_activity(n=self.knobs.drift_items, allo_number=allo_number)
            with self._stats_lock:
                self._drift_items += len(added["items"])

    # ------------------------------------------------------------ stats

    def _reset_stats_data(self) -> None:
        self._requests = 0
        self._by_endpoint: dict[str, int] = {}
        self._by_status: dict[str, int] = {}
        self._log: deque = deque(maxlen=self._log_limit)
        self._drift_items = 0
        self._activity_events = 0

    def reset_stats(self) -> None:
        """Clear request counters and the log (quota usage and rate windows are kept)."""
        with self._stats_lock:
            self._reset_stats_data()

    def stats(self) -> dict:
        names = {k.key: k.name for k in self._keys_by_value.values()}
        with self._stats_lock:
            out = {"requests": self._requests, "by_endpoint": dict(self._by_endpoint),
                   "by_status": dict(self._by_status), "log": [dict(e) for e in self._log],
                   "drift_items_added": self._drift_items, "activity_events": self._activity_events}
        window = self.knobs.quota_window_seconds
        out["quota"] = {names.get(k, k): dict(v, limit=self.knobs.daily_quota)
                        for k, v in self._quota.usage(window).items()}
        return out

    def _record(self, method: str, path: str, query: dict, raw_body: bytes, status: Any, key_name: str | None,
                t0: float, extra: dict | None = None) -> None:
        body = None
        if raw_body:
            try:
                body = json.loads(raw_body)
            except (ValueError, UnicodeDecodeError):
                body = None
        entry = {"method": method, "path": path, "query": {k: v[0] if len(v) == 1 else v for k, v in query.items()},
                 "body": body, "status": status, "t": t0, "key": key_name,
                 "ms": round((time.time() - t0) * 1000, 2)}
        if extra:
            entry.update(extra)
        with self._stats_lock:
            self._requests += 1
            ep = f"{method} {path}"
            self._by_endpoint[ep] = self._by_endpoint.get(ep, 0) + 1
            st = str(status)
            self._by_status[st] = self._by_status.get(st, 0) + 1
            self._log.append(entry)

    # ------------------------------------------------------------ request handling

    @staticmethod
    def _read_body(h: _Handler) -> bytes:
        if "chunked" in (h.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                line = h.rfile.readline(65537)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while h.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(h.rfile.read(size))
                h.rfile.readline(65537)
            return b"".join(chunks)
        length = int(h.headers.get("Content-Length") or 0)
        return h.rfile.read(length) if length > 0 else b""

    def _send(self, h: _Handler, status: int, body: bytes, ctype: str = "application/json",
              headers: dict | None = None) -> None:
        try:
            h.send_response(status)
            h.send_header("Content-Type", ctype)
            h.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(body)
            h.wfile.flush()
        except (ConnectionError, TimeoutError, OSError):
            h.close_connection = True

    @staticmethod
    def _json_bytes(payload: Any) -> bytes:
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def _authenticate(self, header: str | None) -> ApiKey:
        if header is None or not header.strip():
            raise ApiError("UNAUTHORIZED")
        value = header.strip()
        scheme, _, rest = value.partition(" ")
        if scheme.lower() == "bearer":
            raise ApiError("API_KEY_INVALID", "Invalid API key.", bare=True)
        if scheme.lower() == "api-key":
            value = rest.strip()
        key = self._keys_by_value.get(value)
        if key is None:
            raise ApiError("API_KEY_INVALID", "The API key provided is invalid. Check your API key in Settings > API.")
        if key.status == "revoked":
            raise ApiError("API_KEY_REVOKED")
        if key.status == "trial":
            raise ApiError("API_KEY_TRIAL_NOT_ALLOWED")
        return key

    def _handle(self, h: _Handler) -> None:
        t0 = time.time()
        method = h.command
        try:
            parts = urlsplit(h.path)
            path = unquote(parts.path) or "/"
            query = parse_qs(parts.query, keep_blank_values=True)
            raw = self._read_body(h)
        except Exception:  # malformed request line/body: answer and drop the connection
            h.close_connection = True
            self._send(h, 400, b'{"error":{"type":"validation_error","code":"INVALID_REQUEST_BODY"}}')
            return
        if path.startswith("/_fake/"):
            try:
                status, payload = self._control(method, path, raw)
            except Exception as exc:  # never let a control bug kill the connection silently
                status, payload = 500, {"error": f"{type(exc).__name__}: {exc}"}
            self._send(h, status, self._json_bytes(payload))
            return
        try:
            self._handle_api(h, method, path, query, raw, t0)
        except Exception:
            traceback.print_exc()
            h.close_connection = True

    def _handle_api(self, h: _Handler, method: str, path: str, query: dict, raw: bytes, t0: float) -> None:
        knobs = self.knobs
        family = "v1" if path.startswith("/v1/") else "v2"
        request_id = h.headers.get("X-Request-Id") or new_request_id()
        klass = method_class(method)
        limit = knobs.read_per_second if klass == "read" else knobs.write_per_second
        if knobs.latency_ms:
            with self._latency_lock:
                delay = self._latency_rng.uniform(*knobs.latency_ms) / 1000
            time.sleep(delay)
        decision = self._faults.decide(knobs, path)
        if decision.slow:
            time.sleep(decision.slow)
        if decision.drop:
            self._record(method, path, query, raw, "dropped", None, t0)
            h.close_connection = True
            try:
                h.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        _ok, rl_headers, _ = self._limiter.check(None, klass, limit, False)
        headers = {"X-Request-Id": request_id, **rl_headers}
        key: ApiKey | None = None
        extra: dict = {}
        status, ctype = 200, "application/json"
        try:
            if decision.html:
                status = knobs.html_status
                reason = h.responses.get(status, ("Error",))[0]
                body = HTML_PAGE.format(status=status, reason=reason).encode()
                self._send(h, status, body, "text/html", headers)
                self._record(method, path, query, raw, status, None, t0)
                return
            if decision.storm:
                headers["X-RateLimit-Remaining"] = "0"
                raise ApiError("RATE_LIMIT_EXCEEDED",
                               f"You have exceeded the rate limit of {limit} requests per second.",
                               retry_after=1, v1_details=[{"message": f"limit={limit};type=SECOND;reset_in=1",
                                                           "field": "SECOND"}])
            if decision.fail:
                raise ApiError("INTERNAL_SERVER_ERROR", status=knobs.fail_status)
            key = self._authenticate(h.headers.get("Authorization"))
            allowed, rl_headers, retry = self._limiter.check(key.key, klass, limit, knobs.enforce_rate_limits)
            headers.update(rl_headers)
            if not allowed:
                raise ApiError("RATE_LIMIT_EXCEEDED",
                               f"You have exceeded the rate limit of {limit} requests per second.",
                               retry_after=retry,
                               v1_details=[{"message": f"limit={limit};type=SECOND;reset_in={retry}",
                                            "field": "SECOND"}])
            ok, reset_in = self._quota.consume(key.key, knobs.daily_quota, knobs.quota_window_seconds)
            if not ok:
                raise ApiError("API_KEY_QUOTA_EXCEEDED",
                               f"You have exceeded your daily quota of {knobs.daily_quota} requests. "
                               f"It resets in {reset_in} seconds.",
                               retry_after=reset_in,
                               v1_details=[{"message": f"limit={knobs.daily_quota};type=DAILY;reset_in={reset_in}",
                                            "field": "DAILY"}])
            r = find_route(method, path)
            if r.scope is not None and r.scope not in key.scopes:
                raise ApiError("API_KEY_INSUFFICIENT_SCOPE",
                               f"This API key is missing the required scope {r.scope}.", param="scope",
                               suggestion=f"Create an API key with the {r.scope} scope in Settings > API.",
                               v1_details=[{"message": f"required={r.scope}", "field": "scope"}])
            req = Request(method=method, path=r.path, query=query, raw_body=raw, family=family, api=self, key=key,
                          path_params=path_params(r.path, path))
            extra = self._before_answer(knobs, r.path)
            # When the answer's content was computed: with answer_delay_ms, not the arrival order.
            extra["computed"] = time.time()
            body = self._json_bytes(r.handler(req))
        except ApiError as e:
            status = e.status
            body = self._json_bytes(e.body(family, request_id))
            if e.retry_after is not None:
                headers["Retry-After"] = str(e.retry_after)
        except Exception:
            traceback.print_exc()
            err = ApiError("INTERNAL_SERVER_ERROR")
            status, body = err.status, self._json_bytes(err.body(family, request_id))
        if decision.truncate and status == 200:
            body = body[: len(body) // 2]
        self._send(h, status, body, ctype, headers)
        self._record(method, path, query, raw, status, key.name if key else None, t0, extra)

    # ------------------------------------------------------------ /_fake control routes

    def _control(self, method: str, path: str, raw: bytes) -> tuple[int, Any]:
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            return 400, {"error": "body must be JSON"}
        if not isinstance(body, dict):
            return 400, {"error": "body must be a JSON object"}
        if method == "GET" and path.startswith("/_fake/truth/"):
            stream = path[len("/_fake/truth/"):]
            if stream not in TRUTH_STREAMS:
                return 404, {"error": f"unknown stream {stream!r}", "streams": list(TRUTH_STREAMS)}
            try:
                return 200, self.truth(stream)
            except NotImplementedError as exc:
                return 501, {"error": str(exc)}
        if method == "POST" and path == "/_fake/activity":
            try:
                return 200, self.add_activity(n=int(body.get("n", 5)), now=body.get("now"),
                                              allo_number=body.get("allo_number"),
                                              move_share=float(body.get("move_share", 0.6)))
            except (KeyError, ValueError, TypeError) as exc:
                return 400, {"error": str(exc)}
        if method == "GET" and path == "/_fake/touched":
            return 200, self.touched()
        if method == "POST" and path == "/_fake/touched/reset":
            return 200, self.reset_touched()
        if method == "POST" and path == "/_fake/numbers":
            try:
                return 200, self.add_number(body["number"], conversations=int(body.get("conversations", 100)),
                                            items=body.get("items"), name=body.get("name"),
                                            newest_days_ago=float(body.get("newest_days_ago", 2)))
            except KeyError:
                return 400, {"error": "body must name the new number: {\"number\": \"+1...\"}"}
            except (ValueError, TypeError) as exc:
                return 400, {"error": str(exc)}
        if method == "POST" and path == "/_fake/summaries/fill":
            return 200, {"items": self.fill_pending_summaries()}
        if path == "/_fake/knobs":
            if method == "POST":
                try:
                    return 200, {"knobs": self.set_knobs(**body).as_dict()}
                except (TypeError, ValueError) as exc:
                    return 400, {"error": str(exc)}
            return 200, {"knobs": self.knobs.as_dict()}
        if method == "GET" and path == "/_fake/stats":
            return 200, self.stats()
        if method == "POST" and path == "/_fake/stats/reset":
            self.reset_stats()
            return 200, {"ok": True}
        if method == "POST" and path == "/_fake/conversations/delete":
            try:
                return 200, {"deleted_items": self.delete_conversation(body["allo_number"], body["contact_number"])}
            except KeyError:
                return 404, {"error": "no such conversation (allo_number, contact_number)"}
        if method == "GET" and path == "/_fake/dataset":
            ds = self.dataset
            return 200, {"seed": ds.seed, "params": ds.params, "now": ds.now.isoformat().replace("+00:00", "Z"),
                         "start": ds.start.isoformat().replace("+00:00", "Z"),
                         "numbers": [a.number for a in ds.numbers], "version": ds.version}
        return 404, {"error": f"unknown control route {method} {path}"}
