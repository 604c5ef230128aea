"""Unit tests of the custom components (each guards one behaviour the manifest relies on)."""

import json
from unittest import mock

import pytest
import requests

from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.streams.http.error_handlers.response_models import ResponseAction
from airbyte_cdk.sources.types import StreamSlice
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_allo.allo_api import KeyInfo, describe_error, explain_auth_failure
from source_allo.components import (
    AlloBackoffStrategy,
    AlloErrorHandler,
    AlloNumberPartitionRouter,
    AlloPagination,
    TeamMetricsExtractor,
    WindowRecordFilter,
)


def _response(body, status=200, headers=None, url="https://api.withallo.com/v2/api/conversations?allo_number=%2B1&page=2", method="GET"):
    response = requests.Response()
    response.status_code = status
    response._content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response.headers.update(headers or {})
    response.url = url
    response.request = requests.Request(method, url).prepare()
    return response


# ------------------------------------------------------------------------------------------ pagination

def _v2(page, total_pages, has_more=None):
    return {"data": [{}] * 100, "pagination": {"page": page, "size": 100, "total_count": total_pages * 100, "total_pages": total_pages, "has_more": page < total_pages if has_more is None else has_more}}


def test_pagination_sends_page_one_explicitly_and_only_once():
    strategy = AlloPagination(config={}, parameters={}, page_size=100, start_from_page=1)
    assert strategy.initial_token == 1
    assert strategy.next_page_token(_response(_v2(1, 3)), 100, None, 1) == 2
    assert strategy.next_page_token(_response(_v2(2, 3)), 100, None, 2) == 3


def test_pagination_stops_on_has_more_false_without_an_extra_empty_request():
    strategy = AlloPagination(config={}, parameters={}, page_size=100, start_from_page=1)
    # A full last page (total is a multiple of 100): PageIncrement would ask for page 4.
    assert strategy.next_page_token(_response(_v2(3, 3)), 100, None, 3) is None


def test_pagination_never_goes_past_total_pages_even_if_has_more_lies():
    strategy = AlloPagination(config={}, parameters={}, page_size=100, start_from_page=1)
    assert strategy.next_page_token(_response(_v2(3, 3, has_more=True)), 100, None, 3) is None


def test_pagination_without_metadata_falls_back_to_the_short_page_rule():
    strategy = AlloPagination(config={}, parameters={}, page_size=100, start_from_page=1)
    assert strategy.next_page_token(_response({"data": [{}] * 100}), 100, None, 4) == 5
    assert strategy.next_page_token(_response({"data": [{}] * 7}), 7, None, 5) is None
    assert strategy.next_page_token(_response({"data": []}), 0, None, 5) is None


def test_v1_pagination_is_zero_indexed_with_nested_metadata():
    strategy = AlloPagination(config={}, parameters={}, page_size=100, start_from_page=0)
    assert strategy.initial_token == 0
    contacts = lambda page: {"data": {"results": [{}] * 100, "metadata": {"pagination": {"total_pages": 2, "current_page": page}}}}
    assert strategy.next_page_token(_response(contacts(0)), 100, None, 0) == 1
    assert strategy.next_page_token(_response(contacts(1)), 100, None, 1) is None
    calls = {"data": {"results": [{}] * 100, "metadata": {"total_pages": 1, "current_page": 0}}}
    assert strategy.next_page_token(_response(calls), 100, None, 0) is None


# ------------------------------------------------------------------------------------------ backoff

def test_backoff_honours_retry_after_header():
    strategy = AlloBackoffStrategy(config={}, parameters={})
    wait = strategy.backoff_time(_response({}, 429, {"Retry-After": "3"}), 1)
    assert 3 <= wait < 3.5


def test_backoff_reads_retry_after_seconds_from_the_body_when_the_header_is_missing():
    strategy = AlloBackoffStrategy(config={}, parameters={})
    wait = strategy.backoff_time(_response({"error": {"code": "RATE_LIMIT_EXCEEDED", "retry_after_seconds": 2}}, 429), 1)
    assert 2 <= wait < 2.5


def test_backoff_refuses_to_sleep_for_hours():
    strategy = AlloBackoffStrategy(config={}, parameters={}, max_wait_seconds=120)
    with pytest.raises(AirbyteTracedException) as error:
        strategy.backoff_time(_response({}, 429, {"Retry-After": "3600"}), 1)
    assert error.value.failure_type == FailureType.transient_error
    assert "3600" in error.value.message


