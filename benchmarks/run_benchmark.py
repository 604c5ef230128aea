"""Performance benchmark of source-allo against the fake Allo API (`./run.sh bench`; not part of the tests).

What it does (details and definitions in benchmarks/README.md):

1. Starts the fake Allo API in its own process (its CPU is not the connector's) with 100-150 ms of
   jittered latency, the documented per-key rate limits enforced (20 GET/s, 5 POST/s) and a large account.
2. Runs the real `source-allo read` as a subprocess and measures wall time, CPU seconds and peak RSS of
   that child (os.wait4 rusage), RECORD lines (counted, never kept), requests and 429s (the fake's
   stats), for (a) a full sync of conversations, (b) a full sync of conversation_items, (c) an
   incremental sync of both with the state of (a) and (b) and no new activity, (w) a full sync of every
   stream in one `read`. Each of these runs `--rounds` times; the tables give medians.
3. CPU-only case: the same fake with no latency and no rate limits, the connector's pacing lifted
   (benchmarks/unpaced_source.py); its full read of conversation_items against benchmarks/baseline_loop.py
   (plain requests + orjson, same pages).
4. Memory flatness: peak RSS of conversation_items reads of ~1/10 of the items and of all of them.
5. Prints the tables with a pass/fail column per target and writes them to benchmarks/results/latest.md.

    .venv/bin/python benchmarks/run_benchmark.py            # full benchmark (about 25 minutes)
    .venv/bin/python benchmarks/run_benchmark.py --quick    # smoke run, about 3 minutes
    .venv/bin/python benchmarks/run_benchmark.py --source-allo /other/venv/bin/source-allo --cases whole
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import requests

REPO = Path(__file__).resolve().parent.parent

PYTHON = sys.executable
SOURCE_ALLO = str(Path(sys.executable).with_name("source-allo"))   # the default command measured
BASELINE = str(REPO / "benchmarks" / "baseline_loop.py")
UNPACED = str(REPO / "benchmarks" / "unpaced_source.py")
RESULTS = REPO / "benchmarks" / "results"
PAGE = 100
GET_RATE, POST_RATE = 20, 5      # Allo's documented per-key limits, enforced by the fake
ITEMS_PATH = "/v2/api/conversations/items/search"
CONV_PATH = "/v2/api/conversations"
CALLS_PATH = "/v1/api/calls"
CONTACTS_PATH = "/v1/api/contacts"
ANALYTICS_PATH = "/v2/api/analytics/overview"
ME_PATH = "/v2/api/me"
V2_NUMBERS = "/v2/api/numbers"      # the phone_numbers stream (and the numbers listing before the manifest-only design)
V1_NUMBERS = "/v1/api/numbers"      # the numbers listing of each number-partitioned stream
FIXED_PATHS = (ME_PATH, V2_NUMBERS, V1_NUMBERS)
WINDOW_DAYS = 30     # the connector's default conversation_items_window_days
LOOKBACK_DAYS = 1    # the connector's default lookback_window_days
TEAM_METRICS_MAX_DAYS = 365   # team_metrics_daily reads at most this many days back, one POST per day
# The endpoint of each stream (method, path): its requests in the whole-sync case, which reads these
# streams (the connector's streams the benchmark knows how to count; a stream the connector does not
# have is left out, and the report names streams the connector has that are not measured).
STREAM_ENDPOINTS: Dict[str, Tuple[str, str]] = {
    "conversations": ("GET", CONV_PATH),
    "conversation_items": ("POST", ITEMS_PATH),
    "calls": ("GET", CALLS_PATH),
    "phone_numbers": ("GET", V2_NUMBERS),
    "users": ("GET", "/v2/api/users"),
    "tags": ("GET", "/v2/api/tags"),
    "summary_templates": ("GET", "/v2/api/summary_templates"),
    "webhooks": ("GET", "/v2/api/webhooks"),
    "webhook_event_types": ("GET", "/v2/api/webhooks/event_types"),
    "crm_people": ("POST", "/v2/api/crm/people/search"),
    "crm_companies": ("POST", "/v2/api/crm/companies/search"),
    "crm_deals": ("POST", "/v2/api/crm/deals/search"),
    "contacts": ("GET", CONTACTS_PATH),
    "team_metrics_daily": ("POST", ANALYTICS_PATH),
}
ALL_STREAMS = list(STREAM_ENDPOINTS)
NUMBER_PARTITIONED = ("conversations", "conversation_items", "calls")   # each lists the numbers itself

_STREAM_RE = re.compile(rb'"stream":"([^"]+)"')


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ============================================================================ the fake API process


class FakeServer:
    """`python -m integration_tests.fake_allo_api` in a child process, driven through its /_fake routes."""

    def __init__(self, scale: List[str], seed: int, latency: str, now: str, log_path: Path):
        cmd = [PYTHON, "-m", "integration_tests.fake_allo_api", "--seed", str(seed), "--scale", *scale,
               "--latency-ms", latency, "--enforce-rate-limits", "--now", now]
        self.cmd = cmd
        self._stderr = open(log_path, "w")
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=self._stderr, text=True)
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"the fake API did not start; see {log_path}")
        info = json.loads(line)
        self.url: str = info["url"]
        self.key: str = info["keys"]["full"]
        self.http = requests.Session()
        self.dataset: dict = self.get("/_fake/dataset")

    # control routes: not counted, not rate limited
    def get(self, path: str) -> Any:
        response = self.http.get(self.url + path, timeout=120)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: Optional[dict] = None) -> Any:
        response = self.http.post(self.url + path, json=body or {}, timeout=120)
        response.raise_for_status()
        return response.json()

    def knobs(self, **changes: Any) -> dict:
        return self.post("/_fake/knobs", changes)["knobs"]

    def stats(self) -> dict:
        return self.get("/_fake/stats")

    def reset_stats(self) -> None:
        self.post("/_fake/stats/reset")

    # API routes (counted and rate limited: only used between measured runs, before a stats reset)
    def api(self, method: str, path: str, *, params: Optional[dict] = None, body: Optional[dict] = None) -> dict:
        for _ in range(20):
            response = self.http.request(method, self.url + path, params=params, json=body, timeout=60,
                                         headers={"Authorization": f"Api-Key {self.key}"})
            if response.status_code == 429:
                time.sleep(float(response.headers.get("Retry-After") or 1))
                continue
            response.raise_for_status()
            return response.json()
        raise RuntimeError(f"{method} {path}: still rate limited after 20 attempts")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._stderr.close()


# ============================================================================ one measured child process


@dataclass
class Run:
    name: str
    returncode: int = 0
    wall: float = 0.0
    cpu: float = 0.0
    maxrss_mb: float = 0.0
    records: Dict[str, int] = field(default_factory=dict)
    states: Dict[str, dict] = field(default_factory=dict)
    errors: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)
    spawn_time: float = 0.0
    read_phase: Optional[float] = None     # first STREAM_STATUS STARTED -> last COMPLETE (CDK's own timestamps)
    stats: dict = field(default_factory=dict)
    stderr_tail: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.errors

    @property
    def total_records(self) -> int:
        return sum(self.records.values())

    # ------------------------------------------------------------------ from the fake's request log
    @property
    def log(self) -> List[dict]:
        return self.stats.get("log", [])

    @property
    def requests(self) -> int:
        return int(self.stats.get("requests", 0))

    @property
    def rate_limited(self) -> int:
        return int(self.stats.get("by_status", {}).get("429", 0))

    def count(self, path: str, method: Optional[str] = None) -> int:
        return sum(1 for e in self.log if e["path"] == path and (method is None or e["method"] == method))

    def count_method(self, method: str) -> int:
        return sum(1 for e in self.log if e["method"] == method)

    @property
    def api_span(self) -> Optional[float]:
        if not self.log:
            return None
        return max(e["t"] + e["ms"] / 1000 for e in self.log) - min(e["t"] for e in self.log)

    @property
    def startup(self) -> Optional[float]:
        return min(e["t"] for e in self.log) - self.spawn_time if self.log else None

    def endpoint_times(self, method: str, path: str, last_only: bool = False) -> Optional[Tuple[float, float]]:
        """First request's arrival and last response's end for one endpoint, in seconds since the spawn
        (`last_only`: of its last request alone)."""
        entries = sorted((e for e in self.log if e["path"] == path and e["method"] == method), key=lambda e: e["t"])
        if not entries:
            return None
        if last_only:
            entries = entries[-1:]
        return (min(e["t"] for e in entries) - self.spawn_time,
                max(e["t"] + e["ms"] / 1000 for e in entries) - self.spawn_time)

    def item_partitions(self) -> List[tuple]:
        """(allo_number or None, date.from, date.to) of every conversation_items list the connector read."""
        seen: Dict[tuple, None] = {}
        for e in self.log:
            body = e.get("body")
            if e["path"] == ITEMS_PATH and isinstance(body, dict) and isinstance(body.get("date"), dict):
                seen[(body.get("allo_number"), body["date"].get("from"), body["date"].get("to"))] = None
        return sorted(seen, key=lambda k: (k[0] or "", k[1] or "", k[2] or ""))

    def items_per_number(self) -> bool:
        """Whether this run read conversation_items per Allo number (the body names one)."""
        return any(isinstance(e.get("body"), dict) and e["body"].get("allo_number")
                   for e in self.log if e["path"] == ITEMS_PATH)

    def chains(self) -> Dict[tuple, List[dict]]:
        """The requests of each paginated list (one partition of one stream), in arrival order."""
        out: Dict[tuple, List[dict]] = {}
        for e in sorted(self.log, key=lambda e: e["t"]):
            key = partition_key(e)
            if key is not None:
                out.setdefault(key, []).append(e)
        return out

    def client_gap_ms(self, paths: Sequence[str] = (CONV_PATH, ITEMS_PATH)) -> Optional[float]:
        """Median time from the end of a data response to the next request of the same list (Allo number,
        date window): the connector's own per-page time (parsing, records, pacing waits)."""
        gaps = [b["t"] - (a["t"] + a["ms"] / 1000)
                for chain in self.chains().values() if chain[0]["path"] in paths
                for a, b in zip(chain, chain[1:])]
        return statistics.median(gaps) * 1000 if gaps else None

    def server_ms(self, paths: Sequence[str] = (CONV_PATH, ITEMS_PATH)) -> Optional[float]:
        ms = [e["ms"] for e in self.log if e["path"] in paths]
        return statistics.median(ms) if ms else None

    def state_messages(self) -> List[dict]:
        return [{"type": "STREAM", "stream": s["stream"]} for s in self.states.values()]

    @property
    def cpu_per_1k(self) -> Optional[float]:
        return self.cpu / self.total_records * 1000 if self.total_records else None


