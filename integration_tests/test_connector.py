"""The installed `source-allo` command against the fake Allo API: spec, check, discover, read, and an
incremental second sync. Every record is validated against its declared schema and compared with the
fake API's ground truth."""

import json
import subprocess
from collections import Counter

import pytest

from integration_tests.conftest import config_for
from integration_tests.fake_allo_api import Dataset, FakeAlloApi, Knobs
from integration_tests.harness import (
    PRIMARY_KEYS,
    SOURCE_ALLO,
    assert_records_equal_truth,
    assert_records_match_schema,
    catalog_for,
    key_of,
    run_source,
)

ALL_STREAMS = list(PRIMARY_KEYS)


def test_spec_masks_the_api_key_and_documents_every_field():
    run = run_source("spec")
    assert run.returncode == 0
    spec = run.of_type("SPEC")[0]["spec"]["connectionSpecification"]
    assert spec["properties"]["api_key"]["airbyte_secret"] is True
    assert spec["required"] == ["api_key"]
    for name, prop in spec["properties"].items():
        assert prop.get("title") and prop.get("description"), f"{name} lacks a title or description"
    assert [p for p, _ in sorted(spec["properties"].items(), key=lambda kv: kv[1]["order"])][:3] == ["api_key", "start_date", "allo_numbers"]


@pytest.mark.parametrize("prefix", ["", "Api-Key "])
def test_check_succeeds_with_the_key_with_or_without_prefix(shared_api, prefix):
    config = config_for(shared_api)
    config["api_key"] = prefix + config["api_key"]
    run = run_source("check", config)
    assert run.connection_status()["status"] == "SUCCEEDED", run.connection_status()
    run.assert_secret_absent(shared_api.keys["full"])


@pytest.mark.parametrize(
    "key,needles",
    [
        ("revoked", ["revoked", "Settings > API"]),
        ("trial", ["trial plans"]),
        ("no_conversations", ["CONVERSATIONS_READ", "Settings > API"]),
    ],
)
def test_check_explains_each_key_problem(shared_api, key, needles):
    run = run_source("check", config_for(shared_api, key))
    status = run.connection_status()
    assert status["status"] == "FAILED"
    for needle in needles:
        assert needle in status["message"], status["message"]
    run.assert_secret_absent(shared_api.keys[key])


def test_check_explains_an_invalid_key(shared_api):
    run = run_source("check", {**config_for(shared_api), "api_key": "ak_live_doesnotexist"})
    status = run.connection_status()
    assert status["status"] == "FAILED" and "invalid" in status["message"] and "Settings > API" in status["message"]
    assert "ak_live_doesnotexist" not in run.stdout


def test_check_succeeds_for_a_key_with_only_conversations_read(shared_api):
    # The check proves the URL, the key, its plan and CONVERSATIONS_READ (every conversation stream needs
    # it); streams needing other scopes are skipped during a read, each with one warning.
    status = run_source("check", config_for(shared_api, "conversations_only")).connection_status()
    assert status["status"] == "SUCCEEDED", status


def test_check_fails_fast_on_a_bad_config_without_a_stack_trace(shared_api):
    requests_before = shared_api.stats()["requests"]
    run = run_source("check", config_for(shared_api, allo_numbers=["+1 415 555"]))
    assert run.connection_status()["status"] == "FAILED"
    assert "allo_numbers" in run.connection_status()["message"]
    assert shared_api.stats()["requests"] == requests_before, "a config that cannot work still reached the API"
    assert "Traceback" not in run.stdout + run.stderr


