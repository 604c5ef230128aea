"""A busy Allo account: the installed `source-allo read` against a fake Allo API where calls and SMS land
between any two page answers and concurrent requests are answered in any order.

Allo's contract (OpenAPI, July 2026): `GET /v2/api/conversations` is sorted by most recent activity,
newest first, and `GET /v1/api/calls` newest first; both are paginated by page number. On a live account
activity happens at every moment: a new call or SMS moves its conversation to the top, and every new
conversation or call pushes the rows above it one place down. Rows that existed before a read and are not
touched during it therefore only ever move *down* the list, into pages not read yet, so a client that
reads a list page after page (page k+1 computed after page k) sees every one of them: activity causes
duplicates, never gaps. A client that has page k+1 computed before page k loses the rows that crossed the
k/k+1 boundary in between; nothing in the answers tells it so.

The fake (`Dataset(scale="busy")`: one Allo number, 11 pages of conversations and ~17 pages of v1 calls at
size=100) applies `activity_per_answer` events right before it computes each answer of a list endpoint,
and delays each answer by a random `answer_delay_ms` before computing it, so that a request sent later
can be computed first. It records every conversation key and call id that activity touched
(`api.touched()`). Each stream gets two tests:

1. one sync under that activity: every row that existed before the read and was untouched during it is
   emitted by that sync;
2. that sync, then one more (with the last state of each stream, as Airbyte passes it) with the activity
   stopped: every row of the fake's truth has been emitted by the two syncs together, in its latest
   version.
"""

from __future__ import annotations

from datetime import datetime
from typing import Dict, List, Optional, Sequence

import pytest

from integration_tests.conftest import config_for
from integration_tests.fake_allo_api import Dataset, FakeAlloApi, Knobs
from integration_tests.harness import Run, assert_records_match_schema, catalog_for, key_of, run_source

NUMBER = "+14155550100"  # the busy dataset's only Allo number
PATHS = {"conversations": "/v2/api/conversations", "calls": "/v1/api/calls"}
# No per-second limit (the connector paces itself from the 200/s `GET /v2/api/me` reports), a few ms of
# network latency: the hostility below is the only thing slowing the sync down.
QUIET = dict(enforce_rate_limits=False, read_per_second=200, write_per_second=200, latency_ms=(2, 10))
# Five calls/SMS right before every list answer, 80% of them new conversations (each pushes every row
# one place down); each answer waits 0-300 ms before it is computed.
BUSY = dict(activity_per_answer=5, activity_number=NUMBER, activity_move_share=0.2, answer_delay_ms=(0, 300))


@pytest.fixture
def busy_api():
    with FakeAlloApi(dataset=Dataset(seed=42, scale="busy"), knobs=Knobs(**QUIET)) as api:
        truth = api.truth("conversations")
        assert {r["allo_number"] for r in truth} == {NUMBER} and len(truth) >= 1000  # >= 10 pages at size=100
        assert len(api.truth("calls")) >= 1000
        yield api


def read(api: FakeAlloApi, stream: str, state: Optional[list] = None) -> Run:
    run = run_source("read", config_for(api), catalog_for([stream]), state=state, timeout=240)
    run.assert_secret_absent(api.keys["full"])
    assert run.returncode == 0, [e["message"][:500] for e in run.errors()] or run.stderr[-2000:]
    assert not run.errors(), [e["message"][:500] for e in run.errors()]
    records = run.records(stream)
    assert_records_match_schema(stream, records)
    assert {r["allo_number"] for r in records} == {NUMBER}
    return run


