"""Performance benchmark of source-allo against the fake Allo API (`./run.sh bench`; not part of the tests).

What it does (details and definitions in benchmarks/README.md):

1. Starts the fake Allo API in its own process (its CPU is not the connector's) with 100-150 ms of
   jittered latency, the documented per-key rate limits enforced (20 GET/s, 5 POST/s) and a large account.
2. Runs the real `source-allo read` as a subprocess and measures wall time, CPU seconds and peak RSS of
   that child (os.wait4 rusage), RECORD lines (counted, never kept), requests and 429s (the fake's
   stats), for (a) a full sync of conversations, (b) a full sync of conversation_items, (c) an
   incremental sync of both with the state of (a) and (b) and no new activity.
3. CPU-only case: the same fake with no latency and no rate limits; the connector's full read of
   conversation_items against benchmarks/baseline_loop.py (plain requests + orjson, same pages).
4. Memory flatness: peak RSS of conversation_items reads of ~1/10 of the items and of all of them.
5. Prints one table with a pass/fail column per target and writes it to benchmarks/results/latest.md.

    .venv/bin/python benchmarks/run_benchmark.py            # full benchmark (several minutes)
    .venv/bin/python benchmarks/run_benchmark.py --quick    # smoke run, about a minute
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from integration_tests.harness import catalog_for  # noqa: E402

PYTHON = sys.executable
SOURCE_ALLO = str(Path(sys.executable).with_name("source-allo"))
BASELINE = str(REPO / "benchmarks" / "baseline_loop.py")
RESULTS = REPO / "benchmarks" / "results"
PAGE = 100
ITEMS_PATH = "/v2/api/conversations/items/search"
CONV_PATH = "/v2/api/conversations"
FIXED_PATHS = ("/v2/api/me", "/v2/api/numbers", "/v1/api/numbers")
WINDOW_DAYS = 30     # the connector's default conversation_items_window_days
LOOKBACK_DAYS = 1    # the connector's default lookback_window_days

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
    def total_records(self) -> int:
        return sum(self.records.values())

    # ------------------------------------------------------------------ from the fake's request log
    @property
    def requests(self) -> int:
        return int(self.stats.get("requests", 0))

    @property
    def rate_limited(self) -> int:
        return int(self.stats.get("by_status", {}).get("429", 0))

    def count(self, path: str, method: Optional[str] = None) -> int:
        return sum(1 for e in self.stats.get("log", []) if e["path"] == path and (method is None or e["method"] == method))

    @property
    def api_span(self) -> Optional[float]:
        entries = self.stats.get("log", [])
        if not entries:
            return None
        return max(e["t"] + e["ms"] / 1000 for e in entries) - min(e["t"] for e in entries)

    @property
    def startup(self) -> Optional[float]:
        entries = self.stats.get("log", [])
        return min(e["t"] for e in entries) - self.spawn_time if entries else None

    def windows(self) -> List[tuple]:
        seen: Dict[tuple, None] = {}
        for e in self.stats.get("log", []):
            if e["path"] == ITEMS_PATH and isinstance(e.get("body"), dict) and isinstance(e["body"].get("date"), dict):
                seen[(e["body"]["date"].get("from"), e["body"]["date"].get("to"))] = None
        return sorted(seen)

    def client_gap_ms(self) -> Optional[float]:
        """Median time from the end of a data response to the next request of the same partition (Allo
        number or date window): the connector's own per-page time (parsing, records, pacing waits)."""
        chains: Dict[Any, List[dict]] = {}
        for e in sorted(self.stats.get("log", []), key=lambda e: e["t"]):
            if e["path"] == CONV_PATH:
                key = e["query"].get("allo_number")
            elif e["path"] == ITEMS_PATH and isinstance(e.get("body"), dict):
                key = json.dumps(e["body"].get("date"), sort_keys=True)
            else:
                continue
            chains.setdefault(key, []).append(e)
        gaps = [b["t"] - (a["t"] + a["ms"] / 1000) for chain in chains.values() for a, b in zip(chain, chain[1:])]
        return statistics.median(gaps) * 1000 if gaps else None

    def server_ms(self) -> Optional[float]:
        ms = [e["ms"] for e in self.stats.get("log", []) if e["path"] in (CONV_PATH, ITEMS_PATH)]
        return statistics.median(ms) if ms else None

    def state_messages(self) -> List[dict]:
        return [{"type": "STREAM", "stream": s["stream"]} for s in self.states.values()]

    @property
    def cpu_per_1k(self) -> Optional[float]:
        return self.cpu / self.total_records * 1000 if self.total_records else None


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