@pytest.mark.parametrize("content, reason", [(None, "No such file or directory"), ("{not json", "not valid JSON")])
def test_an_unreadable_config_or_catalog_file_is_named_with_what_is_wrong(tmp_path, content, reason):
    path = tmp_path / "input.json"
    if content is not None:
        path.write_text(content)
    for flag in ("config", "catalog"):
        other = tmp_path / "other.json"
        other.write_text("{}")
        args = ["read", "--config", str(path if flag == "config" else other), "--catalog", str(path if flag == "catalog" else other)]
        proc = subprocess.run([SOURCE_ALLO, *args], capture_output=True, text=True, timeout=120)
        errors = [json.loads(line)["trace"]["error"] for line in proc.stdout.splitlines() if '"type":"TRACE"' in line]
        assert proc.returncode == 1 and errors, proc.stdout[-1000:] + proc.stderr[-1000:]
        assert f"the {flag} file {path}" in errors[0]["message"] and reason in errors[0]["message"], errors[0]["message"]
        assert errors[0]["failure_type"] == "config_error" and not errors[0].get("stack_trace")


def test_discover_declares_keys_cursors_and_sync_modes(shared_api):
    run = run_source("discover", config_for(shared_api))
    streams = {s["name"]: s for s in run.of_type("CATALOG")[0]["catalog"]["streams"]}
    assert set(streams) == set(ALL_STREAMS)
    conversations = streams["conversations"]
    assert conversations["source_defined_primary_key"] == [["allo_number"], ["contact_number"]]
    assert conversations["default_cursor_field"] == ["last_activity"]
    assert set(conversations["supported_sync_modes"]) == {"full_refresh", "incremental"}
    for name, stream in streams.items():
        assert stream["source_defined_primary_key"] == [[k] for k in PRIMARY_KEYS[name]]


@pytest.fixture(scope="module")
def full_read(shared_api):
    shared_api.reset_stats()
    run = run_source("read", config_for(shared_api), catalog_for(ALL_STREAMS, incremental=False))
    return run, shared_api.stats()


def test_full_read_succeeds_and_never_prints_the_key(full_read, shared_api):
    run, _ = full_read
    assert run.returncode == 0, run.errors() or run.stderr[-2000:]
    assert not run.errors()
    run.assert_secret_absent(shared_api.keys["full"])


def truth_of(api, stream):
    """What a full read from the dataset's start yields now; for the daily analytics streams, the days from
    that start (at most 365 days back) through today, UTC (the fake computes them as the connector reads)."""
    return api.truth(stream)


@pytest.mark.parametrize("stream", ALL_STREAMS)
def test_full_read_equals_the_api_truth_and_matches_the_schema(full_read, shared_api, stream):
    run, _ = full_read
    records = run.records(stream)
    assert records, f"no {stream} records"
    assert_records_match_schema(stream, records)
    assert_records_equal_truth(stream, records, truth_of(shared_api, stream))


ANALYTICS_METRICS = {
    "team_metrics_daily": {
        "team": ["total_calls", "talk_time_seconds", "calls_over_1_min", "answer_rate"],
        "user": ["calls", "talk_time_seconds", "calls_over_1_min", "answer_rate"],
    },
    "outbound_metrics_daily": {
        "team": ["dials", "connected", "conversations", "conversions", "avg_ringing_time_seconds",
                 "avg_conversation_time_seconds", "total_conversation_time_seconds"],
        "user": ["connected"],
    },
}


@pytest.mark.parametrize("stream", sorted(ANALYTICS_METRICS))
def test_analytics_rows_carry_numbers_and_an_obvious_team_row(full_read, stream):
    run, _ = full_read
    records = run.records(stream)
    days = sorted({r["date"] for r in records})
    team = [r for r in records if r["scope"] == "team"]
    users = [r for r in records if r["scope"] == "user"]
    assert len(team) == len(days) and {r["user_id"] for r in team} == {"team"} and all(r.get("user") is None for r in team)
    assert users and all(r["user_id"].startswith("usr-") and r["user"]["id"] == r["user_id"] for r in users)
    for scope, rows in (("team", team), ("user", users)):
        for name in ANALYTICS_METRICS[stream][scope]:
            values = [r[name] for r in rows]
            assert all(type(v) in (int, float) for v in values), (stream, scope, name, [v for v in values if type(v) not in (int, float)][:3])
        assert sum(r[ANALYTICS_METRICS[stream][scope][0]] for r in rows) > 0, f"{stream}: every {scope} row is zero"
    # The comparison with the day before is not kept: it is the previous day's own row.
    assert not any(isinstance(v, dict) for r in records for k, v in r.items() if k != "user")


