"""What the installed `source-allo read` does with the state and catalog Airbyte hands it, against the fake
Allo API.

* A number that joins a sync after the first one (added to `allo_numbers`, or appearing in the workspace
  while `allo_numbers` is empty) has its own past history: the next sync emits all of it, conversations
  and conversation items, whatever the other numbers' saved cursors say.
* A state the connector cannot use (hand-edited, from another connector or version, of the wrong shape)
  ends in exactly one of two outcomes, checked by `assert_reread_in_full_or_config_error`:
  (a) the affected stream is read again in full (every row of the fake's truth emitted, exit 0) and a
      WARN log line names the stream (and the unusable value, when there is one);
  (b) exit 1 with a TRACE error of failure_type `config_error` whose message is about the state and says
      how to fix or reset it.
  Never a `system_error`, never a stack trace as the only explanation, never a silent partial read.
* A catalog naming a stream this connector does not have is refused with a `config_error` that names it
  and lists the connector's streams.
"""

from __future__ import annotations

import copy
import re
from typing import Any, Callable, List, Optional, Sequence

import pytest

from integration_tests.conftest import config_for
from integration_tests.fake_allo_api import Dataset, FakeAlloApi, Knobs
from integration_tests.harness import PRIMARY_KEYS, Run, assert_records_match_schema, catalog_for, key_of, run_source

STREAMS = ["conversations", "conversation_items"]
CATALOG = catalog_for(STREAMS)
US, FR = "+14155550100", "+33187650200"
NEW = "+16285550400"  # a number of the fake's vocabulary the dataset does not use yet
QUIET = dict(enforce_rate_limits=False, read_per_second=200, write_per_second=200)


@pytest.fixture
def two_numbers():
    """Two Allo numbers (US, FR) with 300 conversations each (3 pages) and ~900 items each over 90 days."""
    dataset = Dataset(seed=21, scale="small", numbers=2, conversations=600, items=1800, days=90)
    with FakeAlloApi(dataset=dataset, knobs=Knobs(**QUIET)) as api:
        yield api


@pytest.fixture
def small_api():
    """Two Allo numbers with 120 conversations each and 700 items over 60 days: a full read takes seconds."""
    dataset = Dataset(seed=23, scale="small", numbers=2, conversations=240, items=700, days=60)
    with FakeAlloApi(dataset=dataset, knobs=Knobs(**QUIET)) as api:
        yield api


def read(api: FakeAlloApi, catalog: dict = CATALOG, state: Any = None, **config: Any) -> Run:
    run = run_source("read", config_for(api, **config), catalog, state=state, timeout=240)
    run.assert_secret_absent(api.keys["full"])
    for stream, records in run.records_by_stream().items():
        assert_records_match_schema(stream, records)
    return run


def assert_succeeded(run: Run) -> None:
    assert run.returncode == 0, [e["message"][:500] for e in run.errors()] or run.stderr[-2000:]
    assert not run.errors(), [e["message"][:500] for e in run.errors()]


def of_number(rows: List[dict], number: str) -> List[dict]:
    return [r for r in rows if r["allo_number"] == number]


def assert_state_honoured(run: Run, api: FakeAlloApi, numbers: Sequence[str]) -> None:
    """The numbers synced before were read incrementally (else "everything arrived" would prove nothing)."""
    for stream in STREAMS:
        for number in numbers:
            truth = of_number(api.truth(stream), number)
            again = of_number(run.records(stream), number)
            assert len(again) < len(truth) / 3, (
                f"{stream} of {number} was read again in full ({len(again)} of {len(truth)} rows): the saved state was not used"
            )


def assert_all_emitted(stream: str, run: Run, rows: List[dict], what: str) -> None:
    emitted = {key_of(stream, r) for r in run.records(stream)}
    missing = [key_of(stream, r) for r in rows if key_of(stream, r) not in emitted]
    assert rows, f"no {what} to check"
    assert not missing, f"{stream}: {len(missing)} of {len(rows)} {what} were not emitted, e.g. {missing[:3]}"


# --------------------------------------------------------------------------------------------- new numbers


