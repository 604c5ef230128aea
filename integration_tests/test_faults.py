"""Fault injection: the installed `source-allo read` against the fake Allo API with one fault switched on.

Every scenario checks, on the real command's output:

(a) the union of the records emitted by the sync and its retry/resume, de-duplicated on the primary key
    (newest version kept), equals the fake API's truth for `conversations` and `conversation_items`;
(b) no state message points past a record that was not emitted before it: for `conversations` (one cursor
    per Allo number) every true row of that number with `last_activity <= cursor` was emitted earlier, and for
    `conversation_items` (`{"date": D}`, re-read from D minus the lookback) every true item dated before D was
    emitted earlier. This is stronger than "rows older than cursor - lookback": the connector saves a number's
    cursor only once the whole number is read, so everything up to the cursor must be out;
(c) the API key appears nowhere on stdout or stderr;
(d) the exit code and the error / log messages say what happened.

The fake runs in this process (a thread), so a test can also see every request it received (`api.stats()`).
Its per-second rate limit is switched off unless the scenario is about rate limits, so that each test injects
exactly one fault; the limits it reports on `/v2/api/me` are raised so that the connector's request pacing
does not make the suite slow.

Timeouts: the connector's read timeout is 60 s (manifest), too long for this suite.
`test_transient_fault_is_retried_and_the_sync_completes` covers a slow answer that stays under the timeout
(it is read, not abandoned and asked again) and a connection closed without any answer (retried); a stalled
connection reaching the read timeout is not exercised here.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

import pytest

from integration_tests.fake_allo_api import Dataset, FakeAlloApi, Knobs
from integration_tests.fake_allo_api import endpoints as fake_endpoints
from integration_tests.fake_allo_api.errors import ApiError
from integration_tests.harness import (
    SOURCE_ALLO,
    Run,
    assert_records_equal_truth,
    assert_records_match_schema,
    catalog_for,
    key_of,
    run_source,
)

STREAMS = ["conversations", "conversation_items"]
CONVERSATIONS = "/v2/api/conversations"
ITEMS = "/v2/api/conversations/items/search"
NUMBERS = "/v1/api/numbers"  # the listing the per-number partitions come from
WINDOW_DAYS = 10
LOOKBACK_DAYS = 1
# 110 conversations per Allo number (two pages of 100) and several 10-day item windows, some of two pages.
DATASET = dict(scale="small", conversations=330, items=900, days=60)
# The fake's per-key limits as reported on /v2/api/me: high, so the connector's own pacing costs no time.
FAST_LIMITS = dict(read_per_second=200, write_per_second=200)


# --------------------------------------------------------------------------------------------- helpers


@pytest.fixture
def start_api():
    """Starts fake APIs for one test (fresh data and knobs each) and stops them afterwards."""
    started: List[FakeAlloApi] = []

    def start(seed: int = 11, **knobs: Any) -> FakeAlloApi:
        settings = dict(enforce_rate_limits=False, **FAST_LIMITS)
        settings.update(knobs)
        api = FakeAlloApi(dataset=Dataset(seed=seed, **DATASET), knobs=Knobs(**settings)).start()
        started.append(api)
        return api

    yield start
    for api in started:
        api.stop()


def config_for(api: FakeAlloApi, **overrides: Any) -> dict:
    return {
        "api_key": api.keys["full"],
        "api_url": api.url,
        "start_date": api.dataset.start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "conversation_items_window_days": WINDOW_DAYS,
        "lookback_window_days": LOOKBACK_DAYS,
        **overrides,
    }


CATALOG = catalog_for(STREAMS)


def read(api: FakeAlloApi, state: Optional[list] = None, catalog: Optional[dict] = None, **config: Any) -> Run:
    run = run_source("read", config_for(api, **config), catalog or CATALOG, state=state, timeout=240)
    run.assert_secret_absent(api.keys["full"])  # (c), on every run of every scenario
    return run


def _instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def newest_versions(stream: str, runs: Sequence[Run]) -> List[dict]:
    """The de-duplicated union of what `runs` emitted: per primary key, the newest version (the one with
    the latest cursor value, the last emitted among equals)."""
    union: Dict[tuple, dict] = {}
    for run in runs:
        for record in run.records(stream):
            key = key_of(stream, record)
            previous = union.get(key)
            if stream == "conversations" and previous is not None and (
                _instant(record["last_activity"]) < _instant(previous["last_activity"])
            ):
                continue
            union[key] = record
    return list(union.values())


def assert_union_equals_truth(api: FakeAlloApi, runs: Sequence[Run], ignore_keys: Mapping[str, Iterable[tuple]] = {}) -> None:
    """(a) for both streams; `ignore_keys` are records deleted from the API after they were emitted."""
    for stream in STREAMS:
        union = newest_versions(stream, runs)
        ignored = set(ignore_keys.get(stream, ()))
        union = [r for r in union if key_of(stream, r) not in ignored]
        assert_records_equal_truth(stream, union, api.truth(stream))
        assert_records_match_schema(stream, union)


def assert_states_never_ahead(api: FakeAlloApi, runs: Sequence[Run]) -> int:
    """(b): walks the messages of `runs` in order (a sync, then its retry/resume) and checks every state
    message against the records emitted before it. Returns how many state messages were checked."""
    truth_conversations: Dict[str, List[dict]] = defaultdict(list)
    for row in api.truth("conversations"):
        truth_conversations[row["allo_number"]].append(row)
    truth_items = sorted(api.truth("conversation_items"), key=lambda r: r["date"])
    emitted: Dict[str, set] = {stream: set() for stream in STREAMS}
    checked = 0
    for run_index, run in enumerate(runs):
        for message in run.messages:
            if message.get("type") == "RECORD":
                stream = message["record"]["stream"]
                if stream in emitted:
                    emitted[stream].add(key_of(stream, message["record"]["data"]))
                continue
            if message.get("type") != "STATE" or message["state"].get("type") != "STREAM":
                continue
            name = message["state"]["stream"]["stream_descriptor"]["name"]
            state = message["state"]["stream"].get("stream_state") or {}
            if name == "conversations":
                for entry in state.get("states") or []:
                    number = entry["partition"]["allo_number"]
                    cursor = _instant(entry["cursor"]["last_activity"])
                    unemitted = [
                        (row["contact_number"], row["last_activity"])
                        for row in truth_conversations[number]
                        if _instant(row["last_activity"]) <= cursor and key_of("conversations", row) not in emitted["conversations"]
                    ]
                    assert not unemitted, (
                        f"run {run_index}: the conversations state of {number} says {entry['cursor']['last_activity']}, but "
                        f"{len(unemitted)} conversation(s) of that number at or before it were never emitted, e.g. {unemitted[:3]}"
                    )
                    checked += 1
            elif name == "conversation_items":
                # One cursor per Allo number: nothing of that number dated before it may be unemitted.
                for entry in state.get("states") or []:
                    number, saved = entry["partition"]["allo_number"], entry["cursor"]["date"][:10]
                    unemitted = [
                        (row["id"], row["date"])
                        for row in truth_items
                        if row["allo_number"] == number and row["date"][:10] < saved
                        and (row["id"],) not in emitted["conversation_items"]
                    ]
                    assert not unemitted, (
                        f"run {run_index}: the conversation_items state of {number} says {saved}, but {len(unemitted)} "
                        f"item(s) dated before it were never emitted, e.g. {unemitted[:3]}"
                    )
                    checked += 1
    return checked


def items_state(run_or_state: Any) -> Optional[str]:
    """The least advanced of the per-number conversation_items cursors (None without any)."""
    states = run_or_state.last_state_per_stream() if isinstance(run_or_state, Run) else run_or_state
    for state in states:
        if state["stream"]["stream_descriptor"]["name"] == "conversation_items":
            cursors = [e["cursor"]["date"][:10] for e in state["stream"]["stream_state"].get("states") or []]
            return min(cursors) if cursors else None
    return None


def conversation_cursors(states: List[dict]) -> Dict[str, str]:
    for state in states:
        if state["stream"]["stream_descriptor"]["name"] == "conversations":
            return {e["partition"]["allo_number"]: e["cursor"]["last_activity"] for e in state["stream"]["stream_state"].get("states") or []}
    return {}


def requests_to(stats: dict, path: str) -> List[dict]:
    return [e for e in stats["log"] if e["path"] == path]


def log_since(api: FakeAlloApi, started: float) -> dict:
    """The fake's stats, with only the requests that arrived after `started` (a killed process's last
    requests may still be answered, and logged, after it died)."""
    stats = api.stats()
    stats["log"] = [e for e in stats["log"] if e["t"] >= started]
    return stats


def signature(entry: dict) -> str:
    return json.dumps([entry["method"], entry["path"], entry["query"], entry["body"]], sort_keys=True)


def assert_resumed_where_it_stopped(api: FakeAlloApi, state: List[dict], stats: dict) -> None:
    """The resumed run reads no finished item window again and starts each finished Allo number at its
    cursor minus the lookback."""
    start = date.fromisoformat(api.dataset.start.strftime("%Y-%m-%d"))
    item_cursors = {}
    for message in state:
        if message["stream"]["stream_descriptor"]["name"] == "conversation_items":
            item_cursors = {e["partition"]["allo_number"]: e["cursor"]["date"][:10] for e in message["stream"]["stream_state"].get("states") or []}
    assert item_cursors, "the interrupted run saved no conversation_items state"
    requested = requests_to(stats, ITEMS)
    assert requested, "the resumed run requested no conversation items"
    for number, saved in item_cursors.items():
        resume_from = max(start, date.fromisoformat(saved) - timedelta(days=LOOKBACK_DAYS))
        windows = [(e["body"]["date"]["from"], e["body"]["date"]["to"]) for e in requested if e["body"].get("allo_number") == number]
        if not windows:
            continue  # nothing left to read for that number
        assert min(f for f, _ in windows) == resume_from.isoformat(), (
            f"{number}: the resumed run's first item window starts at {min(f for f, _ in windows)}, not at the first "
            f"unfinished day {resume_from} (saved {saved} minus the {LOOKBACK_DAYS}-day lookback)"
        )
        reread = sorted({w for w in windows if w[1] < resume_from.isoformat()})
        assert not reread, f"{number}: the resumed run read finished item windows again: {reread}"
    for number, cursor in conversation_cursors(state).items():
        if _instant(cursor) <= api.dataset.start:
            continue  # that number was not finished: read again from start_date
        expected = (_instant(cursor) - timedelta(days=LOOKBACK_DAYS)).strftime("%Y-%m-%dT%H:%M:%SZ")
        sinces = {e["query"].get("last_activity_since") for e in requests_to(stats, CONVERSATIONS) if e["query"].get("allo_number") == number}
        assert sinces == {expected}, f"{number} finished at {cursor} but the resumed run asked for last_activity_since {sinces}"


def assert_logs_say(run: Run, *needles: str) -> None:
    logs = run.logs()
    assert any(all(n in line for n in needles) for line in logs), (
        f"no log message names {needles}; retry-related log lines: "
        f"{[l[:200] for l in logs if 'etry' in l or 'Allo' in l][:6]}"
    )


# --------------------------------------------------------------------------------------------- transient faults


TRANSIENT_FAULTS = {
    # name: (knobs, words one log line must contain: the endpoint and what happened)
    "429_storm": (dict(rate_limit_storm=6), ("HTTP 429", "RATE_LIMIT_EXCEEDED", "/api/")),
    "5xx_every_4th": (dict(fail_every_n=4, fail_status=500), ("HTTP 500", "INTERNAL_SERVER_ERROR", "request_id", "/v2/api/")),
    "slow_every_3rd": (dict(slow_every_n=3, slow_seconds=1.5), ()),
    "dropped_connection_every_4th": (dict(drop_every_n=4), ("Connection aborted", "/v2/api/")),
    "truncated_json_every_4th": (dict(truncate_every_n=4), ("HTTP 200", "not JSON", "/v2/api/")),
    "html_error_page_every_4th": (dict(html_every_n=4, html_status=502), ("HTTP 502", "not JSON", "/v2/api/")),
    # The list of Allo numbers the conversations partitions come from: its first answer only.
    "truncated_numbers_list": (dict(truncate_every_n=1, fault_limit=1, fault_paths=[NUMBERS]), ("HTTP 200", "not JSON", NUMBERS)),
    "html_numbers_list": (dict(html_every_n=1, fault_limit=1, fault_paths=[NUMBERS]), ("HTTP 502", "not JSON", NUMBERS)),
}


@pytest.mark.parametrize("fault", list(TRANSIENT_FAULTS))
def test_transient_fault_is_retried_and_the_sync_completes(start_api, fault):
    knobs, needles = TRANSIENT_FAULTS[fault]
    api = start_api(**knobs)
    run = read(api)
    stats = api.stats()

    assert run.returncode == 0, [e["message"][:500] for e in run.errors()] or run.stderr[-2000:]
    assert not run.errors()
    faulty = [e for e in stats["log"] if e["status"] != 200 or (knobs.get("slow_every_n") and e["ms"] >= 1000 * knobs["slow_seconds"])]
    assert faulty or knobs.get("truncate_every_n"), f"the fault {fault} never fired: {stats['by_status']}"
    assert_union_equals_truth(api, [run])
    assert assert_states_never_ahead(api, [run]) > 0

    # Each number-partitioned stream lists the numbers itself: that listing is counted apart.
    requests = Counter(signature(e) for e in stats["log"] if e["path"] != NUMBERS)
    listings = [e for e in stats["log"] if e["path"] == NUMBERS]
    partitioned = len({"conversations", "conversation_items", "calls"} & set(STREAMS))
    if "storm" in fault:
        # Waited as Retry-After (1 s) asked before sending the same request again.
        storms = [e for e in stats["log"] if e["status"] == 429]
        assert len(storms) == knobs["rate_limit_storm"]
        for refused in storms:
            if refused["path"] == NUMBERS:
                continue  # several streams send this same request: another stream's is no retry
            retries = [e for e in stats["log"] if signature(e) == signature(refused) and e["t"] > refused["t"]]
            assert retries, f"a request refused with 429 was never retried: {signature(refused)}"
            # The fake logs when a request arrived; the CDK sleeps exactly Retry-After once the 429 is read, so
            # the retry arrives 1 s later give or take the timer's few milliseconds.
            assert min(e["t"] for e in retries) >= refused["t"] + 1.0 - 0.01, "retried before Retry-After elapsed"
    elif "slow" in fault:
        # A slow answer (under the 60 s read timeout) is read, not abandoned and asked again.
        assert max(e["ms"] for e in stats["log"]) >= 1000 * knobs["slow_seconds"]
        assert max(requests.values()) == 1, f"a slow request was sent again: {requests.most_common(2)}"
    elif "truncate" in fault:
        # A truncated answer is a 200: the only trace on the server is the same request sent again.
        assert any(count > 1 for count in requests.values()) or len(listings) > partitioned, "no truncated answer was retried"
    else:
        # Every failed request was sent again, and no other request was sent twice.
        failed = {signature(e) for e in faulty}
        for entry in faulty:
            if entry["path"] == NUMBERS:
                assert any(e["status"] == 200 and e["t"] > entry["t"] for e in listings), f"{NUMBERS} was not retried after {entry['status']}"
                continue
            assert requests[signature(entry)] >= 2, f"{entry['path']} was not retried after {entry['status']}"
        assert all(count == 1 for sig, count in requests.items() if sig not in failed)
    if needles:
        assert_logs_say(run, *needles)


# --------------------------------------------------------------------------------------------- hard failures


def test_an_endpoint_failing_on_every_request_fails_the_sync_with_an_actionable_error(start_api, monkeypatch):
    """The items endpoint answers 503 (Allo's error envelope, Retry-After 1 s) to every request.

    Retry-After keeps the test short: without it the connector's exponential backoff (8 retries, waits up to
    60 s each, for every item window) takes minutes to give up; that path is covered with one retry at a time
    by the 5xx case of `test_transient_fault_is_retried_and_the_sync_completes`."""
    api = start_api()
    route = fake_endpoints.ROUTES[("POST", ITEMS)]

    def always_unavailable(req):
        raise ApiError("INTERNAL_SERVER_ERROR", "The service is temporarily unavailable.", status=503, retry_after=1)

    monkeypatch.setitem(fake_endpoints.ROUTES, ("POST", ITEMS), replace(route, handler=always_unavailable))
    # One item window: the stream gives up after the retries of a single request.
    started = time.monotonic()
    run = read(api, conversation_items_window_days=366)
    elapsed = time.monotonic() - started
    stats = api.stats()

    assert run.returncode == 1
    attempts = requests_to(stats, ITEMS)
    assert len(attempts) >= 3 and {e["status"] for e in attempts} == {503}, "the failing request was not retried"
    assert elapsed < 120
    item_errors = [e for e in run.errors() if (e.get("stream_descriptor") or {}).get("name") == "conversation_items"]
    assert item_errors, [e["message"][:300] for e in run.errors()]
    message = item_errors[0]["message"]
    assert ITEMS in message and "HTTP 503" in message and "INTERNAL_SERVER_ERROR" in message, message
    assert re.search(r"request_id req_[a-z0-9]{12}", message), message
    assert item_errors[0]["failure_type"] == "transient_error"
    assert "Traceback" not in message

    # The other stream finished, and its final state was emitted: nothing of it is lost.
    assert not run.records("conversation_items")
    assert_records_equal_truth("conversations", newest_versions("conversations", [run]), api.truth("conversations"))
    cursors = conversation_cursors(run.last_state_per_stream())
    newest = {}
    for row in api.truth("conversations"):
        newest[row["allo_number"]] = max(newest.get(row["allo_number"], ""), row["last_activity"])
    assert cursors == newest, "the conversations state does not reach the newest conversation of each number"
    assert assert_states_never_ahead(api, [run]) > 0


def test_daily_quota_spent_mid_sync_fails_fast_then_the_next_sync_resumes(start_api):
    # A quota a few requests short of a whole sync (counted on an identical account): the first item
    # windows, requested first, finish; the last requests are refused.
    rehearsal = start_api()
    assert read(rehearsal).returncode == 0
    whole_sync = rehearsal.stats()["requests"]
    api = start_api(daily_quota=whole_sync - 3)
    started = time.monotonic()
    first = read(api)
    elapsed = time.monotonic() - started
    first_stats = api.stats()

    # Fails fast with a transient error that names the quota and when it resets; no multi-minute wait.
    assert first.returncode == 1
    assert elapsed < 30, f"the sync waited {elapsed:.0f} s on a daily quota"
    refused = [e for e in first_stats["log"] if e["status"] == 429]
    assert refused, "the quota never ran out: raise the dataset or lower the quota"
    assert max(Counter(signature(e) for e in refused).values()) == 1, "a request refused for the daily quota was retried"
    # One error per interrupted stream (the CDK's closing summary, always a config_error, aside).
    quota_errors = [e for e in first.errors() if "quota" in e["message"] and not e["message"].startswith("During the sync")]
    assert quota_errors, [e["message"][:300] for e in first.errors()]
    for error in quota_errors:
        assert error["failure_type"] == "transient_error"
        assert re.search(r"resets in about \d+ seconds", error["message"]), error["message"]
        assert "API_KEY_QUOTA_EXCEEDED" in error["message"]
    # The finished windows were checkpointed.
    first_state = first.last_state_per_stream()
    # The finished windows were checkpointed: at least one number's cursor moved past the start.
    item_cursors = [
        e["cursor"]["date"][:10]
        for s in first_state if s["stream"]["stream_descriptor"]["name"] == "conversation_items"
        for e in s["stream"]["stream_state"].get("states") or []
    ]
    assert item_cursors and max(item_cursors) > api.dataset.start.strftime("%Y-%m-%d"), (
        "no finished item window was saved before the quota ran out"
    )

    api.set_knobs(daily_quota=None)
    api.reset_stats()
    second = read(api, state=first_state)
    assert second.returncode == 0, [e["message"][:300] for e in second.errors()]
    assert_resumed_where_it_stopped(api, first_state, api.stats())
    assert_union_equals_truth(api, [first, second])
    assert assert_states_never_ahead(api, [first, second]) > 0


def test_killed_mid_sync_then_resumed_from_the_last_state(start_api):
    api = start_api(latency_ms=(40, 60))
    config = config_for(api, conversation_items_window_days=5)
    start_day = api.dataset.start.strftime("%Y-%m-%d")
    with tempfile.TemporaryDirectory(prefix="source-allo-kill-") as tmp:
        config_path, catalog_path = Path(tmp) / "config.json", Path(tmp) / "catalog.json"
        config_path.write_text(json.dumps(config))
        catalog_path.write_text(json.dumps(CATALOG))
        with open(Path(tmp) / "stderr", "w+") as stderr:
            proc = subprocess.Popen(
                [SOURCE_ALLO, "read", "--config", str(config_path), "--catalog", str(catalog_path)],
                stdout=subprocess.PIPE, stderr=stderr, text=True,
            )
            lines, saved_days = [], set()
            try:
                for line in proc.stdout:
                    lines.append(line)
                    if '"STATE"' in line:
                        state = json.loads(line)["state"]
                        if state["stream"]["stream_descriptor"]["name"] == "conversation_items":
                            for entry in state["stream"]["stream_state"].get("states") or []:
                                saved_days.add(entry["cursor"]["date"])
                            # The CDK's per-partition cursor emits its first state when a window closes, then
                            # at most every 10 minutes: kill at the first one, while much is still unread.
                            if saved_days:
                                proc.send_signal(signal.SIGKILL)
                                break
            finally:
                if proc.poll() is None:
                    proc.kill()
                # What the process had written before it died still reaches the platform.
                lines.extend(proc.stdout.read().splitlines(keepends=True))
                proc.wait(timeout=30)
            stderr.seek(0)
            killed_stderr = stderr.read()
    assert proc.returncode == -signal.SIGKILL, "the sync finished before it could be killed: slow the fake down"
    messages = []
    for index, line in enumerate(lines):
        try:
            messages.append(json.loads(line))
        except ValueError:
            # Only the line the process was writing when it died may be cut short.
            assert index == len(lines) - 1 and not line.endswith("\n"), f"unreadable output line: {line[:200]!r}"
    killed = Run(proc.returncode, "".join(lines), killed_stderr, messages)
    killed.assert_secret_absent(api.keys["full"])
    state = killed.last_state_per_stream()
    assert items_state(state) is not None and items_state(state) >= start_day
    assert len(killed.records("conversation_items")) < len(api.truth("conversation_items")), "killed too late to matter"

    resumed_at = time.time()
    resumed = read(api, state=state, conversation_items_window_days=5)
    assert resumed.returncode == 0, [e["message"][:300] for e in resumed.errors()]
    assert_resumed_where_it_stopped(api, state, log_since(api, resumed_at))
    assert_union_equals_truth(api, [killed, resumed])
    assert assert_states_never_ahead(api, [killed, resumed]) > 0


# --------------------------------------------------------------------------------------------- data moving under the sync


def test_activity_during_paging_causes_duplicates_not_misses(start_api):
    api = start_api(drift_during_paging=True, drift_items=3)
    sync_start = api.dataset.now
    first = read(api)
    assert first.returncode == 0, [e["message"][:300] for e in first.errors()]
    assert api.stats()["drift_items_added"] > 0, "no activity happened during paging"
    assert assert_states_never_ahead(api, [first]) > 0

    # Every conversation whose last activity is older than the sync's start was emitted by this sync.
    emitted = {key_of("conversations", r) for r in first.records("conversations")}
    missed = [
        (r["allo_number"], r["contact_number"], r["last_activity"])
        for r in api.truth("conversations")
        if _instant(r["last_activity"]) <= sync_start and key_of("conversations", r) not in emitted
    ]
    assert not missed, f"{len(missed)} conversation(s) older than the sync's start were missed: {missed[:3]}"

    # The conversations that moved during paging are caught by the next sync.
    api.set_knobs(drift_during_paging=False)
    second = read(api, state=first.last_state_per_stream())
    assert second.returncode == 0, [e["message"][:300] for e in second.errors()]
    assert_union_equals_truth(api, [first, second])
    assert assert_states_never_ahead(api, [first, second]) > 0


def test_deletions_during_paging_and_between_syncs_lose_no_conversation(start_api):
    api = start_api()
    deleted: List[tuple] = []
    deleted_items: set = set()

    def delete_newest_after_page_one(allo_number: str) -> None:
        # While the connector reads page 2 of this number, a conversation it already read on page 1 is
        # deleted: every later row moves up one place. Once per number (the connector may read page 1
        # again to recover the shifted rows).
        if any(number == allo_number for number, _ in deleted):
            return
        newest = api.dataset.conversations(allo_number)[0]
        delete(allo_number, newest.contact_number)

    def delete(allo_number: str, contact_number: str) -> None:
        deleted.append((allo_number, contact_number))
        deleted_items.update(
            (r["id"],) for r in api.truth("conversation_items")
            if (r["allo_number"], r["contact_number"]) == (allo_number, contact_number)
        )
        api.delete_conversation(allo_number, contact_number)

    api.after_conversations_page_one = delete_newest_after_page_one  # the fake's drift hook, on this instance
    sync_start = api.dataset.now
    first = read(api)
    api.after_conversations_page_one = lambda allo_number: None
    assert first.returncode == 0, [e["message"][:300] for e in first.errors()]
    assert len(deleted) == 3

    emitted = {key_of("conversations", r) for r in first.records("conversations")}
    missed = [
        (r["allo_number"], r["contact_number"], r["last_activity"])
        for r in api.truth("conversations")
        if _instant(r["last_activity"]) <= sync_start and key_of("conversations", r) not in emitted
    ]
    assert not missed, (
        f"{len(missed)} conversation(s) older than the sync's start were never emitted after a deletion during paging "
        f"(they moved from page 2 to the already-read page 1): {missed}"
    )
    assert assert_states_never_ahead(api, [first]) > 0

    # A deletion between syncs: the next sync simply does not emit it again.
    victim = next(r for r in api.truth("conversations") if key_of("conversations", r) in emitted)
    delete(victim["allo_number"], victim["contact_number"])
    api.add_activity(n=4)
    second = read(api, state=first.last_state_per_stream())
    assert second.returncode == 0
    assert_union_equals_truth(api, [first, second], ignore_keys={"conversations": deleted, "conversation_items": deleted_items})
    assert assert_states_never_ahead(api, [first, second]) > 0


# --------------------------------------------------------------------------------------------- server quirks


@pytest.mark.parametrize("knob", ["ignore_since_filter", "ignore_date_filter"])
def test_server_ignoring_the_incremental_filter(start_api, knob):
    api = start_api(**{knob: True})
    first = read(api)
    assert first.returncode == 0, [e["message"][:300] for e in first.errors()]
    api.add_activity(n=6)
    api.reset_stats()
    state = first.last_state_per_stream()
    second = read(api, state=state)
    assert second.returncode == 0, [e["message"][:300] for e in second.errors()]
    stats = api.stats()
    assert_union_equals_truth(api, [first, second])
    assert assert_states_never_ahead(api, [first, second]) > 0

    if knob == "ignore_since_filter":
        # The listing is newest first: paging stops at the first row older than the saved cursor.
        pages = Counter(e["query"]["allo_number"] for e in requests_to(stats, CONVERSATIONS))
        assert pages and all(count == 1 for count in pages.values()), f"paged past the saved cursor: {pages}"
        # Rows older than the window are dropped, and the log says the server ignored the filter.
        cursors = conversation_cursors(state)
        stale = [
            (r["allo_number"], r["contact_number"], r["last_activity"])
            for r in second.records("conversations")
            if _instant(r["last_activity"]) <= _instant(cursors[r["allo_number"]]) - timedelta(days=LOOKBACK_DAYS)
        ]
        assert not stale, f"{len(stale)} conversation(s) older than the requested window were emitted, e.g. {stale[:3]}"
        assert any("last_activity" in line and "filter" in line for line in second.logs("WARN")), (
            "nothing in the log says the server ignored last_activity_since"
        )
    else:
        # Rows outside each requested window are dropped (each is emitted by its own window) and logged.
        for run in (first, second):
            counts = Counter(r["id"] for r in run.records("conversation_items"))
            assert max(counts.values()) == 1, f"an item was emitted by more than one window: {counts.most_common(1)}"
        resume_from = (date.fromisoformat(items_state(state)) - timedelta(days=LOOKBACK_DAYS)).isoformat()
        assert all(r["date"][:10] >= resume_from for r in second.records("conversation_items"))
        assert_logs_say(second, "outside the requested window", "ignored the date filter")


def _without_pagination(payload: dict, req) -> dict:
    payload.pop("pagination", None)
    return payload


def _overlapping_pages(payload: dict, req) -> dict:
    # An unstable server: each page after the first repeats the last 3 rows of the page before.
    page = int((req.q("page") if req.method == "GET" else req.json().get("page")) or 1)
    if page > 1 and payload["data"]:
        if req.method == "GET":
            previous = replace(req, query={**req.query, "page": [str(page - 1)]})
        else:
            previous = replace(req, raw_body=json.dumps({**req.json(), "page": page - 1}).encode(), _json=None)
        payload["data"] = previous_page_tail(previous) + payload["data"]
    return payload


def previous_page_tail(req) -> List[dict]:
    return ORIGINAL_HANDLERS[(req.method, req.path)](req)["data"][-3:]


ORIGINAL_HANDLERS = {key: fake_endpoints.ROUTES[key].handler for key in (("GET", CONVERSATIONS), ("POST", ITEMS))}


@pytest.mark.parametrize("quirk", [_without_pagination, _overlapping_pages], ids=["no_pagination_block", "rows_repeated_across_pages"])
def test_pagination_quirks(start_api, monkeypatch, quirk):
    api = start_api()
    for key, handler in ORIGINAL_HANDLERS.items():
        monkeypatch.setitem(
            fake_endpoints.ROUTES, key,
            replace(fake_endpoints.ROUTES[key], handler=lambda req, handler=handler: quirk(handler(req), req)),
        )
    run = read(api)
    stats = api.stats()
    assert run.returncode == 0, [e["message"][:300] for e in run.errors()]
    assert_union_equals_truth(api, [run])
    assert assert_states_never_ahead(api, [run]) > 0
    # Each number's two pages are read once, and nothing past them.
    pages = Counter((e["query"]["allo_number"], e["query"]["page"]) for e in requests_to(stats, CONVERSATIONS))
    assert sorted(pages) == sorted((n, p) for n in {n for n, _ in pages} for p in ("1", "2")) and max(pages.values()) == 1, pages
    if quirk is _overlapping_pages:
        duplicates = Counter(key_of("conversations", r) for r in run.records("conversations"))
        assert max(duplicates.values()) == 2, "the repeated rows were not served"