def test_conversation_records_carry_their_allo_number_as_a_string(full_read):
    run, _ = full_read
    numbers = Counter(r["allo_number"] for r in run.records("conversations"))
    assert len(numbers) == 3 and all(isinstance(n, str) and n.startswith("+") for n in numbers)


def test_webhooks_never_emit_the_signing_secret(full_read):
    run, _ = full_read
    assert all("signing_secret" not in r for r in run.records("webhooks"))
    assert "whsec_" not in run.stdout


def test_conversations_are_read_with_the_fewest_requests(full_read, shared_api):
    _, stats = full_read
    pages = [(e["query"].get("allo_number"), e["query"].get("page")) for e in stats["log"] if e["path"] == "/v2/api/conversations"]
    assert all(e["query"].get("size") == "100" for e in stats["log"] if e["path"] == "/v2/api/conversations")
    # Page 1 is read exactly once per number, and no page past the last.
    assert len(pages) == len(set(pages)), f"a page was read twice: {Counter(pages).most_common(3)}"
    truth = Counter(r["allo_number"] for r in shared_api.truth("conversations"))
    for number, count in truth.items():
        expected_pages = -(-count // 100)
        assert sorted(p for n, p in pages if n == number) == [str(p) for p in range(1, expected_pages + 1)]
    # The account's numbers are listed once per number-partitioned stream (conversations, conversation_items,
    # calls), plus the phone_numbers stream's own listing.
    assert stats["by_endpoint"].get("GET /v1/api/numbers", 0) <= 3
    assert stats["by_endpoint"].get("GET /v2/api/numbers", 0) <= 1


def test_incremental_second_sync_emits_the_changes_and_far_fewer_records(fresh_api):
    config = config_for(fresh_api)
    catalog = catalog_for(["conversations", "conversation_items"])
    first = run_source("read", config, catalog)
    assert first.returncode == 0, first.errors()
    first_state = first.last_state_per_stream()
    first_conversations = {key_of("conversations", r): r for r in first.records("conversations")}
    assert_records_equal_truth("conversations", first.records("conversations"), fresh_api.truth("conversations"))

    changed = fresh_api.add_activity(n=6)
    assert changed["conversations"]

    second = run_source("read", config, catalog, state=first_state)
    assert second.returncode == 0, second.errors()
    conversations = {key_of("conversations", r): r for r in second.records("conversations")}
    for allo_number, contact_number in changed["conversations"]:
        assert (allo_number, contact_number) in conversations, "a conversation with new activity was not re-emitted"
        truth_row = next(r for r in fresh_api.truth("conversations") if key_of("conversations", r) == (allo_number, contact_number))
        assert conversations[(allo_number, contact_number)]["last_activity"] == truth_row["last_activity"]
    items = {r["id"]: r for r in second.records("conversation_items")}
    for item_id in changed["items"]:
        assert item_id in items, "a new call/SMS was not emitted by the incremental sync"

    # Allo writes the AI summary of the new calls later, without new activity: the lookback picks it up.
    filled = set(fresh_api.fill_pending_summaries()) & set(changed["items"])
    assert filled, "the new calls should have had pending summaries"
    third = run_source("read", config, catalog, state=second.last_state_per_stream())
    assert third.returncode == 0, third.errors()
    third_items = {r["id"]: r for r in third.records("conversation_items")}
    truth_items = {r["id"]: r for r in fresh_api.truth("conversation_items")}
    for item_id in filled:
        assert item_id in third_items, "a call whose AI summary arrived late was not re-emitted"
        assert third_items[item_id]["summary"] == truth_items[item_id]["summary"] is not None
    assert len(conversations) < len(first_conversations) / 3
    assert len(second.records("conversation_items")) < len(first.records("conversation_items")) / 3
    assert_records_match_schema("conversations", conversations.values())

    def cursors(run):
        state = {s["stream"]["stream_descriptor"]["name"]: s["stream"]["stream_state"] for s in run.last_state_per_stream()}
        per_number = {e["partition"]["allo_number"]: e["cursor"]["last_activity"] for e in state["conversations"]["states"]}
        items = {e["partition"]["allo_number"]: e["cursor"]["date"] for e in state["conversation_items"]["states"]}
        return per_number, items

    before, items_before = cursors(first)
    after, items_after = cursors(second)
    assert set(before) == set(after)
    assert any(after[n] > before[n] for n in after) and all(after[n] >= before[n] for n in after)
    assert set(items_before) == set(items_after) and all(items_after[n] >= items_before[n] for n in items_after)


def test_a_key_with_only_conversations_read_syncs_conversations_and_warns_once_per_other_stream(fresh_api):
    config = config_for(fresh_api, "conversations_only")
    fresh_api.reset_stats()
    run = run_source("read", config, catalog_for(ALL_STREAMS, incremental=False))
    assert run.returncode == 0, run.errors()
    by_stream = run.records_by_stream()
    for stream in ("conversations", "conversation_items", "calls"):
        assert_records_equal_truth(stream, by_stream.get(stream, []), fresh_api.truth(stream))
    skipped = {
        "phone_numbers": "PHONE_NUMBERS_READ", "users": "USERS_READ", "tags": "TAGS_READ",
        "summary_templates": "SUMMARY_TEMPLATES_READ", "webhooks": "WEBHOOKS_READ_WRITE",
        "webhook_event_types": "WEBHOOKS_READ_WRITE", "crm_people": "CRM_READ", "crm_companies": "CRM_READ",
        "crm_deals": "CRM_READ", "contacts": "CONTACTS_READ", "contact_details": "CONTACTS_READ",
        "team_metrics_daily": "ANALYTICS_READ",
        "outbound_metrics_daily": "ANALYTICS_READ",
    }
    warnings = run.logs("WARN")
    for stream, scope in skipped.items():
        mine = [w for w in warnings if w.startswith(f"Stream `{stream}`:")]
        assert len(mine) == 1, f"expected one warning for {stream}, got {mine}"
        assert scope in mine[0] and "Settings > API" in mine[0], mine[0]
        assert stream not in by_stream


def test_a_state_in_the_future_reads_nothing_and_keeps_the_state(shared_api):
    """integration_tests/abnormal_state.json: every incremental stream saved far in the future."""
    import json
    from pathlib import Path

    state = json.loads((Path(__file__).parent / "abnormal_state.json").read_text())
    streams = ["conversations", "conversation_items", "crm_people", "crm_deals"]
    run = run_source("read", config_for(shared_api), catalog_for(streams), state=state)
    assert run.returncode == 0, run.errors()
    assert run.records() == []
    saved = {s["stream"]["stream_descriptor"]["name"]: s["stream"]["stream_state"] for s in run.last_state_per_stream()}
    assert all(e["cursor"]["last_activity"].startswith("2099") for e in saved["conversations"]["states"])


def test_long_syncs_report_row_estimates_and_steady_progress(shared_api):
    import os

    run = run_source("read", config_for(shared_api), catalog_for(["conversations", "conversation_items"], incremental=False),
                     env={**os.environ, "SOURCE_ALLO_PROGRESS_SECONDS": "0.2"})
    assert run.returncode == 0, run.errors()
    estimates = {}
    for message in run.of_type("TRACE"):
        if message["trace"]["type"] == "ESTIMATE":
            estimate = message["trace"]["estimate"]
            assert estimate["type"] == "STREAM"
            estimates[estimate["name"]] = estimate["row_estimate"]
    # The last estimate of each stream is the sum of Allo's total_count over its slices.
    assert estimates["conversations"] == len(shared_api.truth("conversations"))
    assert estimates["conversation_items"] == len(shared_api.truth("conversation_items"))
    progress = [line for line in run.logs("INFO") if line.startswith("Progress: ")]
    assert progress and any("of ~" in line for line in progress)


def test_requests_use_only_documented_parameters(full_read):
    """Allo silently ignores unknown body fields, so a stray field would go unnoticed: check every request."""
    _, stats = full_read
    allowed_query = {
        "/v2/api/conversations": {"allo_number", "page", "size", "last_activity_since", "extend"},
        "/v1/api/calls": {"allo_number", "page", "size"},
        "/v1/api/contacts": {"page", "size"},
        "/v1/api/contact/{contact_id}": {"extend"},
        "/v2/api/users": {"status"},
    }
    allowed_body = {
        "/v2/api/conversations/items/search": {"sort", "page", "size", "date", "extend", "allo_number"},
        "/v2/api/crm/people/search": {"page", "size"},
        "/v2/api/crm/companies/search": {"page", "size"},
        "/v2/api/crm/deals/search": {"page", "size"},
        "/v2/api/analytics/overview": {"date"},
        "/v2/api/analytics/outbound": {"date"},
    }
    for entry in stats["log"]:
        route = "/v1/api/contact/{contact_id}" if entry["path"].startswith("/v1/api/contact/") else entry["path"]
        assert set(entry["query"]) <= allowed_query.get(route, set()), (entry["path"], entry["query"])
        body = entry.get("body") or {}
        assert set(body) <= allowed_body.get(entry["path"], set()), (entry["path"], body)
        if "date" in body:
            assert set(body["date"]) == {"from", "to"} and all(len(v) == 10 for v in body["date"].values())
        if entry["path"] == "/v2/api/conversations/items/search":
            assert body["sort"] == "DATE_ASC" and body["size"] == 100


def test_each_list_is_read_one_page_after_the_other():
    # Allo sorts newest first and activity moves rows to the top at any moment: a page requested before the
    # page above it has been answered can miss the rows that crossed their boundary. A single Allo number
    # with 8 pages, and a key allowed 200 GET/s so that pacing does not hide it: no page request of the
    # list may leave before the previous page's answer is back, and each page is requested once.
    dataset = Dataset(seed=5, scale="small", numbers=1, conversations=800, items=50, days=30)
    with FakeAlloApi(dataset=dataset, knobs=Knobs(latency_ms=(60, 80), read_per_second=200)) as api:
        truth = api.truth("conversations")
        assert len({r["allo_number"] for r in truth}) == 1 and len(truth) > 700
        run = run_source("read", config_for(api), catalog_for(["conversations", "calls"]))
        assert run.returncode == 0, [e["message"][:300] for e in run.errors()]
        log = api.stats()["log"]
    for path in ("/v2/api/conversations", "/v1/api/calls"):
        entries = sorted((e for e in log if e["path"] == path), key=lambda e: e["t"])
        pages = Counter(e["query"]["page"] for e in entries)
        assert len(entries) >= 6 and set(pages.values()) == {1}, (path, pages)
        for earlier, later in zip(entries, entries[1:]):
            assert later["t"] >= earlier["t"] + earlier["ms"] / 1000 - 0.005, (
                f"{path}: page {later['query']['page']} was requested before page {earlier['query']['page']} was answered"
            )
    assert len(run.records("conversations")) == len(truth)


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again when the block ends: nothing listens there


def test_an_unreachable_api_fails_fast_with_one_error_naming_the_url(shared_api):
    import time

    url = f"http://127.0.0.1:{_closed_port()}"
    config = {**config_for(shared_api), "api_url": url}
    started = time.monotonic()
    check = run_source("check", config)
    status = check.connection_status()
    assert status["status"] == "FAILED"
    assert url in status["message"] and "refused" in status["message"] and "HTTPS" not in status["message"]
    read = run_source("read", config, catalog_for(ALL_STREAMS))
    assert time.monotonic() - started < 30, "check and read took longer than a few seconds each"
    assert read.returncode == 1 and not read.records()
    errors = read.errors()
    assert len(errors) == 1, [e["message"][:120] for e in errors]
    assert errors[0]["failure_type"] == "config_error" and url in errors[0]["message"] and "refused" in errors[0]["message"]
    for run in (check, read):
        assert "Traceback" not in run.stdout + run.stderr
        run.assert_secret_absent(shared_api.keys["full"])