def test_a_number_added_to_allo_numbers_after_the_first_sync_is_read_in_full(two_numbers):
    api = two_numbers
    first = read(api, allo_numbers=[US])
    assert_succeeded(first)
    assert_all_emitted("conversations", first, of_number(api.truth("conversations"), US), f"conversations of {US}")

    second = read(api, state=first.last_state_per_stream(), allo_numbers=[US, FR])
    assert_succeeded(second)
    assert_all_emitted("conversations", second, of_number(api.truth("conversations"), FR),
                       f"conversations of {FR}, the number added to allo_numbers")
    assert_all_emitted("conversation_items", second, of_number(api.truth("conversation_items"), FR),
                       f"conversation items of {FR}, the number added to allo_numbers")
    assert_state_honoured(second, api, [US])


def test_a_number_that_appears_in_the_workspace_between_two_syncs_is_read_in_full(two_numbers):
    api = two_numbers
    first = read(api)
    assert_succeeded(first)
    assert_all_emitted("conversations", first, api.truth("conversations"), "conversations")

    # The new number's history is in the past (up to 2 days ago): older than the saved cursors minus
    # the lookback, so only a connector that knows the number is new reads it.
    added = api.add_number(NEW, conversations=150)
    assert len(added["conversations"]) == 150
    second = read(api, state=first.last_state_per_stream())
    assert_succeeded(second)
    assert_all_emitted("conversations", second, of_number(api.truth("conversations"), NEW),
                       f"conversations of {NEW}, the number that appeared in the workspace")
    assert_all_emitted("conversation_items", second, of_number(api.truth("conversation_items"), NEW),
                       f"conversation items of {NEW}, the number that appeared in the workspace")
    assert_state_honoured(second, api, [US, FR])


# --------------------------------------------------------------------------------------------- unusable states


HOW_TO_FIX = re.compile(r"\b(reset|clear|remove|delete|fix|edit|start without|refresh|resync)", re.IGNORECASE)


def assert_reread_in_full_or_config_error(
    api: FakeAlloApi,
    run: Run,
    streams: Sequence[str],
    warn_needles: Sequence[str],
    rows: Optional[Callable[[str, dict], bool]] = None,
) -> str:
    """Exactly one of the two acceptable outcomes of an unusable state; returns "reread" or "config_error".

    (a) exit 0, no error; for each of `streams` every true row (those `rows(stream, row)` keeps, when
        given) emitted, and a state message saved for it (the unusable state is replaced); and one WARN
        line containing every one of `warn_needles` (the stream's name, the unusable value).
    (b) exit 1, every TRACE error a `config_error`, one of them mentioning the state and how to fix or
        reset it.
    Anything else fails: another exit code, a `system_error`, an exit 1 without a config error that
    explains it, or an exit 0 with rows missing (a silent partial read) or without the warning.
    """
    errors = run.errors()
    system = [e for e in errors if e.get("failure_type") != "config_error"]
    assert not system, f"a {system[0].get('failure_type')} instead of a clear outcome: {system[0]['message'][:500]}"
    if run.returncode == 1:
        explained = [e for e in errors if "state" in e["message"].lower() and HOW_TO_FIX.search(e["message"])]
        assert explained, (
            "exit 1 without a config_error about the state that says how to fix or reset it: "
            f"{[e['message'][:300] for e in errors] or run.stderr[-1500:]}"
        )
        return "config_error"
    assert run.returncode == 0, f"exit {run.returncode}: {run.stderr[-1500:]}"
    assert not errors, [e["message"][:300] for e in errors]
    saved = {s["stream"]["stream_descriptor"]["name"] for s in run.last_state_per_stream()}
    for stream in streams:
        truth = [r for r in api.truth(stream) if rows is None or rows(stream, r)]
        emitted = {key_of(stream, r) for r in run.records(stream)}
        missing = [key_of(stream, r) for r in truth if key_of(stream, r) not in emitted]
        assert not missing, (
            f"exit 0 but {stream} was not read again in full: {len(missing)} of {len(truth)} rows missing, e.g. {missing[:3]}"
        )
        assert stream in saved, f"{stream} was read again but no new state was saved for it"
    warnings = run.logs("WARN")
    assert any(all(n.lower() in w.lower() for n in warn_needles) for w in warnings), (
        f"exit 0 without a WARN naming {list(warn_needles)}; WARN lines: {[w[:200] for w in warnings][:6]}"
    )
    return "reread"


def stream_state(name: str, stream_state: Any) -> dict:
    return {"type": "STREAM", "stream": {"stream_descriptor": {"name": name}, "stream_state": stream_state}}


def number_entry(number: str, cursor: Any) -> dict:
    return {"partition": {"allo_number": number}, "cursor": cursor}