def test_exponential_backoff_has_jitter_and_a_cap():
    strategy = AlloBackoffStrategy(config={}, parameters={}, max_failure_streak=1000)
    waits = {round(strategy.backoff_time(_response({}, 503), 4), 3) for _ in range(20)}
    assert len(waits) > 1  # jittered
    assert all(0 < w <= 8 for w in waits)
    assert all(w <= 60 for w in (strategy.backoff_time(_response({}, 503), 30) for _ in range(20)))


# ------------------------------------------------------------------------------------------ errors

def test_non_json_200_is_retried_not_decoded():
    handler = AlloErrorHandler(config={}, parameters={})
    resolution = handler.interpret_response(_response(b'{"data": [{"id": 1', 200))
    assert resolution.response_action == ResponseAction.RETRY
    html = handler.interpret_response(_response(b"<html><body>502 Bad Gateway</body></html>", 200, {"Content-Type": "text/html"}))
    assert html.response_action == ResponseAction.RETRY


def test_error_message_names_endpoint_status_code_and_request_id_but_not_the_query():
    body = {"error": {"type": "server_error", "code": "INTERNAL_SERVER_ERROR", "message": "boom", "request_id": "req_abc123def456"}}
    handler = AlloErrorHandler(config={}, parameters={})
    resolution = handler.interpret_response(_response(body, 500))
    assert resolution.response_action == ResponseAction.RETRY
    for part in ("/v2/api/conversations", "500", "INTERNAL_SERVER_ERROR", "req_abc123def456"):
        assert part in resolution.error_message
    assert "allo_number" not in resolution.error_message


def test_describe_error_reads_the_v1_envelope():
    text = describe_error(_response({"code": "API_KEY_INSUFFICIENT_SCOPE", "details": [{"message": "required=CONTACTS_READ", "field": "scope"}]}, 403, url="https://api.withallo.com/v1/api/contacts?page=0"))
    assert text == "GET /v1/api/contacts -> HTTP 403 API_KEY_INSUFFICIENT_SCOPE: required=CONTACTS_READ"


@pytest.mark.parametrize("code,needle", [("API_KEY_TRIAL_NOT_ALLOWED", "trial plans"), ("API_KEY_REVOKED", "revoked"), ("API_KEY_INVALID", "invalid"), ("API_KEY_INSUFFICIENT_SCOPE", "scope")])
def test_auth_failures_are_explained(code, needle):
    message = explain_auth_failure(_response({"error": {"code": code, "message": "x"}}, 401 if "INVALID" in code or "REVOKED" in code else 403))
    assert needle in message
    assert code in message or needle == "trial plans"


def test_key_info_scope_gating():
    info = KeyInfo(scopes={"CONVERSATIONS_READ", "CONTACTS_READ_WRITE"})
    assert info.can_read("conversations") and info.can_read("calls") and info.can_read("contacts")
    assert not info.can_read("users") and not info.can_read("crm_deals")


# ------------------------------------------------------------------------------------------ records

def test_window_filter_drops_rows_outside_the_requested_window_and_logs(caplog):
    window = StreamSlice(partition={}, cursor_slice={"start_time": "2026-01-01", "end_time": "2026-01-30"})
    records = [{"id": "a", "date": "2025-12-31T23:59:59Z"}, {"id": "b", "date": "2026-01-01T00:00:00Z"}, {"id": "c", "date": "2026-01-30T23:59:59Z"}, {"id": "d", "date": "2026-01-31T00:00:00Z"}]
    kept = list(WindowRecordFilter(config={}, condition="", parameters={}).filter_records(records, {}, window))
    assert [r["id"] for r in kept] == ["b", "c"]
    assert "outside the requested window" in caplog.text


def test_window_filter_applies_the_allo_numbers_condition():
    window = StreamSlice(partition={}, cursor_slice={"start_time": "2026-01-01", "end_time": "2026-01-30"})
    records = [{"id": "a", "date": "2026-01-02T00:00:00Z", "allo_number": "+14155550100"}, {"id": "b", "date": "2026-01-02T00:00:00Z", "allo_number": "+14155550101"}]
    kept = list(WindowRecordFilter(config={"allo_numbers": ["+14155550101"]}, condition="", parameters={}).filter_records(records, {}, window))
    assert [r["id"] for r in kept] == ["b"]


