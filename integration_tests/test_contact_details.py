"""`contact_details` (GET /v1/api/contact/{contact_id}, one request per contact) through the installed
`source-allo` command: a full read equals the fake's truth, a sync with no change requests no contact, and a
sync after activity requests exactly the contacts it changed, including those changed while the contacts list
was being read. The cursor lives in the stream's state as the parent's (`parent_state`); BEHAVIOR.md §30."""

import time
from collections import Counter
from datetime import datetime, timezone

import pytest

from integration_tests.conftest import config_for
from integration_tests.fake_allo_api import Dataset, FakeAlloApi, Knobs
from integration_tests.harness import assert_records_equal_truth, assert_records_match_schema, catalog_for, run_source

STREAM = "contact_details"
DETAIL = "/v1/api/contact/"
LIST = "/v1/api/contacts"
# The contacts list's cursor ends this long before a sync starts (the manifest's contact_list_stream).
MARGIN_SECONDS = 300


def detail_requests(api):
    return Counter(e["path"][len(DETAIL):] for e in api.stats()["log"] if e["path"].startswith(DETAIL))


def list_requests(api):
    return [e for e in api.stats()["log"] if e["path"] == LIST]


def parent_cursor(run):
    (state,) = [s["stream"]["stream_state"] for s in run.last_state_per_stream() if s["stream"]["stream_descriptor"]["name"] == STREAM]
    return state["parent_state"]["contact_list"]["changed_at"]


@pytest.fixture
def contacts_api():
    # About 120 contacts: two pages of the contacts list.
    with FakeAlloApi(dataset=Dataset(seed=11, scale="small", conversations=150, items=400)) as api:
        yield api


def test_first_sync_reads_every_contact_then_only_the_contacts_that_changed(contacts_api):
    api, config, catalog = contacts_api, config_for(contacts_api), catalog_for([STREAM])
    truth = api.truth(STREAM)
    assert len(truth) > 100, "the dataset should span two pages of the contacts list"

    first = run_source("read", config, catalog)
    assert first.returncode == 0, first.errors()
    records = first.records(STREAM)
    assert len(records) == len(truth)
    assert_records_match_schema(STREAM, records)
    assert_records_equal_truth(STREAM, records, truth)
    # One request per contact, each with the extensions, and the list read once.
    requested = detail_requests(api)
    assert set(requested) == {r["id"] for r in truth} and set(requested.values()) == {1}
    assert all(e["query"] == {"extend": "engagement,activity"} for e in api.stats()["log"] if e["path"].startswith(DETAIL))
    assert [e["query"]["page"] for e in list_requests(api)] == ["0", "1"]
    assert any(r.get("integration_data") for r in records) and any(r.get("activity") for r in records)
    assert parent_cursor(first) == max(r["changed_at"] for r in truth)

    # Nothing changed: the list is read again (it has no date filter), no contact is requested.
    api.reset_stats()
    second = run_source("read", config, catalog, state=first.last_state_per_stream())
    assert second.returncode == 0, second.errors()
    assert second.records() == [] and not detail_requests(api)
    assert len(list_requests(api)) == 2
    assert parent_cursor(second) == parent_cursor(first)

    # Calls and SMS change some contacts (and add new ones): exactly those are requested and emitted.
    api.reset_touched()
    api.add_activity(n=12)
    changed = set(api.touched()["contacts"])
    assert changed
    api.reset_stats()
    third = run_source("read", config, catalog, state=second.last_state_per_stream())
    assert third.returncode == 0, third.errors()
    assert set(detail_requests(api)) == changed and set(detail_requests(api).values()) == {1}
    new_truth = [r for r in api.truth(STREAM) if r["id"] in changed]
    assert_records_equal_truth(STREAM, third.records(STREAM), new_truth)
    assert_records_match_schema(STREAM, third.records(STREAM))
    assert parent_cursor(third) > parent_cursor(second)
    for run in (first, second, third):
        run.assert_secret_absent(config["api_key"])