def busy_read(api: FakeAlloApi, stream: str) -> tuple[Run, List[dict], dict, dict]:
    """One sync while the account is busy: (run, the truth just before it, what it touched, the fake's stats)."""
    before = api.truth(stream)
    api.reset_touched()
    api.reset_stats()
    api.set_knobs(**BUSY)
    try:
        run = read(api, stream)
    finally:
        api.set_knobs(activity_per_answer=0)
    stats = api.stats()
    pages = [e for e in stats["log"] if e["path"] == PATHS[stream]]
    assert len(pages) >= 10, f"only {len(pages)} page request(s) of {stream}"
    # Activity landed right before every page answer, i.e. between any two of them.
    assert all(e.get("activity") == BUSY["activity_per_answer"] for e in pages if e["status"] == 200)
    return run, before, api.touched(), stats


def out_of_order(stats: dict, path: str) -> int:
    """How many pairs of pages of one list were computed in the reverse of their page order."""
    pages = sorted(
        (int(e["query"]["page"]), e["computed"]) for e in stats["log"] if e["path"] == path and "computed" in e
    )
    return sum(1 for i, (_, a) in enumerate(pages) for _, b in pages[i + 1:] if b < a)


def describe(rows: Sequence[dict], stream: str) -> List[tuple]:
    if stream == "conversations":
        return [(r["contact_number"], r["last_activity"]) for r in rows[:3]]
    return [(r["id"], r["start_date"]) for r in rows[:3]]


def untouched_before(stream: str, before: List[dict], touched: dict) -> List[dict]:
    if stream == "conversations":
        keys = {tuple(k) for k in touched["conversations"]}
        return [r for r in before if key_of(stream, r) not in keys]
    ids = set(touched["calls"])
    return [r for r in before if r["id"] not in ids]


def newest_versions(stream: str, runs: Sequence[Run]) -> Dict[tuple, dict]:
    union: Dict[tuple, dict] = {}
    for run in runs:
        for record in run.records(stream):
            key = key_of(stream, record)
            previous = union.get(key)
            if stream == "conversations" and previous is not None and _instant(record["last_activity"]) < _instant(previous["last_activity"]):
                continue
            union[key] = record
    return union


def _instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.mark.parametrize("stream", ["conversations", "calls"])
def test_every_row_untouched_during_a_busy_read_is_emitted_by_that_sync(busy_api, stream):
    run, before, touched, stats = busy_read(busy_api, stream)
    untouched = untouched_before(stream, before, touched)
    assert stats["activity_events"] >= 30 and len(untouched) >= 1000
    emitted = {key_of(stream, r) for r in run.records(stream)}
    missing = [r for r in untouched if key_of(stream, r) not in emitted]
    assert not missing, (
        f"{stream}: {len(missing)} of {len(untouched)} rows that existed before the sync and were untouched during it "
        f"were not emitted, e.g. {describe(missing, stream)} ({stats['activity_events']} calls/SMS landed during the "
        f"read; {out_of_order(stats, PATHS[stream])} pair(s) of pages were computed in reverse page order)"
    )


@pytest.mark.parametrize("stream", ["conversations", "calls"])
def test_a_busy_sync_and_a_quiet_next_one_emit_every_row_together(busy_api, stream):
    first, _, touched, _ = busy_read(busy_api, stream)
    assert touched["conversations"] and touched["calls"]
    # The activity stops (answers still come back in any order); the next sync resumes from the state.
    second = read(busy_api, stream, state=first.last_state_per_stream())
    truth = busy_api.truth(stream)
    union = newest_versions(stream, [first, second])
    missing = [r for r in truth if key_of(stream, r) not in union]
    assert not missing, (
        f"{stream}: {len(missing)} of {len(truth)} rows were emitted by neither sync, e.g. {describe(missing, stream)}"
    )
    if stream == "conversations":
        # The second sync is incremental: it reads what moved, not everything again.
        again = len(second.records(stream))
        assert again < len(truth) / 2, f"the second sync read conversations again in full ({again} of {len(truth)}): the state was not used"
        # A conversation that moved during the first sync is caught with its latest activity.
        stale = [r for r in truth if union[key_of(stream, r)]["last_activity"] != r["last_activity"]]
        assert not stale, f"{len(stale)} conversation(s) only emitted in an older version, e.g. {describe(stale, stream)}"