def newest_activity(api: FakeAlloApi, number: str) -> str:
    return of_number(api.truth("conversations"), number)[0]["last_activity"]


# Each case: (state, streams that must be read in full in outcome (a), needles of the WARN line, the
# rows of those streams the bad state covers: None = all). US carries the unusable entry; FR, where
# present, a valid one (its rows are not judged: it may be read incrementally).
def unusable_states(api: FakeAlloApi) -> dict:
    valid_fr = number_entry(FR, {"last_activity": newest_activity(api, FR)})
    us_only = lambda stream, row: row["allo_number"] == US  # noqa: E731
    return {
        "conversations_cursor_not_a_date": (
            [stream_state("conversations", {"states": [number_entry(US, {"last_activity": "yesterday"}), valid_fr]})],
            ["conversations"], ["conversations", "yesterday"], us_only),
        "conversation_items_cursor_not_a_date": (
            [stream_state("conversation_items", {"date": "yesterday"})],
            ["conversation_items"], ["conversation_items", "yesterday"], None),
        "conversations_states_is_a_string": (
            [stream_state("conversations", {"states": "2026-11-01T00:00:00Z"})],
            ["conversations"], ["conversations"], None),
        "conversations_states_is_an_object": (
            [stream_state("conversations", {"states": number_entry(US, {"last_activity": "2026-11-01T00:00:00Z"})})],
            ["conversations"], ["conversations"], None),
        "conversations_state_of_another_connector": (
            [stream_state("conversations", {"updated": 1700000000})],
            ["conversations"], ["conversations"], None),
        "conversation_items_cursor_under_an_unknown_key": (
            [stream_state("conversation_items", {"updated_at": "2026-11-01T00:00:00Z"})],
            ["conversation_items"], ["conversation_items"], None),
        "conversations_partition_entry_without_cursor": (
            [stream_state("conversations", {"states": [{"partition": {"allo_number": US}}, valid_fr]})],
            ["conversations"], ["conversations"], us_only),
        "legacy_state_message": (
            [{"type": "LEGACY", "data": {"conversations": {"last_activity": "2026-11-01T00:00:00Z"},
                                         "conversation_items": {"date": "2026-11-01"}}}],
            STREAMS, ["state"], None),
        "state_file_is_an_object": (
            {"conversations": {"last_activity": "2026-11-01T00:00:00Z"}, "conversation_items": {"date": "2026-11-01"}},
            STREAMS, ["state"], None),
    }


CASES = [
    "conversations_cursor_not_a_date", "conversation_items_cursor_not_a_date", "conversations_states_is_a_string",
    "conversations_states_is_an_object", "conversations_state_of_another_connector",
    "conversation_items_cursor_under_an_unknown_key", "conversations_partition_entry_without_cursor",
    "legacy_state_message", "state_file_is_an_object",
]


@pytest.mark.parametrize("case", CASES)
def test_an_unusable_state_is_read_again_in_full_with_a_warning_or_refused_as_a_config_error(small_api, case):
    cases = unusable_states(small_api)
    assert sorted(cases) == sorted(CASES)
    state, streams, needles, rows = cases[case]
    run = read(small_api, state=copy.deepcopy(state))
    assert_reread_in_full_or_config_error(small_api, run, streams, needles, rows)


# --------------------------------------------------------------------------------------------- catalog


@pytest.mark.parametrize("unknown", ["conversation", "crm_deal"])
def test_an_unknown_stream_in_the_catalog_is_a_config_error_listing_the_streams(small_api, unknown):
    catalog = catalog_for(["conversations", "calls"])
    typo = copy.deepcopy(catalog["streams"][0])
    typo["stream"]["name"] = unknown
    catalog["streams"].append(typo)
    run = read(small_api, catalog=catalog)
    errors = run.errors()
    assert run.returncode == 1 and errors, f"exit {run.returncode}, errors {[e['message'][:300] for e in errors]}"
    assert all(e.get("failure_type") == "config_error" for e in errors), [(e.get("failure_type"), e["message"][:200]) for e in errors]
    message = errors[0]["message"]
    assert re.search(rf"(?<!\w){re.escape(unknown)}(?!\w)", message), f"the message does not name `{unknown}`: {message}"
    for stream in PRIMARY_KEYS:  # every stream of this connector
        assert re.search(rf"(?<!\w){stream}(?!\w)", message), f"the message does not list `{stream}`: {message}"
    assert not run.records(), "records were emitted before the catalog was refused"