def partition_key(entry: dict) -> Optional[tuple]:
    """Which paginated list a request belongs to: (stream path, Allo number[, date window])."""
    path = entry["path"]
    query = entry.get("query") or {}
    body = entry.get("body") if isinstance(entry.get("body"), dict) else {}
    if path in (CONV_PATH, CALLS_PATH):
        return (path, query.get("allo_number"))
    if path == ITEMS_PATH:
        window = body.get("date") if isinstance(body.get("date"), dict) else {}
        return (path, body.get("allo_number"), window.get("from"), window.get("to"))
    if path in (CONTACTS_PATH, STREAM_ENDPOINTS["crm_people"][1], STREAM_ENDPOINTS["crm_companies"][1],
                STREAM_ENDPOINTS["crm_deals"][1]):
        return (path,)
    return None


def median_of(runs: Sequence[Run], value: Callable[[Run], Optional[float]]) -> Optional[float]:
    values = [v for v in (value(r) for r in runs) if v is not None]
    return statistics.median(values) if values else None


def run_child(name: str, cmd: List[str], fake: Optional[FakeServer]) -> Run:
    """Runs `cmd`, counts its RECORD lines as they stream by, and measures that one child (wait4)."""
    run = Run(name=name)
    if fake is not None:
        fake.reset_stats()
    with tempfile.TemporaryFile() as err:
        run.spawn_time = time.time()
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=err, bufsize=1 << 20)
        started = completed = None
        for line in proc.stdout:
            if line.startswith(b'{"type":"RECORD"'):
                match = _STREAM_RE.search(line, 0, 200)
                stream = match.group(1).decode() if match else "?"
                run.records[stream] = run.records.get(stream, 0) + 1
                continue
            if not line.startswith(b"{"):
                continue
            try:
                message = json.loads(line)
            except ValueError:
                continue
            kind = message.get("type")
            if kind == "STATE":
                state = message["state"]
                if state.get("type") == "STREAM":
                    run.states[state["stream"]["stream_descriptor"]["name"]] = state
            elif kind == "TRACE":
                trace = message["trace"]
                if trace.get("type") == "ERROR":
                    run.errors.append(trace["error"].get("message") or str(trace["error"]))
                elif trace.get("type") == "STREAM_STATUS":
                    status = trace["stream_status"]["status"]
                    if status == "STARTED" and started is None:
                        started = trace["emitted_at"] / 1000
                    elif status == "COMPLETE":
                        completed = trace["emitted_at"] / 1000
            elif kind == "LOG" and message["log"].get("level") in ("WARN", "ERROR", "FATAL"):
                if len(run.warnings) < 20:
                    run.warnings.append(message["log"]["message"][:300])
        _, status, usage = os.wait4(proc.pid, 0)
        run.wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        run.returncode = proc.returncode
        run.cpu = usage.ru_utime + usage.ru_stime
        run.maxrss_mb = usage.ru_maxrss / 1024  # KiB on Linux
        if started is not None and completed is not None:
            run.read_phase = completed - started
        err.seek(0)
        run.stderr_tail = err.read()[-3000:].decode(errors="replace")
    if fake is not None:
        run.stats = fake.stats()
        # The fake's request log (method, path, body, status, arrival time, duration), for timeline analysis.
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60]
        (RESULTS / f"{slug}.requests.json").write_text(json.dumps(run.stats.get("log", [])))
    verdict = "ok" if run.returncode == 0 and not run.errors else f"FAILED (exit {run.returncode})"
    log(f"{name}: {run.total_records} records, {run.wall:.1f} s wall, {run.cpu:.1f} s CPU, "
        f"{run.maxrss_mb:.0f} MB peak RSS, {run.requests} requests, {run.rate_limited} x 429 -- {verdict}")
    if run.returncode != 0 or run.errors:
        for message in run.errors[:3]:
            log(f"  error: {message[:400]}")
        if run.stderr_tail.strip():
            log(f"  stderr: {run.stderr_tail[-800:]}")
    return run


def source_cmd(command: str, workdir: Path, tag: str, config: dict, streams: List[str], state: Optional[list] = None,
               unpaced: bool = False) -> List[str]:
    """`source-allo read` for these streams (incremental where the connector supports it); `unpaced` runs
    it through benchmarks/unpaced_source.py with the same interpreter (the CPU-only and memory cases)."""
    paths = {}
    for kind, payload in (("config", config), ("catalog", catalog_for(command, config, streams)), ("state", state)):
        if payload is None:
            continue
        path = workdir / f"{tag}.{abs(hash(command)) % 10_000:04d}.{kind}.json"
        path.write_text(json.dumps(payload))
        paths[kind] = str(path)
    cmd = [interpreter_of(command), UNPACED] if unpaced else [command]
    cmd += ["read", "--config", paths["config"], "--catalog", paths["catalog"]]
    if "state" in paths:
        cmd += ["--state", paths["state"]]
    return cmd


_DISCOVERED: Dict[str, Dict[str, dict]] = {}