def test_team_metrics_extractor_yields_a_team_row_and_one_row_per_user():
    body = {"data": {"summary": {"total_calls": {"value": 3}}, "breakdown": [{"user": {"id": "usr-1", "name": "A"}, "calls": {"value": 2}}, {"user": {"id": "usr-2"}, "calls": {"value": 1}}], "last_updated": "2026-04-21T19:07:00Z"}}
    rows = list(TeamMetricsExtractor(config={}, parameters={}).extract_records(_response(body)))
    assert [(r["scope"], r["user_id"]) for r in rows] == [("team", ""), ("user", "usr-1"), ("user", "usr-2")]
    assert rows[0]["total_calls"] == {"value": 3} and rows[1]["calls"] == {"value": 2}
    assert all(r["last_updated"] == "2026-04-21T19:07:00Z" for r in rows)


# ------------------------------------------------------------------------------------------ partitions

def test_configured_numbers_are_used_without_listing_the_account():
    router = AlloNumberPartitionRouter(config={"allo_numbers": ["+14155550100", "+14155550100", "+33612345678"]}, parameters={})
    with mock.patch("source_allo.components.AlloApi") as api:
        slices = list(router.stream_slices())
    api.assert_not_called()
    assert [s.partition for s in slices] == [{"allo_number": "+14155550100"}, {"allo_number": "+33612345678"}]
    assert router.get_request_params(stream_slice=slices[0]) == {"allo_number": "+14155550100"}


def test_account_numbers_are_listed_once_and_shared_between_streams():
    config = {"api_url": "http://127.0.0.1:1", "api_key": "ak_unit_shared"}
    with mock.patch("source_allo.components.AlloApi") as api:
        api.from_config.return_value.list_allo_numbers.return_value = ["+14155550100"]
        first = list(AlloNumberPartitionRouter(config=config, parameters={}).stream_slices())
        second = list(AlloNumberPartitionRouter(config=config, parameters={}).stream_slices())
    assert api.from_config.return_value.list_allo_numbers.call_count == 1
    assert first == second and first[0].partition == {"allo_number": "+14155550100"}


