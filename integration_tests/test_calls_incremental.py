"""`calls` (GET /v1/api/calls, no date filter) is incremental: each Allo number's pages are read newest first
and paging stops below the saved cursor minus the lookback. Every page's order is checked; a number whose
calls are not served newest first is read in full, with one warning. All through the installed command."""

from collections import Counter

from integration_tests.conftest import config_for
from integration_tests.harness import assert_records_match_schema, catalog_for, run_source

CALLS = "/v1/api/calls"


def call_requests(api):
    return [e for e in api.stats()["log"] if e["path"] == CALLS]


def test_incremental_calls_read_one_page_per_number_and_lose_nothing(fresh_api):
    config, catalog = config_for(fresh_api), catalog_for(["calls"])
    truth = {r["id"]: r for r in fresh_api.truth("calls")}
    numbers = {r["allo_number"] for r in truth.values()}

    first = run_source("read", config, catalog)
    assert first.returncode == 0, first.errors()
    assert {r["id"] for r in first.records("calls")} == set(truth)
    assert_records_match_schema("calls", first.records("calls"))

    # No new activity: at most one request per number.
    fresh_api.reset_stats()
    second = run_source("read", config, catalog, state=first.last_state_per_stream())
    assert second.returncode == 0, second.errors()
    per_number = Counter(e["query"]["allo_number"] for e in call_requests(fresh_api))
    assert set(per_number) == numbers and max(per_number.values()) == 1, per_number
    assert len(second.records("calls")) < len(truth) / 3

    # New calls between syncs arrive, and nothing older is missed: the syncs together hold every call.
    added = fresh_api.add_activity(n=20)
    third = run_source("read", config, catalog, state=second.last_state_per_stream())
    assert third.returncode == 0, third.errors()
    new_truth = {r["id"]: r for r in fresh_api.truth("calls")}
    new_ids = set(new_truth) - set(truth)
    assert new_ids, f"the activity added no call: {added}"
    emitted = {r["id"] for run in (first, second, third) for r in run.records("calls")}
    assert new_ids <= {r["id"] for r in third.records("calls")}
    assert emitted == set(new_truth)
    for run in (first, second, third):
        run.assert_secret_absent(config["api_key"])


def test_a_number_whose_calls_are_not_newest_first_is_read_in_full_with_one_warning(fresh_api):
    config, catalog = config_for(fresh_api), catalog_for(["calls"])
    first = run_source("read", config, catalog)
    assert first.returncode == 0, first.errors()
    numbers = sorted({r["allo_number"] for r in first.records("calls")})
    odd = numbers[0]
    fresh_api.set_knobs(calls_oldest_first=[odd])
    fresh_api.add_activity(n=10)
    fresh_api.reset_stats()

    second = run_source("read", config, catalog, state=first.last_state_per_stream())
    assert second.returncode == 0, second.errors()
    truth = {r["id"]: r for r in fresh_api.truth("calls")}
    pages_of_odd = -(-sum(1 for r in truth.values() if r["allo_number"] == odd) // 100)
    per_number = Counter(e["query"]["allo_number"] for e in call_requests(fresh_api))
    assert per_number[odd] == pages_of_odd >= 2, per_number
    assert all(per_number[n] == 1 for n in numbers if n != odd), per_number
    warnings = [w for w in second.logs("WARN") if "not sorted newest first" in w]
    assert len(warnings) == 1 and "calls" in warnings[0] and odd in warnings[0], second.logs("WARN")
    emitted = {r["id"] for run in (first, second) for r in run.records("calls")}
    assert emitted == set(truth)