def discovered(command: str, config: dict) -> Dict[str, dict]:
    """The connector's own `discover` (no request is sent): its streams, sync modes, cursors and keys."""
    if command not in _DISCOVERED:
        with tempfile.NamedTemporaryFile("w", suffix=".json") as handle:
            json.dump(config, handle)
            handle.flush()
            out = subprocess.run([command, "discover", "--config", handle.name], capture_output=True, text=True, timeout=300)
        streams = {}
        for line in out.stdout.splitlines():
            if line.startswith("{") and '"CATALOG"' in line:
                streams = {s["name"]: s for s in json.loads(line)["catalog"]["streams"]}
        if not streams:
            raise SystemExit(f"{command} discover gave no catalog (exit {out.returncode}): {out.stderr[-500:]}")
        _DISCOVERED[command] = streams
    return _DISCOVERED[command]


def catalog_for(command: str, config: dict, streams: List[str]) -> dict:
    """A configured catalog as Airbyte builds it: incremental (append + dedup) with the source's cursor where
    the stream supports it, full refresh otherwise."""
    entries = []
    for name in streams:
        stream = discovered(command, config)[name]
        cursor = stream.get("default_cursor_field") or []
        incremental = "incremental" in (stream.get("supported_sync_modes") or []) and bool(cursor)
        key = stream.get("source_defined_primary_key") or []
        entries.append({"stream": stream, "sync_mode": "incremental" if incremental else "full_refresh",
                        "destination_sync_mode": "append_dedup" if incremental and key else "overwrite",
                        "cursor_field": cursor if incremental else [], "primary_key": key})
    return {"streams": entries}


def interpreter_of(script: str) -> str:
    """The Python a console script runs with (its shebang), so that a wrapper imports the same package."""
    try:
        with open(script, "rb") as handle:
            first = handle.readline().decode(errors="replace").strip()
    except OSError:
        first = ""
    if first.startswith("#!") and "python" in first:
        return first[2:].strip().split()[0]
    sibling = Path(script).with_name("python")
    return str(sibling) if sibling.exists() else PYTHON


# ============================================================================ helpers


def pages(n: int) -> int:
    return math.ceil(n / PAGE)


def today() -> date:
    return datetime.now(timezone.utc).date()


def tomorrow() -> date:
    return today() + timedelta(days=1)


def connector_windows(start: date, end: date, days: int = WINDOW_DAYS) -> List[tuple]:
    out, lo = [], start
    while lo <= end:
        hi = min(lo + timedelta(days=days - 1), end)
        out.append((lo.isoformat(), hi.isoformat()))
        lo = hi + timedelta(days=1)
    return out


def items_between(fake: FakeServer, lo: str, hi: str, number: Optional[str] = None) -> int:
    body = {"sort": "DATE_ASC", "type": "ALL", "date": {"from": lo, "to": hi}, "page": 1, "size": 1}
    if number:
        body["allo_number"] = number
    return int(fake.api("POST", ITEMS_PATH, body=body)["pagination"]["total_count"])


def v1_rows(fake: FakeServer, path: str, params: Optional[dict] = None) -> Tuple[int, int]:
    """(rows, pages at size 100) of a v1 list (0-indexed pages, total_pages but no row count)."""
    def page(n: int) -> dict:
        data = fake.api("GET", path, params={**(params or {}), "page": n, "size": PAGE})["data"]
        return data
    first = page(0)
    meta = first.get("metadata") or {}
    total_pages = int((meta.get("pagination") or meta).get("total_pages") or 0)
    if total_pages <= 1:
        return len(first.get("results") or []), total_pages
    last = page(total_pages - 1)
    return (total_pages - 1) * PAGE + len(last.get("results") or []), total_pages


@dataclass
class Account:
    """What a perfect client must read on the fake's account: rows and pages per list."""

    numbers: List[str]
    start_day: str
    conv_counts: Dict[str, int]
    item_windows: List[tuple]                    # the connector's 30-day windows from start_date to tomorrow
    item_counts: Dict[tuple, int]                # (allo_number, from, to) -> rows
    item_window_counts: Dict[tuple, int]         # (None, from, to) -> rows of every number
    total_items: int
    call_counts: Dict[str, Tuple[int, int]]      # allo_number -> (rows, pages)
    contacts: Tuple[int, int]
    crm_counts: Dict[str, int]
    truth_counts: Dict[str, int]
    team_days: int

    @property
    def total_conv(self) -> int:
        return sum(self.conv_counts.values())

    def expected(self, stream: str) -> Optional[int]:
        if stream == "conversations":
            return self.total_conv
        if stream == "conversation_items":
            return self.total_items
        if stream == "calls":
            return sum(rows for rows, _ in self.call_counts.values())
        if stream == "contacts":
            return self.contacts[0]
        if stream in self.crm_counts:
            return self.crm_counts[stream]
        return self.truth_counts.get(stream)   # None for team_metrics_daily: the fake has no truth for it

    def minimum(self, stream: str) -> int:
        """Fewest requests that read `stream` whole with the connector's partitions, at 100 rows a page
        (Allo's maximum); every list costs at least one request, even when empty."""
        if stream == "conversations":        # allo_number is a required filter: one list per number
            return sum(max(1, pages(c)) for c in self.conv_counts.values())
        if stream == "conversation_items":   # one list per Allo number and 30-day window
            return sum(max(1, pages(c)) for c in self.item_counts.values())
        if stream == "calls":                # allo_number required
            return sum(max(1, p) for _, p in self.call_counts.values())
        if stream == "contacts":
            return max(1, self.contacts[1])
        if stream in self.crm_counts:
            return max(1, pages(self.crm_counts[stream]))
        if stream == "users":                # ACTIVE and BLOCKED are two requests (the default is ACTIVE only)
            return 2
        if stream == "team_metrics_daily":   # the overview aggregates its range: one request per day
            return self.team_days
        return 1                             # unpaginated lists

    def listings(self, streams: Sequence[str]) -> int:
        """Numbers listings: one per number-partitioned stream (each lists the numbers when it starts)."""
        return sum(1 for s in streams if s in NUMBER_PARTITIONED)

    def bound(self, streams: Sequence[str]) -> Tuple[int, int, float]:
        """(minimum GET requests, minimum POST requests, rate-limit bound in seconds) of a sync of `streams`."""
        get = self.listings(streams) + sum(self.minimum(s) for s in streams if STREAM_ENDPOINTS[s][0] == "GET")
        post = sum(self.minimum(s) for s in streams if STREAM_ENDPOINTS[s][0] == "POST")
        return get, post, max(get / GET_RATE, post / POST_RATE)


def survey(fake: FakeServer, numbers: List[str], start_day: str) -> Account:
    """Counts the account's rows per list through the API (the fake unthrottled: not measured)."""
    windows = connector_windows(date.fromisoformat(start_day), tomorrow())
    conv_counts = {n: int(fake.api("GET", CONV_PATH, params={"allo_number": n, "page": 1, "size": 1})["pagination"]["total_count"])
                   for n in numbers}
    item_counts = {(n, lo, hi): items_between(fake, lo, hi, n) for n in numbers for lo, hi in windows}
    item_window_counts = {(None, lo, hi): items_between(fake, lo, hi) for lo, hi in windows}
    total_items = items_between(fake, start_day, tomorrow().isoformat())
    call_counts = {n: v1_rows(fake, CALLS_PATH, {"allo_number": n}) for n in numbers}
    contacts = v1_rows(fake, CONTACTS_PATH)
    crm_counts = {s: int(fake.api("POST", STREAM_ENDPOINTS[s][1], body={"page": 1, "size": 1})["pagination"]["total_count"])
                  for s in ("crm_people", "crm_companies", "crm_deals")}
    truth_counts = {s: len(fake.get(f"/_fake/truth/{s}"))
                    for s in ("phone_numbers", "users", "tags", "summary_templates", "webhooks", "webhook_event_types")}
    team_start = max(date.fromisoformat(start_day), today() - timedelta(days=TEAM_METRICS_MAX_DAYS))
    return Account(numbers=numbers, start_day=start_day, conv_counts=conv_counts, item_windows=windows,
                   item_counts=item_counts, item_window_counts=item_window_counts, total_items=total_items,
                   call_counts=call_counts, contacts=contacts, crm_counts=crm_counts, truth_counts=truth_counts,
                   team_days=(today() - team_start).days + 1)