def test_contacts_changed_while_the_list_is_read_are_read_by_the_next_sync():
    """Activity lands before every answer of the list and of each contact, so contacts change on pages already
    read. The cursor never passes them: the contacts list's cursor ends 5 minutes before the sync starts (this
    machine's clock), and the fake's clock is set so that its history is older than that and its activity newer.
    The next sync, once that activity is 5 minutes old, requests exactly the contacts it changed, and the two
    syncs together hold every contact as it is now. Waits about a minute for that."""
    created = time.time()
    now = datetime.fromtimestamp(created - MARGIN_SECONDS + 25, timezone.utc)
    dataset = Dataset(seed=13, scale="small", conversations=40, items=100, now=now)
    busy = Knobs(activity_per_answer=1, busy_paths=[LIST, "/v1/api/contact/{contact_id}"])
    with FakeAlloApi(dataset=dataset, knobs=busy) as api:
        config, catalog = config_for(api), catalog_for([STREAM])
        first = run_source("read", config, catalog)
        assert first.returncode == 0, first.errors()
        assert time.time() - created < 25, "the first sync must start before the fake's activity is 5 minutes old"
        api.set_knobs(activity_per_answer=0)
        changed = set(api.touched()["contacts"])
        assert changed and api.stats()["activity_events"] > 20
        first_activity = datetime.fromtimestamp(dataset.now_ts - api.stats()["activity_events"] + 1, timezone.utc)
        assert parent_cursor(first) < first_activity.strftime("%Y-%m-%dT%H:%M:%S")

        time.sleep(max(0.0, dataset.now_ts + MARGIN_SECONDS + 2 - time.time()))
        api.reset_stats()
        second = run_source("read", config, catalog, state=first.last_state_per_stream())
        assert second.returncode == 0, second.errors()
        assert set(detail_requests(api)) == changed
        latest = {r["id"]: r for run in (first, second) for r in run.records(STREAM)}
        assert_records_equal_truth(STREAM, list(latest.values()), api.truth(STREAM))


def test_a_contact_deleted_after_the_list_was_read_is_skipped_with_one_warning(contacts_api):
    api = contacts_api
    truth = api.truth(STREAM)
    gone = [truth[3]["id"], truth[70]["id"]]
    api.set_knobs(deleted_contacts=gone)
    run = run_source("read", config_for(api), catalog_for([STREAM]))
    assert run.returncode == 0, run.errors()
    assert_records_equal_truth(STREAM, run.records(STREAM), [r for r in truth if r["id"] not in gone])
    warnings = [w for w in run.logs("WARN") if "CONTACT_NOT_FOUND" in w]
    assert len(warnings) == 1 and warnings[0].startswith(f"Stream `{STREAM}`:"), run.logs("WARN")
    assert all(detail_requests(api)[contact] == 1 for contact in gone), "a missing contact is not retried"
    assert parent_cursor(run) == max(r["changed_at"] for r in truth)


def test_an_unusable_state_reads_every_contact_again_with_a_warning(contacts_api):
    state = [{"type": "STREAM", "stream": {"stream_descriptor": {"name": STREAM},
                                            "stream_state": {"parent_state": {"contact_list": {"changed_at": "last week"}}}}}]
    run = run_source("read", config_for(contacts_api), catalog_for([STREAM]), state=state)
    assert run.returncode == 0, run.errors()
    assert len(run.records(STREAM)) == len(contacts_api.truth(STREAM))
    (warning,) = [w for w in run.logs("WARN") if w.startswith("Ignoring the saved state")]
    assert f"`{STREAM}`" in warning and "'last week'" in warning and "read again in full" in warning


def test_a_key_without_contacts_read_keeps_the_state_at_the_start(contacts_api):
    # The stream is skipped with one warning; once the scope is granted, the next sync reads every contact.
    first = run_source("read", config_for(contacts_api, "conversations_only"), catalog_for([STREAM]))
    assert first.returncode == 0, first.errors()
    assert first.records() == [] and [w for w in first.logs("WARN") if "CONTACTS_READ" in w]
    second = run_source("read", config_for(contacts_api), catalog_for([STREAM]), state=first.last_state_per_stream())
    assert second.returncode == 0, second.errors()
    assert len(second.records(STREAM)) == len(contacts_api.truth(STREAM))