def test_progress_emits_a_row_estimate_per_slice_and_a_steady_log_line(caplog):
    from source_allo.components import PROGRESS

    class Repository:
        def __init__(self):
            self.messages, self.logs = [], []

        def emit_message(self, message):
            self.messages.append(message)

        def log_message(self, level, provider):
            self.logs.append(provider()["message"])

    repository = Repository()
    PROGRESS.reset(repository, interval_seconds=0)
    strategy = AlloPagination(config={}, parameters={"name": "conversations"}, page_size=100, start_from_page=1)
    for number_total in (250, 120):
        pages = -(-number_total // 100)
        for page in range(1, pages + 1):
            rows = min(100, number_total - (page - 1) * 100)
            body = {"data": [{}] * rows, "pagination": {"page": page, "size": 100, "total_count": number_total, "total_pages": pages, "has_more": page < pages}}
            strategy.next_page_token(_response(body), rows, None, page)
    estimates = [m.trace.estimate.row_estimate for m in repository.messages]
    assert estimates == [250, 370]
    assert repository.messages[0].trace.estimate.name == "conversations"
    progress_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Progress")]
    assert progress_lines[-1] == "Progress: conversations 370 of ~370 records"
    PROGRESS.reset(None, 30)


def test_record_extractor_reads_v2_and_v1_lists_and_parses_each_page_once():
    from source_allo.components import AlloRecordExtractor

    v2 = _response({"data": [{"id": "a"}, {"id": "b"}], "pagination": {"has_more": False}})
    assert [r["id"] for r in AlloRecordExtractor(config={}, parameters={}).extract_records(v2)] == ["a", "b"]
    v1 = _response({"data": {"results": [{"id": "c"}], "metadata": {"total_pages": 1}}})
    assert [r["id"] for r in AlloRecordExtractor(config={}, parameters={}, field_path=["data", "results"]).extract_records(v1)] == ["c"]
    assert list(AlloRecordExtractor(config={}, parameters={}).extract_records(_response({"error": {"code": "X"}}))) == []
    assert list(AlloRecordExtractor(config={}, parameters={}, field_path=["data", "results"]).extract_records(_response({"data": {"results": None}}))) == []
    # The body is decoded once and shared by the error handler, the paginator and the extractor.
    page = _response({"data": [{"id": "a"}]})
    AlloErrorHandler(config={}, parameters={}).interpret_response(page)
    page._content = b"not json any more"
    assert [r["id"] for r in AlloRecordExtractor(config={}, parameters={}).extract_records(page)] == ["a"]


def test_a_readable_success_page_skips_the_error_filters():
    handler = AlloErrorHandler(config={}, parameters={})
    assert handler.interpret_response(_response({"data": []}, 200)).response_action == ResponseAction.SUCCESS


def test_pagination_goes_back_when_rows_vanish_between_pages():
    strategy = AlloPagination(config={}, parameters={"name": "conversations"}, page_size=100, start_from_page=1)
    url = "https://api.withallo.com/v2/api/conversations?allo_number=%2B14155550100&size=100&page={}"
    page = lambda n, total: _response({"data": [{}] * 100, "pagination": {"page": n, "size": 100, "total_count": total, "total_pages": -(-total // 100), "has_more": n * 100 < total}}, url=url.format(n))
    assert strategy.next_page_token(page(1, 350), 100, None, 1) == 2
    # One row read on page 1 was deleted before page 2 was served: page 2's first row is now on page 1.
    assert strategy.next_page_token(page(2, 349), 100, None, 2) == 1
    assert strategy.next_page_token(page(1, 349), 100, None, 1) == 2
    assert strategy.next_page_token(page(2, 349), 100, None, 2) == 3
    # A different Allo number is a different slice: its counts do not interfere.
    other = "https://api.withallo.com/v2/api/conversations?allo_number=%2B33187650200&size=100&page={}"
    assert strategy.next_page_token(_response({"data": [{}] * 100, "pagination": {"page": 1, "total_count": 150, "total_pages": 2, "has_more": True}}, url=other.format(1)), 100, None, 1) == 2
    assert strategy.next_page_token(page(3, 349), 100, None, 3) == 4


def test_pagination_rewinds_a_bounded_number_of_times():
    strategy = AlloPagination(config={}, parameters={}, page_size=100, start_from_page=1)
    url = "https://api.withallo.com/v2/api/conversations?allo_number=%2B1&page={}"
    tokens = []
    total = 1000
    for _ in range(20):  # a server whose count keeps shrinking
        total -= 1
        body = {"data": [{}] * 100, "pagination": {"page": 2, "total_count": total, "total_pages": 10, "has_more": True}}
        tokens.append(strategy.next_page_token(_response(body, url=url.format(2)), 100, None, 2))
    assert tokens.count(1) == AlloPagination.MAX_REWINDS


def test_since_filter_warns_once_when_the_server_ignores_it(caplog):
    from source_allo.components import SinceBoundRecordFilter

    window = StreamSlice(partition={"allo_number": "+1"}, cursor_slice={"start_time": "2026-11-01T00:00:00Z", "end_time": "2026-11-25T00:00:00Z"})
    rows = [{"last_activity": "2026-11-20T00:00:00Z"}, {"last_activity": "2026-10-01T00:00:00Z"}, {"last_activity": "2026-09-01T00:00:00"}]
    kept = list(SinceBoundRecordFilter(config={}, condition="", parameters={}).filter_records(rows, {}, window))
    assert kept == rows  # the cursor drops them; this only reports
    assert sum("ignored the filter" in r.getMessage() for r in caplog.records) == 1


def test_an_endpoint_that_keeps_failing_is_given_up_on_after_a_bounded_streak():
    from source_allo.components import FAILURE_STREAKS

    strategy = AlloBackoffStrategy(config={}, parameters={}, max_failure_streak=3)
    down = lambda: _response({"error": {"code": "INTERNAL_SERVER_ERROR"}}, 503, url="https://api.withallo.com/v2/api/down-endpoint")
    for attempt in (1, 2, 3):
        assert strategy.backoff_time(down(), attempt) > 0
    with pytest.raises(AirbyteTracedException, match="in a row"):
        strategy.backoff_time(down(), 1)
    # A readable answer from the endpoint resets the streak.
    AlloErrorHandler(config={}, parameters={}).interpret_response(_response({"data": []}, url="https://api.withallo.com/v2/api/down-endpoint"))
    assert strategy.backoff_time(down(), 1) > 0
    FAILURE_STREAKS.record_success("/v2/api/down-endpoint")