def items_cursor_days(run: Run) -> Dict[Optional[str], date]:
    """conversation_items' saved day per Allo number (per-partition state), or {None: day} (one cursor)."""
    state = ((run.states.get("conversation_items") or {}).get("stream") or {}).get("stream_state") or {}
    out: Dict[Optional[str], date] = {}
    for entry in state.get("states") or []:
        day = (entry.get("cursor") or {}).get("date")
        if day:
            out[(entry.get("partition") or {}).get("allo_number")] = date.fromisoformat(day[:10])
    if not out and (state.get("date") or (state.get("state") or {}).get("date")):
        out[None] = date.fromisoformat((state.get("date") or state["state"]["date"])[:10])
    return out


def _git_revision(source_allo: str) -> str:
    """The connector measured: the command, the commit of the package it imports, and whether that
    package's source_allo/ had uncommitted changes."""
    try:
        package = subprocess.run([interpreter_of(source_allo), "-c", "import os, source_allo; print(os.path.dirname(source_allo.__file__))"],
                                 cwd="/", capture_output=True, text=True, timeout=60).stdout.strip()
        root = Path(package).parent if package else REPO
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "source_allo"], cwd=root, capture_output=True,
                               text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return f"`{source_allo}`, commit unknown (git not available)"
    return (f"`{source_allo}` (package in {root}), commit {head or 'unknown'}"
            + (" with uncommitted changes in source_allo/" if dirty else ", source_allo/ clean"))


def _other_busy_processes() -> List[str]:
    """Processes that used noticeable CPU over the last half second (another test run, a build...)."""
    def ticks() -> Dict[int, tuple]:
        out = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
                out[int(entry.name)] = (int(fields[11]) + int(fields[12]), cmd)
            except (OSError, IndexError, ValueError):
                continue
        return out
    try:
        before = ticks()
        time.sleep(0.5)
        after = ticks()
    except OSError:
        return []
    hz = os.sysconf("SC_CLK_TCK")
    return [f"pid {pid} {100 * (t - before[pid][0]) / hz / 0.5:.0f}% {cmd[:120]}"
            for pid, (t, cmd) in after.items() if pid in before and (t - before[pid][0]) / hz > 0.05 and cmd]


def _conversation_since(run: Run) -> Dict[str, str]:
    """The `last_activity_since` the incremental run sent per Allo number (from the fake's log)."""
    return {e["query"]["allo_number"]: e["query"].get("last_activity_since")
            for e in run.stats.get("log", []) if e["path"] == CONV_PATH and str(e["query"].get("page")) == "1"}


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


# ============================================================================ the benchmark

CASES = ("streams", "whole", "cpu")


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="small account (3 numbers, 3,000 conversations, 10,000 items, 90 days), one round, for a smoke run")
    ap.add_argument("--scale", nargs="+", default=None, metavar="SCALE",
                    help="the fake's --scale: large (default: 4 numbers, 20,000 conversations, 100,000 items, 365 days), "
                         "small, or CONVERSATIONS [ITEMS [DAYS]]")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--latency-ms", default="100-150", help="jittered per-request latency of the realistic runs")
    ap.add_argument("--rounds", type=int, default=None,
                    help="runs of each realistic case, (a), (b), (c) and the whole sync; the tables give medians (default 2, 1 with --quick)")
    ap.add_argument("--repeat", type=int, default=None, help="runs of each CPU-only / memory case (default 3, 1 with --quick)")
    ap.add_argument("--cases", default=",".join(CASES),
                    help="comma-separated: streams ((a), (b), (c)), whole (every stream in one sync), cpu (CPU-only and memory); default all")
    ap.add_argument("--source-allo", action="append", default=None, metavar="PATH",
                    help="the source-allo command to measure (default: this venv's), e.g. another checkout's "
                         ".venv/bin/source-allo; repeat it to compare commands: their runs alternate round by round "
                         "against the same fake, and a comparison table comes first")
    ap.add_argument("--keep-server", action="store_true", help="leave the fake API running at the end (prints its URL)")
    ap.add_argument("--output", default=str(RESULTS / "latest.md"), help="markdown report (default benchmarks/results/latest.md)")
    args = ap.parse_args(argv)

    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in cases if c not in CASES]
    if unknown or not cases:
        ap.error(f"--cases: unknown {unknown}; choose from {', '.join(CASES)}")
    commands = [str(Path(c).resolve()) if os.sep in c else (shutil.which(c) or c) for c in (args.source_allo or [SOURCE_ALLO])]
    for command in commands:
        if not os.access(command, os.X_OK):
            ap.error(f"--source-allo: {command} is not an executable file")
    scale = args.scale or (["3000", "10000", "90"] if args.quick else ["large"])
    rounds = args.rounds or (1 if args.quick else 2)
    repeat = args.repeat or (1 if args.quick else 3)
    RESULTS.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="source-allo-bench-"))
    # The account's latest activity is "now": an incremental sync right after the full one is realistic.
    now = datetime.now(timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")

    busy = _other_busy_processes()
    if busy:
        log("warning: other processes are using the CPU; timings will be noisy:\n  " + "\n  ".join(busy))
    load_at_start = os.getloadavg()
    log("measuring " + " and ".join(f"[{k + 1}] {c}" if len(commands) > 1 else c for k, c in enumerate(commands)))
    log(f"starting the fake Allo API (scale {' '.join(scale)}, latency {args.latency_ms} ms, rate limits enforced)")
    t = time.perf_counter()
    fake = FakeServer(scale, args.seed, args.latency_ms, now, RESULTS / "fake_api.log")
    log(f"fake API at {fake.url} (pid {fake.proc.pid}), ready in {time.perf_counter() - t:.1f} s; dataset {fake.dataset['params']}")
    try:
        report = benchmark(fake, workdir, args, commands, cases, rounds, repeat, load_at_start, busy)
    finally:
        if args.keep_server:
            fake.knobs(**realistic_knobs(args.latency_ms))
            log(f"--keep-server: the fake API stays up at {fake.url} (pid {fake.proc.pid}); stop it with kill {fake.proc.pid}")
        else:
            fake.stop()
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report)
    print(report)
    log(f"written to {out}")
    return 0


def realistic_knobs(latency: str) -> dict:
    lo, _, hi = latency.partition("-")
    return {"latency_ms": [int(lo), int(hi or lo)], "enforce_rate_limits": True,
            "read_per_second": GET_RATE, "write_per_second": POST_RATE}


# No latency, no limits; `GET /v2/api/me` reports huge limits (a connector that paces itself from /me
# does not throttle either).
UNTHROTTLED = {"latency_ms": None, "enforce_rate_limits": False, "read_per_second": 100_000, "write_per_second": 100_000}


@dataclass
class Measured:
    """Every run of one source-allo command."""

    command: str
    label: str
    conv: List[Run] = field(default_factory=list)
    items: List[Run] = field(default_factory=list)
    incr: List[Run] = field(default_factory=list)
    incr_info: List[dict] = field(default_factory=list)
    whole: List[Run] = field(default_factory=list)
    cpu_conn: List[Run] = field(default_factory=list)
    cpu_base: List[Run] = field(default_factory=list)
    mem_small: List[Run] = field(default_factory=list)
    per_number: Optional[bool] = None     # whether it reads conversation_items per Allo number
    whole_streams: List[str] = field(default_factory=list)   # the streams of its whole sync
    unmeasured: List[str] = field(default_factory=list)      # its streams the benchmark cannot count