def source_cmd(workdir: Path, tag: str, config: dict, streams: List[str], state: Optional[list] = None) -> List[str]:
    paths = {}
    for kind, payload in (("config", config), ("catalog", catalog_for(streams, incremental=True)), ("state", state)):
        if payload is None:
            continue
        path = workdir / f"{tag}.{kind}.json"
        path.write_text(json.dumps(payload))
        paths[kind] = str(path)
    cmd = [SOURCE_ALLO, "read", "--config", paths["config"], "--catalog", paths["catalog"]]
    if "state" in paths:
        cmd += ["--state", paths["state"]]
    return cmd


# ============================================================================ helpers


def pages(n: int) -> int:
    return math.ceil(n / PAGE)


def tomorrow() -> date:
    return datetime.now(timezone.utc).date() + timedelta(days=1)


def connector_windows(start: date, end: date, days: int = WINDOW_DAYS) -> List[tuple]:
    out, lo = [], start
    while lo <= end:
        hi = min(lo + timedelta(days=days - 1), end)
        out.append((lo.isoformat(), hi.isoformat()))
        lo = hi + timedelta(days=1)
    return out


def items_between(fake: FakeServer, lo: str, hi: str) -> int:
    body = {"sort": "DATE_ASC", "type": "ALL", "date": {"from": lo, "to": hi}, "page": 1, "size": 1}
    return int(fake.api("POST", ITEMS_PATH, body=body)["pagination"]["total_count"])