def benchmark(fake: FakeServer, workdir: Path, args: argparse.Namespace, commands: List[str], cases: List[str],
              rounds: int, repeat: int, load_at_start: Tuple[float, float, float], busy: List[str]) -> str:
    ds = fake.dataset
    start_iso = ds["start"]                      # e.g. 2025-11-24T00:00:00Z
    start_day = start_iso[:10]
    numbers = ds["numbers"]
    config = {"api_key": fake.key, "api_url": fake.url, "start_date": start_iso}
    measured = [Measured(command=c, label=f"[{k + 1}] " if len(commands) > 1 else "") for k, c in enumerate(commands)]
    for m in measured:
        streams = discovered(m.command, config)
        m.whole_streams = [s for s in ALL_STREAMS if s in streams]
        m.unmeasured = sorted(s for s in streams if s not in STREAM_ENDPOINTS)
        if m.unmeasured:
            log(f"{m.label}streams the whole sync leaves out (the benchmark cannot count them): {', '.join(m.unmeasured)}")

    # ---------------------------------------------------------------- what a perfect client must send
    fake.knobs(**UNTHROTTLED)
    acct = survey(fake, numbers, start_day)
    fake.knobs(**realistic_knobs(args.latency_ms))
    log(f"account: {len(numbers)} numbers, {acct.total_conv} conversations {list(acct.conv_counts.values())}, "
        f"{acct.total_items} items, calls {[r for r, _ in acct.call_counts.values()]}, contacts {acct.contacts[0]}, "
        f"CRM {acct.crm_counts}, team_metrics_daily {acct.team_days} days")
    time.sleep(1.1)  # let the survey's requests leave the server's 1-second windows

    def in_turn(round_: int) -> List[Measured]:
        # With several commands, each round alternates which goes first: neither always runs on a busier machine.
        return measured if round_ % 2 == 0 else measured[::-1]

    # ---------------------------------------------------------------- (a), (b), (c), (w): realistic, `rounds` times
    for r in range(rounds):
        tag = f"#{r + 1}"
        for m in in_turn(r):
            if "streams" in cases:
                conv = run_child(f"{m.label}(a) full sync: conversations {tag}",
                                 source_cmd(m.command, workdir, f"a{r}", config, ["conversations"]), fake)
                items = run_child(f"{m.label}(b) full sync: conversation_items {tag}",
                                  source_cmd(m.command, workdir, f"b{r}", config, ["conversation_items"]), fake)
                state = conv.state_messages() + items.state_messages()
                incr = run_child(f"{m.label}(c) incremental, no new activity: both streams {tag}",
                                 source_cmd(m.command, workdir, f"c{r}", config, ["conversations", "conversation_items"], state), fake)
                incr.stats["items_cursor_days"] = items_cursor_days(items)
                if incr.stats.get("drift_items_added"):
                    log("warning: the fake added activity during the incremental run")
                m.conv.append(conv)
                m.items.append(items)
                m.incr.append(incr)
            if "whole" in cases:
                m.whole.append(run_child(f"{m.label}(w) whole sync: every stream {tag}",
                                         source_cmd(m.command, workdir, f"w{r}", config, m.whole_streams), fake))

    # ---------------------------------------------------------------- CPU-only: no latency, no limits, no pacing
    fake.knobs(**UNTHROTTLED)
    for m in measured:
        m.incr_info = [incremental_minimums(fake, acct, run) for run in m.incr]
    small_items = 0
    if "cpu" in cases:
        # Start date for the small memory run: about a tenth of the items.
        small_target = max(1, acct.total_items // 10)
        lo_day, hi_day = date.fromisoformat(start_day), tomorrow()
        while (hi_day - lo_day).days > 1:
            mid = lo_day + timedelta(days=(hi_day - lo_day).days // 2)
            if items_between(fake, mid.isoformat(), tomorrow().isoformat()) > small_target:
                lo_day = mid
            else:
                hi_day = mid
        small_start = hi_day
        small_items = items_between(fake, small_start.isoformat(), tomorrow().isoformat())
        small_config = dict(config, start_date=small_start.isoformat() + "T00:00:00Z")

        for i in range(repeat):
            for m in in_turn(i):
                def connector(m: Measured = m) -> None:
                    run = run_child(f"{m.label}CPU-only connector, conversation_items #{i + 1}",
                                    source_cmd(m.command, workdir, f"cpu{i}", config, ["conversation_items"], unpaced=True), fake)
                    m.cpu_conn.append(run)
                    if m.per_number is None:
                        m.per_number = run.items_per_number()

                def baseline(m: Measured = m) -> None:
                    # The plain loop reads the pages this connector reads (per number and window, or per window).
                    cmd = [PYTHON, BASELINE, "--url", fake.url, "--api-key", fake.key, "--stream", "conversation_items",
                           "--start-date", start_day, "--window-days", str(WINDOW_DAYS)]
                    if m.per_number is False:
                        cmd.append("--items-per-window")
                    m.cpu_base.append(run_child(f"{m.label}CPU-only baseline_loop.py #{i + 1}", cmd, fake))

                # Alternate the order so that neither side always runs on a warmer machine (the connector
                # goes first the first time: the baseline copies its partitioning).
                for fn in ((connector, baseline) if i % 2 == 0 else (baseline, connector)):
                    fn()
                m.mem_small.append(run_child(f"{m.label}memory: conversation_items since {small_start} (~{small_items} items) #{i + 1}",
                                             source_cmd(m.command, workdir, f"mem{i}", small_config, ["conversation_items"], unpaced=True), fake))

    sections = [report(args, cases, rounds, repeat, acct, load_at_start, busy, m, small_items) for m in measured]
    if len(measured) == 1:
        return sections[0]
    return comparison(args, acct, measured, load_at_start, busy) + "\n" + "\n".join(sections)


def incremental_minimums(fake: FakeServer, acct: Account, incr: Run) -> dict:
    """(c)'s bound and its lookback-aware minimum (the fake unthrottled, after the measured runs)."""
    cursor_days: Dict[Optional[str], date] = incr.stats.get("items_cursor_days") or {}
    # Bound: one request per list the cursors must cover: one per Allo number for conversations, one per
    # 30-day window from each saved day minus the lookback to tomorrow for items (per number when the
    # state is per number), plus 2 fixed (the two streams' numbers listings).
    item_lists = sum(len(connector_windows(day - timedelta(days=LOOKBACK_DAYS), tomorrow())) for day in cursor_days.values()) or 1
    bound = len(acct.numbers) + item_lists + 2
    # Lookback-aware: a page per 100 rows the lookback makes the connector re-read, in the lists it read.
    conv_rows = {n: int(fake.api("GET", CONV_PATH, params={"allo_number": n, "page": 1, "size": 1, "last_activity_since": since})
                        ["pagination"]["total_count"])
                 for n, since in _conversation_since(incr).items()}
    item_rows = {key: items_between(fake, key[1], key[2], key[0]) for key in incr.item_partitions()}
    lookback_min = 2 + sum(max(1, pages(c)) for c in conv_rows.values()) + sum(max(1, pages(c)) for c in item_rows.values())
    return {"bound": bound, "item_lists": item_lists, "lookback_min": lookback_min,
            "conv_rows": sum(conv_rows.values()), "item_rows": sum(item_rows.values())}


# ============================================================================ the report


def report(args: argparse.Namespace, cases: List[str], rounds: int, repeat: int, acct: Account,
           load_at_start: Tuple[float, float, float], busy: List[str], m: Measured, small_items: int) -> str:
    conv_runs, items_runs, incr_runs, incr_info, whole_runs = m.conv, m.items, m.incr, m.incr_info, m.whole
    cpu_conn, cpu_base, mem_small = m.cpu_conn, m.cpu_base, m.mem_small

    def ok(flag: bool) -> str:
        return "PASS" if flag else "**FAIL**"

    def med(runs: Sequence[Run], value: Callable[[Run], Optional[float]]) -> Optional[float]:
        return median_of(runs, value)

    numbers = acct.numbers
    connector_runs = conv_runs + items_runs + incr_runs + whole_runs + cpu_conn + mem_small
    all_ok = all(r.ok for r in connector_runs + cpu_base)
    targets: List[tuple] = [("Every run exits 0 without error", "all runs", "exit 0, no ERROR trace",
                             "yes" if all_ok else "no", ok(all_ok))]
    realistic = conv_runs + items_runs + incr_runs + whole_runs
    conv_get, _, conv_bound = acct.bound(["conversations"])
    conv_min = conv_get
    items_get, items_post, items_bound = acct.bound(["conversation_items"])
    items_min = items_get + items_post
    whole_streams = m.whole_streams
    whole_get, whole_post, whole_bound = acct.bound(whole_streams)
    whole_min = whole_get + whole_post

    def per_round(runs: Sequence[Run], value: Callable[[Run], Any], digits: int = 2) -> str:
        return " / ".join(fmt(value(r), digits) for r in runs)

    if conv_runs:
        conv_wall = med(conv_runs, lambda r: r.wall)
        items_wall = med(items_runs, lambda r: r.wall)
        conv_req = med(conv_runs, lambda r: r.requests)
        items_req = med(items_runs, lambda r: r.requests)
        incr_req = med(incr_runs, lambda r: r.requests)
        incr_bound = med(incr_info, lambda i: i["bound"]) if incr_info else None  # type: ignore[arg-type, return-value]
        targets += [
            ("Full sync reads every row", "(a), (b)", f"{acct.total_conv:,} + {acct.total_items:,}",
             f"{per_round(conv_runs, lambda r: r.records.get('conversations', 0))} + "
             f"{per_round(items_runs, lambda r: r.records.get('conversation_items', 0))}",
             ok(all(r.records.get("conversations") == acct.total_conv for r in conv_runs)
                and all(r.records.get("conversation_items") == acct.total_items for r in items_runs))),
            ("Ratio to the rate-limit bound, conversations", "(a)", ">= 0.90",
             f"{conv_bound / conv_wall:.3f} ({conv_bound:.1f} s bound / {conv_wall:.1f} s)", ok(conv_bound / conv_wall >= 0.9)),
            ("Ratio to the rate-limit bound, conversation_items", "(b)", ">= 0.90",
             f"{items_bound / items_wall:.3f} ({items_bound:.1f} s bound / {items_wall:.1f} s)", ok(items_bound / items_wall >= 0.9)),
            ("Requests vs minimum, conversations", "(a)", f"<= 1.02 x {conv_min:,} = {1.02 * conv_min:,.0f}",
             f"{conv_req:,.0f} ({conv_req / conv_min:.3f} x)", ok(conv_req <= 1.02 * conv_min)),
            ("Requests vs minimum, conversation_items", "(b)", f"<= 1.02 x {items_min:,} = {1.02 * items_min:,.0f}",
             f"{items_req:,.0f} ({items_req / items_min:.3f} x)", ok(items_req <= 1.02 * items_min)),
            ("Incremental, no new activity: requests", "(c)",
             f"<= {len(numbers)} numbers + {incr_info[0]['item_lists']} item list(s) + 2 fixed = {incr_bound:,.0f}",
             f"{incr_req:,.0f} ({incr_runs[0].count(CONV_PATH)} conversations, {incr_runs[0].count(ITEMS_PATH)} items, "
             f"{sum(incr_runs[0].count(p) for p in FIXED_PATHS)} fixed in round 1)", ok(incr_req <= incr_bound)),
        ]
    if whole_runs:
        whole_wall = med(whole_runs, lambda r: r.wall)
        whole_req = med(whole_runs, lambda r: r.requests)
        mismatched = sorted({s for r in whole_runs for s in whole_streams
                             if acct.expected(s) is not None and r.records.get(s, 0) != acct.expected(s)})
        checked = sum(acct.expected(s) or 0 for s in whole_streams)
        n_checked = sum(1 for s in whole_streams if acct.expected(s) is not None)
        targets += [
            ("Whole sync reads every row", "(w)", f"{checked:,} in {n_checked} streams (team_metrics_daily not checked)",
             "equal" if not mismatched else "differs: " + ", ".join(
                 f"{s} {per_round(whole_runs, lambda r, s=s: r.records.get(s, 0))} vs {acct.expected(s):,}" for s in mismatched),
             ok(not mismatched)),
            ("Ratio to the rate-limit bound, whole sync", "(w)", ">= 0.90",
             f"{whole_bound / whole_wall:.3f} ({whole_bound:.1f} s bound / {whole_wall:.1f} s)", ok(whole_bound / whole_wall >= 0.9)),
            ("Requests vs minimum, whole sync", "(w)", f"<= 1.02 x {whole_min:,} = {1.02 * whole_min:,.0f}",
             f"{whole_req:,.0f} ({whole_req / whole_min:.3f} x)", ok(whole_req <= 1.02 * whole_min)),
        ]
    if realistic:
        total_429 = sum(r.rate_limited for r in realistic)
        parts = [(label, runs) for label, runs in (("(a)", conv_runs), ("(b)", items_runs), ("(c)", incr_runs), ("(w)", whole_runs)) if runs]
        targets.append(("429 responses received", "+".join(l for l, _ in parts) + f", {rounds} round(s)", "== 0",
                        f"{total_429} (" + " + ".join(str(sum(r.rate_limited for r in runs)) for _, runs in parts) + ")",
                        ok(total_429 == 0)))
    rss_max = max((r.maxrss_mb for r in connector_runs), default=0.0)
    targets.append(("Peak RSS, every connector run", "all", "< 250 MB", f"{rss_max:.0f} MB", ok(rss_max < 250)))

    cpu_lines: List[str] = []
    if cpu_conn:
        conn_records = statistics.median(r.total_records for r in cpu_conn)
        base_records = statistics.median(r.total_records for r in cpu_base)
        conn_wall_pr = med(cpu_conn, lambda r: r.wall) / conn_records if conn_records else float("inf")
        base_wall_pr = med(cpu_base, lambda r: r.wall) / base_records if base_records else float("inf")
        conn_cpu_pr = med(cpu_conn, lambda r: r.cpu) / conn_records if conn_records else float("inf")
        base_cpu_pr = med(cpu_base, lambda r: r.cpu) / base_records if base_records else float("inf")
        wall_ratio = conn_wall_pr / base_wall_pr
        cpu_ratio = conn_cpu_pr / base_cpu_pr
        rss_big = med(cpu_conn, lambda r: r.maxrss_mb)
        rss_small = med(mem_small, lambda r: r.maxrss_mb)
        targets += [
            ("Peak RSS flat: all items vs ~1/10", "memory", "<= 1.3 x",
             f"{rss_big:.0f} MB ({conn_records:,.0f}) vs {rss_small:.0f} MB ({small_items:,}) = {rss_big / rss_small:.2f} x",
             ok(rss_big <= 1.3 * rss_small)),
            ("CPU-only: wall time per record vs plain loop", "CPU-only", "<= 3 x",
             f"{wall_ratio:.2f} x ({conn_wall_pr * 1e6:.0f} vs {base_wall_pr * 1e6:.0f} us/record)", ok(wall_ratio <= 3)),
            ("CPU-only: CPU time per record vs plain loop", "CPU-only", "<= 3 x",
             f"{cpu_ratio:.2f} x ({conn_cpu_pr * 1e6:.0f} vs {base_cpu_pr * 1e6:.0f} us/record)", ok(cpu_ratio <= 3)),
        ]
        conn_read = [r.read_phase for r in cpu_conn if r.read_phase]
        if conn_read:
            cpu_lines.append(
                f"* CPU-only, connector read phase only (STREAM_STATUS STARTED -> COMPLETE, i.e. without the "
                f"~{med(cpu_conn, lambda r: r.startup) or 0:.1f} s start-up): {statistics.median(conn_read):.2f} s, "
                f"{(statistics.median(conn_read) / conn_records) / base_wall_pr:.2f} x the plain loop's wall time per record.")
        cpu_lines.append(
            f"* CPU-only records: connector {conn_records:,.0f}, baseline {base_records:,.0f} "
            f"({'equal' if conn_records == base_records else 'DIFFERENT'}); requests connector "
            f"{[r.requests for r in cpu_conn]}, baseline {[r.requests for r in cpu_base]} (baseline "
            f"{'per Allo number and window' if cpu_conn[0].items_per_number() else 'per window over all numbers'}, as the connector).")

    # ---------------------------------------------------------------- the text
    lines: List[str] = []
    add = lines.append
    from importlib.metadata import version
    add(f"# {m.label}source-allo benchmark, {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}")
    add("")
    add(f"Connector: {_git_revision(m.command)}. Benchmark: {_bench_revision()}.")
    add("")
    ds = args.scale or (['3000', '10000', '90'] if args.quick else ['large'])
    add(f"Machine: {os.cpu_count()} CPUs, Python {platform.python_version()} (benchmark), airbyte-cdk "
        f"{version('airbyte-cdk')} (benchmark's venv). Fake Allo API in its own process: seed {args.seed}, scale "
        f"`{' '.join(ds)}` ({len(numbers)} numbers, {acct.total_conv:,} conversations, {acct.total_items:,} items since "
        f"{acct.start_day}), latency {args.latency_ms} ms jittered, rate limits {GET_RATE} GET/s and {POST_RATE} POST/s "
        f"enforced per key{' (quick run)' if args.quick else ''}. Cases: {', '.join(cases)}; realistic runs: median of "
        f"{rounds} round(s); CPU-only runs: median of {repeat}. Load average (1/5/15 min) at start "
        f"{'/'.join(f'{x:.2f}' for x in load_at_start)}, at end {'/'.join(f'{x:.2f}' for x in os.getloadavg())}"
        f"{'; OTHER BUSY PROCESSES at start (timings noisy): ' + '; '.join(b[:80] for b in busy) if busy else ''}.")
    add("")
    add("## Targets")
    add("")
    add("| Target | Run | Threshold | Measured | Result |")
    add("|---|---|---|---|---|")
    for row_ in targets:
        add("| " + " | ".join(row_) + " |")
    add("")
    add("## Runs")
    add("")
    add("| Run | Rounds | Records | Wall s | Records/s | Requests | Minimum | 429s | Bound s | Ratio to bound | "
        "Startup s | API span s | Ratio (API span) | Peak RSS MB | CPU s | CPU s / 1k rec |")
    add("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")

    def row(name: str, runs: List[Run], minimum: Optional[float] = None, bound: Optional[float] = None) -> None:
        if not runs:
            return
        wall = med(runs, lambda r: r.wall)
        span = med(runs, lambda r: r.api_span)
        records = med(runs, lambda r: r.total_records)
        cpu = med(runs, lambda r: r.cpu)
        add("| " + " | ".join([
            name, str(len(runs)), fmt(records, 0), fmt(wall, 1), fmt(records / wall if wall else None, 0),
            fmt(med(runs, lambda r: r.requests), 0), fmt(minimum, 0), fmt(sum(r.rate_limited for r in runs)),
            fmt(bound, 1), fmt(bound / wall, 3) if bound else "n/a", fmt(med(runs, lambda r: r.startup), 2),
            fmt(span, 1), fmt(bound / span, 3) if bound and span else "n/a",
            fmt(max(r.maxrss_mb for r in runs), 0), fmt(cpu, 1), fmt(cpu / records * 1000 if records else None, 3),
        ]) + " |")

    row("(a) full sync: conversations", conv_runs, conv_min, conv_bound)
    row("(b) full sync: conversation_items", items_runs, items_min, items_bound)
    row("(c) incremental, no new activity: both streams", incr_runs,
        med(incr_info, lambda i: i["bound"]) if incr_info else None)  # type: ignore[arg-type, return-value]
    row("(w) whole sync: every stream", whole_runs, whole_min, whole_bound)
    row("CPU-only connector, conversation_items (pacing lifted)", cpu_conn)
    row("CPU-only baseline_loop.py", cpu_base)
    row(f"memory: conversation_items, ~1/10 of the items (pacing lifted)", mem_small)
    add("")
    add("Wall s, Requests, Startup s, API span s and CPU s are medians over the rounds; 429s is their sum; Peak RSS "
        "their maximum.")

    if whole_runs:
        add("")
        add("## Whole sync by stream")
        add("")
        add(f"Median over {len(whole_runs)} round(s). First request and last answer: seconds since the process started."
            + (f" Streams of this connector left out (the benchmark cannot count them): {', '.join(m.unmeasured)}." if m.unmeasured else ""))
        add("")
        add("| Stream | Method | Records | Expected | Requests | Minimum | 429s | First request s | Last answer s |")
        add("|---|---|---|---|---|---|---|---|---|")
        for stream in whole_streams:
            method, path = STREAM_ENDPOINTS[stream]

            def sent(r: Run, path: str = path, method: str = method, stream: str = stream) -> int:
                n = r.count(path, method)
                return min(n, 1) if stream == "phone_numbers" else n   # further GET /v2/api/numbers: a listing

            # GET /v2/api/numbers is also the numbers listing of a connector that lists numbers with it: the
            # phone_numbers stream is its last request.
            times = [r.endpoint_times(method, path, last_only=stream == "phone_numbers") for r in whole_runs]
            add("| " + " | ".join([
                stream, method, fmt(med(whole_runs, lambda r, s=stream: r.records.get(s, 0)), 0),
                fmt(acct.expected(stream)), fmt(med(whole_runs, sent), 0), fmt(acct.minimum(stream)),
                fmt(sum(sum(1 for e in r.log if e["path"] == path and e["status"] == 429) for r in whole_runs)),
                fmt(median_of([t for t in times if t], lambda t: t[0]), 1),   # type: ignore[arg-type, return-value]
                fmt(median_of([t for t in times if t], lambda t: t[1]), 1),   # type: ignore[arg-type, return-value]
            ]) + " |")

        def fixed(r: Run) -> int:
            return r.count(ME_PATH) + r.count(V1_NUMBERS) + max(0, r.count(V2_NUMBERS) - 1)

        add("| numbers listings (and `me`) | GET | n/a | n/a | " + fmt(med(whole_runs, fixed), 0)
            + f" | {acct.listings(whole_streams)} | n/a | n/a | n/a |")
        add(f"| **total** | | {fmt(med(whole_runs, lambda r: r.total_records), 0)} | | {fmt(whole_req, 0)} | "
            f"{whole_min:,} | {sum(r.rate_limited for r in whole_runs)} | | {fmt(whole_wall, 1)} (wall) |")

    add("")
    add("## Details")
    add("")
    if conv_runs:
        conv, items, incr, info = conv_runs[0], items_runs[0], incr_runs[0], incr_info[0]
        add(f"* Wall s per round: (a) {per_round(conv_runs, lambda r: r.wall, 1)}; (b) "
            f"{per_round(items_runs, lambda r: r.wall, 1)}; (c) {per_round(incr_runs, lambda r: r.wall, 1)}.")
        add(f"* (a) requests by endpoint (round 1): {json.dumps(conv.stats.get('by_endpoint', {}))}; conversations per "
            f"number {acct.conv_counts}. Minimum = 1 numbers listing + one page per 100 conversations of each number.")
        window_min = sum(max(1, pages(c)) for c in acct.item_window_counts.values())
        add(f"* (b) requests by endpoint (round 1): {json.dumps(items.stats.get('by_endpoint', {}))}; lists read: "
            f"{len(items.item_partitions())} ({'Allo number x window' if items.items_per_number() else 'windows over all numbers'}). "
            f"Minimum with the connector's lists ({len(numbers)} numbers x {len(acct.item_windows)} windows of {WINDOW_DAYS} days, "
            f"each at least one request, + 1 numbers listing): {items_min:,}. For comparison, windows over all numbers "
            f"need {window_min:,} POST, and the whole history as one list {pages(acct.total_items):,} POST "
            f"({pages(acct.total_items) / POST_RATE:.1f} s at {POST_RATE}/s against the {items_bound:.1f} s bound used here).")
        add(f"* (c) requests by endpoint (round 1): {json.dumps(incr.stats.get('by_endpoint', {}))}; records re-read "
            f"(lookback {LOOKBACK_DAYS} day): {incr.records}; item lists requested: {len(incr.item_partitions())}.")
        add(f"* (c) lookback-aware minimum: 2 fixed + one page per {PAGE} re-read rows of each list "
            f"({info['conv_rows']} conversations, {info['item_rows']} items) = {info['lookback_min']} "
            f"(measured {per_round(incr_runs, lambda r: r.requests)}).")
        add(f"* Achieved data-request rate over the API span (round 1): conversations "
            f"{conv.count(CONV_PATH) / conv.api_span if conv.api_span else 0:.2f}/s (limit {GET_RATE}), items "
            f"{items.count(ITEMS_PATH) / items.api_span if items.api_span else 0:.2f}/s (limit {POST_RATE}). "
            f"Median server time per data request (latency included): {fmt(conv.server_ms(), 0)} ms / "
            f"{fmt(items.server_ms(), 0)} ms; median client gap (response end -> next request of the same list): "
            f"{fmt(conv.client_gap_ms(), 0)} ms / {fmt(items.client_gap_ms(), 0)} ms.")
    if whole_runs:
        w = whole_runs[0]
        add(f"* (w) wall s per round: {per_round(whole_runs, lambda r: r.wall, 1)}. Minimum {whole_get:,} GET + "
            f"{whole_post:,} POST; bound max({whole_get:,} / {GET_RATE}, {whole_post:,} / {POST_RATE}) = {whole_bound:.1f} s "
            f"({'POST' if whole_post / POST_RATE >= whole_get / GET_RATE else 'GET'}-bound). Measured (median) "
            f"{med(whole_runs, lambda r: r.count_method('GET')):,.0f} GET + {med(whole_runs, lambda r: r.count_method('POST')):,.0f} POST. "
            f"With conversation_items read as one list (the API allows it) the minimum POST would be "
            f"{whole_post - acct.minimum('conversation_items') + pages(acct.total_items):,} and the bound "
            f"{max(whole_get / GET_RATE, (whole_post - acct.minimum('conversation_items') + pages(acct.total_items)) / POST_RATE):.1f} s.")
        def first(r: Run, method: str) -> float:
            return min((e["t"] for e in r.log if e["method"] == method), default=r.spawn_time) - r.spawn_time

        def last(r: Run, method: str) -> float:
            return max((e["t"] + e["ms"] / 1000 for e in r.log if e["method"] == method), default=r.spawn_time) - r.spawn_time

        add(f"* (w) first POST request at {per_round(whole_runs, lambda r: first(r, 'POST'), 1)} s (per round; the POST "
            f"budget is idle until then), last GET answer at {med(whole_runs, lambda r: last(r, 'GET')):.1f} s, last POST "
            f"answer at {med(whole_runs, lambda r: last(r, 'POST')):.1f} s (medians; all since the process started). POST "
            f"rate from the first POST to the last answer: "
            f"{med(whole_runs, lambda r: r.count_method('POST') / max(1e-9, last(r, 'POST') - first(r, 'POST'))):.2f}/s "
            f"(median; the pacing allows {POST_RATE / 1.08:.2f}/s); achieved rates over the API span "
            f"(round 1): GET {w.count_method('GET') / w.api_span if w.api_span else 0:.2f}/s, POST "
            f"{w.count_method('POST') / w.api_span if w.api_span else 0:.2f}/s.")
        longest = sorted(w.chains().items(), key=lambda kv: kv[1][-1]["t"] + kv[1][-1]["ms"] / 1000 - kv[1][0]["t"], reverse=True)[:4]
        described = []
        for key, chain in longest:
            duration = chain[-1]["t"] + chain[-1]["ms"] / 1000 - chain[0]["t"]
            described.append(f"{' '.join(str(k) for k in key if k)}: {len(chain)} pages in {duration:.1f} s "
                             f"({1000 * duration / len(chain):.0f} ms a page, from {chain[0]['t'] - w.spawn_time:.1f} s)")
        add("* (w) longest lists (round 1; one list = one partition of one stream): " + "; ".join(described) + ".")
        add(f"* (w) median server time per request {fmt(w.server_ms(tuple(p for _, p in STREAM_ENDPOINTS.values())), 0)} ms; "
            f"median client gap within a list: GET lists {fmt(w.client_gap_ms((CONV_PATH, CALLS_PATH, CONTACTS_PATH)), 0)} ms, "
            f"POST lists {fmt(w.client_gap_ms((ITEMS_PATH, STREAM_ENDPOINTS['crm_people'][1], STREAM_ENDPOINTS['crm_companies'][1], STREAM_ENDPOINTS['crm_deals'][1])), 0)} ms.")
        add(f"* (w) requests by endpoint (round 1): {json.dumps(w.stats.get('by_endpoint', {}))}.")
    lines.extend(cpu_lines)
    warnings = sorted({wn for r in realistic for wn in r.warnings})
    if warnings:
        add(f"* Warnings logged by the realistic runs ({len(warnings)} distinct): " + "; ".join(wn[:160] for wn in warnings[:5]))
    for r in [r for r in connector_runs + cpu_base if not r.ok]:
        add(f"* {r.name} failed (exit {r.returncode}): {(r.errors or [r.stderr_tail[-300:]])[0][:300]}")
    add("")
    add("Definitions: see benchmarks/README.md. Minimum requests = per stream, a page per 100 rows of each list the "
        "connector must read (per Allo number for conversations and calls, per Allo number and 30-day window for "
        "conversation_items, one per day for team_metrics_daily), at least one per list, + one numbers listing per "
        "number-partitioned stream. Bound = minimum GET requests / 20, or minimum POST requests / 5 when larger (the "
        "budgets are separate). Ratio to bound = bound / wall time of the whole `read` process.")
    return "\n".join(lines) + "\n"


def comparison(args: argparse.Namespace, acct: Account, measured: List[Measured], load_at_start: Tuple[float, float, float],
               busy: List[str]) -> str:
    """The cases side by side for several commands (medians), before each command's own report."""
    lines = [f"# source-allo benchmark, {len(measured)} commands compared, "
             f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}", ""]
    for m in measured:
        lines.append(f"* {m.label.strip()} {_git_revision(m.command)}")
    lines += ["", f"Same fake API and account for all (scale `{' '.join(args.scale or (['3000', '10000', '90'] if args.quick else ['large']))}`); "
              f"the commands' runs alternate round by round. Load average (1/5/15 min) at start "
              f"{'/'.join(f'{x:.2f}' for x in load_at_start)}, at end {'/'.join(f'{x:.2f}' for x in os.getloadavg())}"
              f"{'; other busy processes at start: ' + str(len(busy)) if busy else ''}. Each command's full report follows.", ""]
    lines.append("| Case | Command | Rounds | Wall s | Bound s | Ratio to bound | Requests | Minimum | 429s | Records/s | CPU s / 1k rec |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
    cases = [("(a) full sync: conversations", lambda m: m.conv, ["conversations"]),
             ("(b) full sync: conversation_items", lambda m: m.items, ["conversation_items"]),
             ("(c) incremental, no new activity", lambda m: m.incr, None),
             ("(w) whole sync: every stream", lambda m: m.whole, None),
             ("CPU-only connector, conversation_items", lambda m: m.cpu_conn, None)]
    for name, pick, streams in cases:
        for m in measured:
            runs = pick(m)
            if not runs:
                continue
            wall = median_of(runs, lambda r: r.wall)
            records = median_of(runs, lambda r: r.total_records)
            cpu = median_of(runs, lambda r: r.cpu)
            if name.startswith("(w)"):
                streams = m.whole_streams
            get, post, bound = acct.bound(streams) if streams else (None, None, None)
            lines.append("| " + " | ".join([
                name, m.label.strip(), str(len(runs)), fmt(wall, 1), fmt(bound, 1), fmt(bound / wall, 3) if bound and wall else "n/a",
                fmt(median_of(runs, lambda r: r.requests), 0), fmt(get + post) if streams else "n/a",
                fmt(sum(r.rate_limited for r in runs)), fmt(records / wall if wall else None, 0),
                fmt(cpu / records * 1000 if records else None, 3)]) + " |")
    lines.append("")
    return "\n".join(lines) + "\n"


def _bench_revision() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "benchmarks"], cwd=REPO, capture_output=True,
                               text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{REPO} at {head}" + (" (benchmarks/ modified)" if dirty else "")


if __name__ == "__main__":
    sys.exit(main())