def _git_revision() -> str:
    """Commit of the connector measured, and whether source_allo/ had uncommitted changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "source_allo"], cwd=REPO, capture_output=True,
                               text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (git not available)"
    return f"commit {head or 'unknown'}" + (" with uncommitted changes in source_allo/" if dirty else ", source_allo/ clean")


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


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="small account (3 numbers, 3,000 conversations, 10,000 items, 90 days) for a ~1 minute smoke run")
    ap.add_argument("--scale", nargs="+", default=None, metavar="SCALE",
                    help="the fake's --scale: large (default: 4 numbers, 20,000 conversations, 100,000 items, 365 days), "
                         "small, or CONVERSATIONS [ITEMS [DAYS]]")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--latency-ms", default="100-150", help="jittered per-request latency of the realistic runs")
    ap.add_argument("--repeat", type=int, default=None, help="runs of each CPU-only / memory case (default 3, 1 with --quick)")
    ap.add_argument("--keep-server", action="store_true", help="leave the fake API running at the end (prints its URL)")
    ap.add_argument("--output", default=str(RESULTS / "latest.md"), help="markdown report (default benchmarks/results/latest.md)")
    args = ap.parse_args(argv)

    scale = args.scale or (["3000", "10000", "90"] if args.quick else ["large"])
    repeat = args.repeat or (1 if args.quick else 3)
    RESULTS.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="source-allo-bench-"))
    # The account's latest activity is "now": an incremental sync right after the full one is realistic.
    now = datetime.now(timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")

    busy = _other_busy_processes()
    if busy:
        log("warning: other processes are using the CPU; timings will be noisy:\n  " + "\n  ".join(busy))
    load_at_start = os.getloadavg()[0]
    log(f"starting the fake Allo API (scale {' '.join(scale)}, latency {args.latency_ms} ms, rate limits enforced)")
    t = time.perf_counter()
    fake = FakeServer(scale, args.seed, args.latency_ms, now, RESULTS / "fake_api.log")
    log(f"fake API at {fake.url} (pid {fake.proc.pid}), ready in {time.perf_counter() - t:.1f} s; dataset {fake.dataset['params']}")
    try:
        report = benchmark(fake, workdir, args, repeat, load_at_start, busy)
    finally:
        if args.keep_server:
            lo, _, hi = args.latency_ms.partition("-")
            fake.knobs(latency_ms=[int(lo), int(hi or lo)], enforce_rate_limits=True, read_per_second=20, write_per_second=5)
            log(f"--keep-server: the fake API stays up at {fake.url} (pid {fake.proc.pid}); stop it with kill {fake.proc.pid}")
        else:
            fake.stop()
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report)
    print(report)
    log(f"written to {out}")
    return 0


def benchmark(fake: FakeServer, workdir: Path, args: argparse.Namespace, repeat: int, load_at_start: float,
              busy: List[str]) -> str:
    ds = fake.dataset
    start_iso = ds["start"]                      # e.g. 2025-11-24T00:00:00Z
    start_day = start_iso[:10]
    numbers = ds["numbers"]
    config = {"api_key": fake.key, "api_url": fake.url, "start_date": start_iso}
    me = fake.api("GET", "/v2/api/me")["data"]["rate_limits"]
    get_rate, post_rate = int(me["read_per_second"]), int(me["write_per_second"])

    # ---------------------------------------------------------------- what a perfect client must send
    conv_counts = {n: int(fake.api("GET", CONV_PATH, params={"allo_number": n, "page": 1, "size": 1})["pagination"]["total_count"])
                   for n in numbers}
    total_conv = sum(conv_counts.values())
    total_items = items_between(fake, start_day, tomorrow().isoformat())
    conv_min = 2 + sum(pages(c) for c in conv_counts.values())          # me + numbers + pages per number
    conv_bound = conv_min / get_rate
    items_data_min = pages(total_items)
    items_min = 1 + items_data_min                                       # me (GET) + pages (POST)
    items_bound = max(1 / get_rate, items_data_min / post_rate)          # the two budgets are independent
    log(f"account: {len(numbers)} numbers, {total_conv} conversations {list(conv_counts.values())}, {total_items} items; "
        f"limits {get_rate} GET/s, {post_rate} POST/s")
    time.sleep(1.1)  # let the preflight requests leave the server's 1-second windows

    # ---------------------------------------------------------------- (a), (b), (c): realistic
    conv = run_child("(a) full sync: conversations", source_cmd(workdir, "a", config, ["conversations"]), fake)
    items = run_child("(b) full sync: conversation_items", source_cmd(workdir, "b", config, ["conversation_items"]), fake)
    items_windows = items.windows()
    state = conv.state_messages() + items.state_messages()
    incr = run_child("(c) incremental, no new activity: both streams",
                     source_cmd(workdir, "c", config, ["conversations", "conversation_items"], state), fake)
    if incr.stats.get("drift_items_added"):
        log("warning: the fake added activity during the incremental run")

    # Incremental lower bound: one request per partition the cursor must cover, plus me and numbers.
    items_state_day = ((items.states.get("conversation_items") or {}).get("stream", {}).get("stream_state") or {}).get("date")
    if items_state_day:
        incr_start = date.fromisoformat(items_state_day[:10]) - timedelta(days=LOOKBACK_DAYS)
        incr_item_windows = len(connector_windows(incr_start, tomorrow()))
    else:
        incr_item_windows = 1
    incr_bound = len(numbers) + incr_item_windows + 2

    # ---------------------------------------------------------------- CPU-only: no latency, no limits
    # `GET /v2/api/me` now reports huge limits, so the connector's api_budget (paced from /me) does not
    # throttle either: this isolates the CPU cost of the framework.
    fake.knobs(latency_ms=None, enforce_rate_limits=False, read_per_second=100_000, write_per_second=100_000)
    # Window-aware minimum for (b): every window costs at least one request.
    window_counts = [items_between(fake, lo, hi) for lo, hi in items_windows]
    items_window_min = 1 + sum(max(1, pages(n)) for n in window_counts)
    # What the connector's 1-day lookback makes necessary: a page per 100 rows it must re-read.
    incr_conv_rows = {n: int(fake.api("GET", CONV_PATH, params={"allo_number": n, "page": 1, "size": 1, "last_activity_since": since})
                                  ["pagination"]["total_count"])
                      for n, since in _conversation_since(incr).items()}
    incr_lookback_min = 2 + sum(max(1, pages(c)) for c in incr_conv_rows.values()) + sum(
        max(1, pages(items_between(fake, lo, hi))) for lo, hi in incr.windows())

    # Start date for the small memory run: about a tenth of the items.
    small_target = max(1, total_items // 10)
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

    cpu_conn: List[Run] = []
    cpu_base: List[Run] = []
    mem_small: List[Run] = []
    base_cmd = [PYTHON, BASELINE, "--url", fake.url, "--api-key", fake.key, "--stream", "conversation_items",
                "--start-date", start_day, "--window-days", str(WINDOW_DAYS)]
    for i in range(repeat):
        # Alternate the order so that neither side always runs on a warmer machine.
        pair = [("connector", lambda: run_child(f"CPU-only connector, conversation_items #{i + 1}",
                                                source_cmd(workdir, f"cpu{i}", config, ["conversation_items"]), fake)),
                ("baseline", lambda: run_child(f"CPU-only baseline_loop.py #{i + 1}", base_cmd, fake))]
        for kind, fn in (pair if i % 2 == 0 else pair[::-1]):
            (cpu_conn if kind == "connector" else cpu_base).append(fn())
        mem_small.append(run_child(f"memory: conversation_items since {small_start} (~{small_items} items) #{i + 1}",
                                   source_cmd(workdir, f"mem{i}", small_config, ["conversation_items"]), fake))

    # ---------------------------------------------------------------- evaluate
    def med(runs: List[Run], attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in runs)

    conn_records = statistics.median(r.total_records for r in cpu_conn)
    base_records = statistics.median(r.total_records for r in cpu_base)
    conn_wall_pr = med(cpu_conn, "wall") / conn_records if conn_records else float("inf")
    base_wall_pr = med(cpu_base, "wall") / base_records if base_records else float("inf")
    conn_cpu_pr = med(cpu_conn, "cpu") / conn_records if conn_records else float("inf")
    base_cpu_pr = med(cpu_base, "cpu") / base_records if base_records else float("inf")
    wall_ratio = conn_wall_pr / base_wall_pr
    cpu_ratio = conn_cpu_pr / base_cpu_pr
    conn_read = [r.read_phase for r in cpu_conn if r.read_phase]
    read_ratio = (statistics.median(conn_read) / conn_records) / base_wall_pr if conn_read else None

    rss_big = med(cpu_conn, "maxrss_mb")
    rss_small = med(mem_small, "maxrss_mb")
    connector_runs = [conv, items, incr] + cpu_conn + mem_small
    rss_max = max(r.maxrss_mb for r in connector_runs)
    conv_ratio = conv_bound / conv.wall
    items_ratio = items_bound / items.wall
    realistic = [conv, items, incr]
    total_429 = sum(r.rate_limited for r in realistic)

    def ok(flag: bool) -> str:
        return "PASS" if flag else "**FAIL**"

    all_ok = all(r.returncode == 0 and not r.errors for r in connector_runs + cpu_base)
    targets = [
        ("Every run exits 0 without error", "all runs", "exit 0, no ERROR trace",
         "yes" if all_ok else "no", ok(all_ok)),
        ("Full sync reads every row", "(a), (b)", f"{total_conv:,} + {total_items:,}",
         f"{conv.records.get('conversations', 0):,} + {items.records.get('conversation_items', 0):,}",
         ok(conv.records.get("conversations") == total_conv and items.records.get("conversation_items") == total_items)),
        ("Ratio to the rate-limit bound, conversations", "(a)", ">= 0.90",
         f"{conv_ratio:.3f} ({conv_bound:.1f} s bound / {conv.wall:.1f} s)", ok(conv_ratio >= 0.9)),
        ("Ratio to the rate-limit bound, conversation_items", "(b)", ">= 0.90",
         f"{items_ratio:.3f} ({items_bound:.1f} s bound / {items.wall:.1f} s)", ok(items_ratio >= 0.9)),
        ("Requests vs minimum, conversations", "(a)", f"<= 1.02 x {conv_min:,} = {1.02 * conv_min:,.0f}",
         f"{conv.requests:,} ({conv.requests / conv_min:.3f} x)", ok(conv.requests <= 1.02 * conv_min)),
        ("Requests vs minimum, conversation_items", "(b)", f"<= 1.02 x {items_min:,} = {1.02 * items_min:,.0f}",
         f"{items.requests:,} ({items.requests / items_min:.3f} x)", ok(items.requests <= 1.02 * items_min)),
        ("429 responses received", "(a)+(b)+(c)", "== 0",
         f"{total_429} ({conv.rate_limited} + {items.rate_limited} + {incr.rate_limited})", ok(total_429 == 0)),
        ("Incremental, no new activity: requests", "(c)",
         f"<= {len(numbers)} numbers + {incr_item_windows} window(s) + me + numbers = {incr_bound}",
         f"{incr.requests} ({incr.count(CONV_PATH)} conversations, {incr.count(ITEMS_PATH)} items, "
         f"{sum(incr.count(p) for p in FIXED_PATHS)} fixed)", ok(incr.requests <= incr_bound)),
        ("Peak RSS, every connector run", "all", "< 250 MB", f"{rss_max:.0f} MB", ok(rss_max < 250)),
        ("Peak RSS flat: all items vs ~1/10", "memory", "<= 1.3 x",
         f"{rss_big:.0f} MB ({conn_records:,.0f}) vs {rss_small:.0f} MB ({small_items:,}) = {rss_big / rss_small:.2f} x",
         ok(rss_big <= 1.3 * rss_small)),
        ("CPU-only: wall time per record vs plain loop", "CPU-only", "<= 3 x",
         f"{wall_ratio:.2f} x ({conn_wall_pr * 1e6:.0f} vs {base_wall_pr * 1e6:.0f} us/record)", ok(wall_ratio <= 3)),
        ("CPU-only: CPU time per record vs plain loop", "CPU-only", "<= 3 x",
         f"{cpu_ratio:.2f} x ({conn_cpu_pr * 1e6:.0f} vs {base_cpu_pr * 1e6:.0f} us/record)", ok(cpu_ratio <= 3)),
    ]

    # ---------------------------------------------------------------- report
    lines: List[str] = []
    add = lines.append
    import airbyte_cdk  # noqa: F401  (version only)
    from importlib.metadata import version
    add(f"# source-allo benchmark, {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}")
    add("")
    add(f"Code: {_git_revision()}.")
    add("")
    add(f"Machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, airbyte-cdk {version('airbyte-cdk')}. "
        f"Fake Allo API in its own process: seed {args.seed}, scale `{' '.join(args.scale or (['3000', '10000', '90'] if args.quick else ['large']))}` "
        f"({len(numbers)} numbers, {total_conv:,} conversations, {total_items:,} items, {ds['params']['days']} days), "
        f"latency {args.latency_ms} ms jittered, rate limits {get_rate} GET/s and {post_rate} POST/s enforced per key"
        f"{' (quick run)' if args.quick else ''}. CPU-only runs: median of {repeat}. Load average at start "
        f"{load_at_start:.2f}, at end {os.getloadavg()[0]:.2f}"
        f"{'; OTHER BUSY PROCESSES at start (timings noisy): ' + '; '.join(b[:80] for b in busy) if busy else ''}.")
    add("")
    add("## Targets")
    add("")
    add("| Target | Run | Threshold | Measured | Result |")
    add("|---|---|---|---|---|")
    for row in targets:
        add("| " + " | ".join(row) + " |")
    add("")
    add("## Runs")
    add("")
    add("| Run | Records | Wall s | Records/s | Requests | Minimum | 429s | Bound s | Ratio to bound | "
        "Startup s | API span s | Ratio (API span) | Peak RSS MB | CPU s | CPU s / 1k rec |")
    add("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")

    def row(run: Run, minimum: Optional[int] = None, bound: Optional[float] = None) -> None:
        rps = run.total_records / run.wall if run.wall else None
        span = run.api_span
        add("| " + " | ".join([
            run.name, fmt(run.total_records), fmt(run.wall, 1), fmt(rps, 0), fmt(run.requests),
            fmt(minimum), fmt(run.rate_limited), fmt(bound, 1),
            fmt(bound / run.wall, 3) if bound else "n/a",
            fmt(run.startup, 2), fmt(span, 1), fmt(bound / span, 3) if bound and span else "n/a",
            fmt(run.maxrss_mb, 0), fmt(run.cpu, 1), fmt(run.cpu_per_1k, 3),
        ]) + " |")

    row(conv, conv_min, conv_bound)
    row(items, items_min, items_bound)
    row(incr, incr_bound, None)
    for run in cpu_conn + cpu_base + mem_small:
        row(run)
    add("")
    add("## Details")
    add("")
    add(f"* (a) requests by endpoint: {json.dumps(conv.stats.get('by_endpoint', {}))}; per-number conversations "
        f"{conv_counts}.")
    add(f"* (b) requests by endpoint: {json.dumps(items.stats.get('by_endpoint', {}))}. The connector read "
        f"{len(items_windows)} windows of {WINDOW_DAYS} days; with at least one request per window the minimum "
        f"is {items_window_min:,} ({items.requests / items_window_min:.3f} x measured); "
        f"rows per window: {window_counts}.")
    add(f"* (c) requests by endpoint: {json.dumps(incr.stats.get('by_endpoint', {}))}; records re-read "
        f"(lookback {LOOKBACK_DAYS} day): {incr.records}; item windows requested: {incr.windows()}.")
    add(f"* (c) lookback-aware minimum: me + numbers + one page per {PAGE} re-read rows of each partition = "
        f"{incr_lookback_min} (measured {incr.requests}).")
    add(f"* Achieved data-request rate over the API span: conversations "
        f"{conv.count(CONV_PATH) / conv.api_span if conv.api_span else 0:.2f}/s (limit {get_rate}), items "
        f"{items.count(ITEMS_PATH) / items.api_span if items.api_span else 0:.2f}/s (limit {post_rate}). "
        f"Median server time per data request (latency included): {fmt(conv.server_ms(), 0)} ms / "
        f"{fmt(items.server_ms(), 0)} ms; median client gap (response end -> next request of the same partition): "
        f"{fmt(conv.client_gap_ms(), 0)} ms / {fmt(items.client_gap_ms(), 0)} ms.")
    if read_ratio is not None:
        add(f"* CPU-only, connector read phase only (STREAM_STATUS STARTED -> COMPLETE, i.e. without the CDK's "
            f"~{statistics.median(r.startup for r in cpu_conn if r.startup):.1f} s startup): "
            f"{statistics.median(conn_read):.2f} s, {read_ratio:.2f} x the plain loop's wall time per record.")
    add(f"* CPU-only records: connector {conn_records:,.0f}, baseline {base_records:,.0f} "
        f"({'equal' if conn_records == base_records else 'DIFFERENT'}); requests connector "
        f"{[r.requests for r in cpu_conn]}, baseline {[r.requests for r in cpu_base]}.")
    warnings = sorted({w for r in realistic for w in r.warnings})
    if warnings:
        add(f"* Warnings logged by the realistic runs ({len(warnings)} distinct): " + "; ".join(w[:160] for w in warnings[:5]))
    failed = [r for r in connector_runs + cpu_base if r.returncode != 0 or r.errors]
    for r in failed:
        add(f"* {r.name} failed (exit {r.returncode}): {(r.errors or [r.stderr_tail[-300:]])[0][:300]}")
    add("")
    add("Definitions: see benchmarks/README.md. Minimum requests = ceil(rows/100) data requests per partition "
        "(per Allo number for conversations, one for all items) + `GET /v2/api/me` (+ `GET /v2/api/numbers` for "
        "conversations). Bound = minimum GET requests / GET limit, or minimum POST requests / POST limit when "
        "larger (the budgets are separate). Ratio to bound = bound / wall time of the whole `read` process.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
