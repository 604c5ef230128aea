"""Unit tests of the custom components in source_allo/components.py, and of the rules that file keeps.

Where practical a component is built by the CDK's factory from its definition in `manifest.yaml` (see
unit_tests/manifest_components.py), so the test also covers how the manifest wires it. Config and state
components are tested in test_config.py.
"""

import ast
import json
import logging
import random
import shutil
import socket
import subprocess
import sys
import types

import pytest
import requests

from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.declarative.concurrent_declarative_source import (
    get_declarative_component_schema,
    validate_manifest,
)
from airbyte_cdk.sources.declarative.extractors.record_extractor import RecordExtractor
from airbyte_cdk.sources.declarative.extractors.record_filter import RecordFilter
from airbyte_cdk.sources.declarative.migrations.state_migration import StateMigration
from airbyte_cdk.sources.declarative.models.declarative_component_schema import (
    CustomErrorHandler as CustomErrorHandlerModel,
)
from airbyte_cdk.sources.declarative.models.declarative_component_schema import (
    CustomPaginationStrategy as CustomPaginationStrategyModel,
)
from airbyte_cdk.sources.declarative.models.declarative_component_schema import (
    CustomRecordExtractor as CustomRecordExtractorModel,
)
from airbyte_cdk.sources.declarative.models.declarative_component_schema import (
    CustomRecordFilter as CustomRecordFilterModel,
)
from airbyte_cdk.sources.declarative.requesters.error_handlers.default_error_handler import DefaultErrorHandler
from airbyte_cdk.sources.declarative.requesters.paginators.strategies.pagination_strategy import PaginationStrategy
from airbyte_cdk.sources.declarative.transformations.config_transformations.config_transformation import (
    ConfigTransformation,
)
from airbyte_cdk.sources.declarative.validators.validation_strategy import ValidationStrategy
from airbyte_cdk.sources.streams.http.error_handlers import BackoffStrategy
from airbyte_cdk.sources.streams.http.error_handlers.response_models import ResponseAction
from airbyte_cdk.sources.types import StreamSlice
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_allo import components
from source_allo.components import (
    AlloBackoffStrategy,
    AlloErrorHandler,
    AlloPagination,
    OutboundMetricsExtractor,
    SinceBoundRecordFilter,
    TeamMetricsExtractor,
    WindowRecordFilter,
    describe_error,
    parsed_body,
)
from unit_tests.manifest_components import (
    COMPONENTS_PATH,
    MANIFEST,
    ROOT,
    RUN_PATH,
    build,
    resolved_manifest,
    stream_definition,
)

KEY = "ak_live_unitcomponents9876543210"
URL = "https://api.withallo.com/v2/api/conversations?allo_number=%2B14155550100&size=100&page=2"


def _response(body, status=200, headers=None, url=URL, method="GET", json_body=None):
    """A `requests` response to `method url`, sent with the API key as Allo expects it."""
    request = requests.Request(method, url, headers={"Authorization": f"Api-Key {KEY}"}, json=json_body).prepare()
    response = requests.Response()
    response.status_code = status
    response._content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response.headers.update(headers or {})
    response.url = request.url
    response.request = request
    return response


def _allo_error(code, message="boom", request_id="req_abc123def456", **extra):
    return {"error": {"type": "api_error", "code": code, "message": message, "request_id": request_id, **extra}}


def _warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "airbyte" and r.levelno == logging.WARNING]


@pytest.fixture(autouse=True)
def _capture_airbyte_logs(caplog):
    caplog.set_level(logging.INFO, logger="airbyte")


# ============================================================================================ pagination


def _paginator(stream="conversations"):
    definition = stream_definition(stream)["retriever"]["paginator"]["pagination_strategy"]
    return build(CustomPaginationStrategyModel, definition)


def _v2_page(page, total_count, rows=100, has_more=None, url=None, size=100):
    total_pages = -(-total_count // size)
    body = {
        "data": [{"id": f"r{page}-{i}"} for i in range(rows)],
        "pagination": {
            "page": page,
            "size": size,
            "total_count": total_count,
            "total_pages": total_pages,
            "has_more": page < total_pages if has_more is None else has_more,
        },
    }
    return _response(body, url=url or URL.replace("page=2", f"page={page}"))


def _v1_contacts(page, total_pages, rows=100):
    body = {"data": {"results": [{"id": f"c{page}-{i}"} for i in range(rows)], "metadata": {"pagination": {"total_pages": total_pages, "current_page": page}}}}
    return _response(body, url=f"https://api.withallo.com/v1/api/contacts?size=100&page={page}")


def test_the_manifest_builds_one_pagination_per_api_style():
    conversations, contacts, people = _paginator("conversations"), _paginator("contacts"), _paginator("crm_people")
    assert all(isinstance(p, AlloPagination) for p in (conversations, contacts, people))
    assert (conversations.initial_token, conversations.get_page_size(), conversations.stream_name) == (1, 100, "conversations")
    assert (contacts.initial_token, contacts.get_page_size(), contacts.stream_name) == (0, 100, "contacts")
    assert (people.initial_token, people.stream_name) == (1, "crm_people")


def test_pagination_follows_has_more():
    strategy = _paginator()
    assert strategy.next_page_token(_v2_page(1, 350), 100, None, 1) == 2
    assert strategy.next_page_token(_v2_page(2, 350), 100, None, 2) == 3


def test_pagination_stops_on_has_more_false_without_an_extra_request():
    strategy = _paginator()
    # A full last page (the total is a multiple of 100): a short-page rule would ask for page 4.
    assert strategy.next_page_token(_v2_page(3, 300), 100, None, 3) is None
    # has_more alone, without total_pages.
    body = {"data": [{}] * 100, "pagination": {"page": 5, "has_more": False}}
    assert strategy.next_page_token(_response(body), 100, None, 5) is None
    body["pagination"]["has_more"] = True
    assert strategy.next_page_token(_response(body), 100, None, 5) == 6


def test_pagination_stops_at_total_pages_without_has_more():
    strategy = _paginator()
    body = lambda page: {"data": [{}] * 100, "pagination": {"page": page, "total_pages": 3}}
    assert strategy.next_page_token(_response(body(2)), 100, None, 2) == 3
    assert strategy.next_page_token(_response(body(3)), 100, None, 3) is None


@pytest.mark.parametrize("current", [3, 4, 9])
def test_pagination_never_goes_past_total_pages_even_if_has_more_lies(current):
    strategy = _paginator()
    assert strategy.next_page_token(_v2_page(current, 300, has_more=True), 100, None, current) is None


def test_v1_pagination_is_zero_indexed_and_reads_nested_metadata():
    strategy = _paginator("contacts")
    assert strategy.initial_token == 0
    assert strategy.next_page_token(_v1_contacts(0, 2), 100, None, 0) == 1
    # total_pages counts from 1: page 1 is the second and last page.
    assert strategy.next_page_token(_v1_contacts(1, 2), 100, None, 1) is None
    assert strategy.next_page_token(_v1_contacts(2, 2), 100, None, 2) is None


def test_v1_calls_metadata_without_pagination_object():
    strategy = _paginator("calls")
    calls = lambda page, total: {"data": {"results": [{}] * 100, "metadata": {"total_pages": total, "current_page": page}}}
    assert strategy.next_page_token(_response(calls(0, 1)), 100, None, 0) is None
    assert strategy.next_page_token(_response(calls(0, 3)), 100, None, 0) == 1


def test_v1_results_null_past_the_end_stops():
    strategy = _paginator("contacts")
    assert strategy.next_page_token(_response({"data": {"results": None}}), 0, None, 4) is None


def test_without_metadata_a_short_page_is_the_last():
    strategy = _paginator()
    assert strategy.next_page_token(_response({"data": [{}] * 100}), 100, None, 4) == 5
    assert strategy.next_page_token(_response({"data": [{}] * 7}), 7, None, 5) is None
    assert strategy.next_page_token(_response({"data": []}), 0, None, 5) is None


def test_rows_are_counted_as_served_not_as_kept_by_the_record_filter():
    strategy = _paginator()
    # Every row of a full page was dropped by the record filter (last_page_size 0): not the end of the list.
    assert strategy.next_page_token(_response({"data": [{}] * 100}), 0, None, 1) == 2
    assert strategy.next_page_token(_response({"data": {"results": [{}] * 100}}), 0, None, 1) == 2
    # ...and a page that says it served 7 rows is short, whatever the CDK counted.
    assert strategy.next_page_token(_response({"data": [{}] * 7}), 100, None, 2) is None


def test_pagination_goes_back_when_rows_vanish_between_pages(caplog):
    strategy = _paginator()
    assert strategy.next_page_token(_v2_page(1, 350), 100, None, 1) == 2
    # One row read on page 1 was deleted before page 2 was served: page 2's first row moved to page 1.
    assert strategy.next_page_token(_v2_page(2, 349), 100, None, 2) == 1
    assert any("1 row(s) disappeared" in m and "re-reading from page 1" in m for m in caplog.messages)
    assert strategy.next_page_token(_v2_page(1, 349), 100, None, 1) == 2
    assert strategy.next_page_token(_v2_page(2, 349), 100, None, 2) == 3
    # 150 rows vanish: two pages back.
    assert strategy.next_page_token(_v2_page(3, 199), 100, None, 3) == 1


def test_a_rewind_never_goes_before_the_first_page():
    strategy = _paginator("contacts")  # v1 lists have no total_count: no rewind
    assert strategy.next_page_token(_v1_contacts(0, 5), 100, None, 0) == 1
    strategy = _paginator()
    assert strategy.next_page_token(_v2_page(2, 900), 100, None, 2) == 3
    assert strategy.next_page_token(_v2_page(3, 100), 100, None, 3) == 1


def test_each_list_has_its_own_count():
    strategy = _paginator()
    other = "https://api.withallo.com/v2/api/conversations?allo_number=%2B33187650200&size=100&page={}"
    assert strategy.next_page_token(_v2_page(1, 350), 100, None, 1) == 2
    # A smaller list of another number is no deletion in the first one.
    assert strategy.next_page_token(_v2_page(1, 150, url=other.format(1)), 100, None, 1) == 2
    assert strategy.next_page_token(_v2_page(2, 350), 100, None, 2) == 3
    assert strategy.next_page_token(_v2_page(2, 150, url=other.format(2)), 50, None, 2) is None


def test_post_lists_are_told_apart_by_their_body_without_the_page():
    strategy = _paginator("conversation_items")
    url = "https://api.withallo.com/v2/api/conversations/items/search"

    def page(number, total, allo_number):
        body = {"data": [{}] * 100, "pagination": {"page": number, "total_count": total, "total_pages": -(-total // 100), "has_more": True}}
        return _response(body, url=url, method="POST", json_body={"allo_number": allo_number, "page": number, "size": 100})

    assert strategy.next_page_token(page(1, 500, "+14155550100"), 100, None, 1) == 2
    assert strategy.next_page_token(page(1, 200, "+33187650200"), 100, None, 1) == 2
    assert strategy.next_page_token(page(2, 500, "+14155550100"), 100, None, 2) == 3
    assert strategy.next_page_token(page(2, 499, "+14155550100"), 100, None, 2) == 1


def test_pagination_rewinds_a_bounded_number_of_times():
    strategy = _paginator()
    tokens, total = [], 1000
    for _ in range(20):  # a server whose count keeps shrinking
        total -= 1
        tokens.append(strategy.next_page_token(_v2_page(2, total, has_more=True), 100, None, 2))
    assert tokens.count(1) == AlloPagination.MAX_REWINDS == 5
    assert tokens[0] == 3 and set(tokens) == {1, 3}


def _estimates(capsys):
    messages = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    return [(m["trace"]["estimate"]["name"], m["trace"]["estimate"]["row_estimate"]) for m in messages if m.get("type") == "TRACE" and m["trace"]["type"] == "ESTIMATE"]


def test_the_first_page_of_each_list_writes_an_estimate_to_stdout(capsys):
    strategy = _paginator()
    other = "https://api.withallo.com/v2/api/conversations?allo_number=%2B33187650200&size=100&page={}"
    strategy.next_page_token(_v2_page(1, 250), 100, None, 1)
    assert _estimates(capsys) == [("conversations", 250)]
    strategy.next_page_token(_v2_page(2, 250), 100, None, 2)
    strategy.next_page_token(_v2_page(3, 250, rows=50), 50, None, 3)
    assert _estimates(capsys) == []
    strategy.next_page_token(_v2_page(1, 120, url=other.format(1)), 100, None, None)  # the first page has no token yet
    assert _estimates(capsys) == [("conversations", 370)]


def test_a_v1_estimate_is_the_page_count_times_the_page_size(capsys):
    strategy = _paginator("contacts")
    strategy.next_page_token(_v1_contacts(0, 3), 100, None, 0)
    message = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert message["type"] == "TRACE" and message["trace"]["type"] == "ESTIMATE"
    assert message["trace"]["estimate"] == {"name": "contacts", "type": "STREAM", "row_estimate": 300}


def test_a_list_without_counts_writes_no_estimate(capsys):
    _paginator().next_page_token(_response({"data": [{}] * 3}), 3, None, 1)
    assert _estimates(capsys) == []


def test_a_rewind_to_the_first_page_does_not_count_the_list_again(capsys):
    strategy = _paginator()
    strategy.next_page_token(_v2_page(1, 350), 100, None, 1)
    assert strategy.next_page_token(_v2_page(2, 349), 100, None, 2) == 1
    strategy.next_page_token(_v2_page(1, 349), 100, None, 1)
    assert [estimate for _, estimate in _estimates(capsys)][-1] <= 350


def test_a_progress_line_is_logged(monkeypatch, caplog):
    monkeypatch.setenv("SOURCE_ALLO_PROGRESS_SECONDS", "0")
    strategy = _paginator()
    strategy.next_page_token(_v2_page(1, 250), 100, None, 1)
    strategy.next_page_token(_v2_page(2, 250), 100, None, 2)
    progress = [m for m in caplog.messages if m.startswith("Progress:")]
    assert progress[-1] == "Progress: conversations 200 of ~250 records."


def test_no_progress_line_before_the_interval(caplog):
    strategy = _paginator()
    strategy.next_page_token(_v2_page(1, 250), 100, None, 1)
    assert not [m for m in caplog.messages if m.startswith("Progress:")]


# ============================================================================================ errors


def _handler(stream="conversations", config=None):
    definition = stream_definition(stream)["retriever"]["requester"]["error_handler"]
    return build(CustomErrorHandlerModel, definition, config or {"api_url": "https://api.withallo.com"})


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_manifest_builds_the_allo_error_handler_with_its_backoff():
    handler = _handler("users")
    assert isinstance(handler, AlloErrorHandler) and handler.stream_name == "users"
    assert [type(s).__name__ for s in handler.backoff_strategies][-1] == "AlloBackoffStrategy"
    assert handler.backoff_strategies[-1].max_failure_streak == 24


@pytest.mark.parametrize(
    "body",
    [b'{"data": [{"id": 1', b"<html><body>502 Bad Gateway</body></html>", b"", b"\xff\xfe garbage"],
)
def test_a_2xx_that_is_not_json_is_retried_not_decoded(body):
    resolution = _handler().interpret_response(_response(body, 200, {"Content-Type": "text/html"}))
    assert resolution.response_action == ResponseAction.RETRY
    assert resolution.failure_type == FailureType.transient_error
    assert "unreadable" in resolution.error_message and "GET /v2/api/conversations -> HTTP 200" in resolution.error_message


@pytest.mark.parametrize("body", [{"data": []}, {}, []])
def test_a_readable_2xx_succeeds(body):
    assert _handler().interpret_response(_response(body, 200)).response_action == ResponseAction.SUCCESS


def test_a_refused_connection_fails_at_once_with_a_config_error_naming_the_api_url():
    api_url = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(requests.exceptions.ConnectionError) as raised:
        requests.get(f"{api_url}/v2/api/numbers", timeout=5)
    resolution = _handler(config={"api_url": api_url}).interpret_response(raised.value)
    assert resolution.response_action == ResponseAction.FAIL
    assert resolution.failure_type == FailureType.config_error
    assert api_url in resolution.error_message and "refused" in resolution.error_message
    assert "`api_url`" in resolution.error_message


@pytest.mark.parametrize(
    "text, reason",
    [
        ("Failed to resolve 'api.withalo.com' ([Errno -2] Name or service not known)", "could not be resolved"),
        ("[Errno -3] Temporary failure in name resolution", "could not be resolved"),
        ("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed", "TLS certificate is not trusted"),
    ],
)
def test_an_unreachable_host_fails_with_a_config_error(text, reason):
    error = requests.exceptions.ConnectionError(text)
    resolution = _handler(config={"api_url": "https://api.withalo.com"}).interpret_response(error)
    assert (resolution.response_action, resolution.failure_type) == (ResponseAction.FAIL, FailureType.config_error)
    assert "https://api.withalo.com" in resolution.error_message and reason in resolution.error_message


@pytest.mark.parametrize(
    "error",
    [
        requests.exceptions.ReadTimeout("Read timed out. (read timeout=60)"),
        requests.exceptions.ConnectTimeout("Connection to api.withallo.com timed out. Connection refused"),
        requests.exceptions.ConnectionError("('Connection aborted.', RemoteDisconnected('Remote end closed connection'))"),
        requests.exceptions.ChunkedEncodingError("Connection broken: IncompleteRead"),
    ],
)
def test_a_timeout_or_a_broken_answer_is_retried_not_failed(error):
    resolution = _handler().interpret_response(error)
    assert resolution.response_action != ResponseAction.FAIL
    assert resolution.response_action == ResponseAction.RETRY


def _scope_refusal():
    body = {"error": {"type": "permission_error", "code": "API_KEY_INSUFFICIENT_SCOPE", "message": "required=USERS_READ", "request_id": "req_scope1"}}
    return _response(body, 403, url="https://api.withallo.com/v2/api/users?status=ACTIVE&page=1")


def test_a_missing_scope_is_ignored_with_one_warning_per_stream(caplog):
    handler = _handler("users")
    first = handler.interpret_response(_scope_refusal())
    second = handler.interpret_response(_scope_refusal())
    assert first.response_action == second.response_action == ResponseAction.IGNORE
    warnings = _warnings(caplog)
    assert len(warnings) == 1
    assert warnings[0].startswith("Stream `users`:") and "required=USERS_READ" in warnings[0] and "Settings > API" in warnings[0]
    # Another stream's handler warns for its own stream.
    _handler("tags").interpret_response(_scope_refusal())
    assert len(_warnings(caplog)) == 2 and "Stream `tags`" in _warnings(caplog)[1]


def test_a_v1_scope_refusal_is_ignored_too(caplog):
    body = {"code": "API_KEY_INSUFFICIENT_SCOPE", "details": [{"message": "required=CONTACTS_READ", "field": "scope"}]}
    resolution = _handler("contacts").interpret_response(_response(body, 403, url="https://api.withallo.com/v1/api/contacts?page=0"))
    assert resolution.response_action == ResponseAction.IGNORE
    assert "required=CONTACTS_READ" in _warnings(caplog)[0]


def test_during_the_check_a_missing_scope_fails_with_a_config_error(caplog):
    handler = _handler("conversations", config={"api_url": "https://api.withallo.com", "fail_on_missing_scope": True})
    resolution = handler.interpret_response(_scope_refusal())
    assert resolution.response_action == ResponseAction.FAIL
    assert resolution.failure_type == FailureType.config_error
    assert "required=USERS_READ" in resolution.error_message
    assert _warnings(caplog) == []


def test_the_check_sets_fail_on_missing_scope():
    check = MANIFEST["check"]
    assert check["type"] == "CheckStream"
    assert check["config_overrides"] == {"fail_on_missing_scope": True}
    spec = MANIFEST["spec"]["connection_specification"]["properties"]["fail_on_missing_scope"]
    assert spec["default"] is False and spec["airbyte_hidden"] is True


@pytest.mark.parametrize(
    "status, body, action, failure_type",
    [
        (500, _allo_error("INTERNAL_SERVER_ERROR"), ResponseAction.RETRY, FailureType.transient_error),
        (503, _allo_error("SERVICE_UNAVAILABLE"), ResponseAction.RETRY, FailureType.transient_error),
        (401, _allo_error("API_KEY_INVALID", "The API key provided is invalid."), ResponseAction.FAIL, FailureType.config_error),
        (401, _allo_error("API_KEY_REVOKED", "This API key has been revoked."), ResponseAction.FAIL, FailureType.config_error),
        (403, _allo_error("API_KEY_TRIAL_NOT_ALLOWED"), ResponseAction.FAIL, FailureType.config_error),
        (429, _allo_error("API_KEY_QUOTA_EXCEEDED", retry_after_seconds=3600), ResponseAction.FAIL, FailureType.transient_error),
    ],
)
def test_error_messages_name_endpoint_status_code_and_request_id_never_the_key(status, body, action, failure_type):
    resolution = _handler().interpret_response(_response(body, status))
    assert resolution.response_action == action
    assert resolution.failure_type == failure_type
    message = resolution.error_message
    for part in ("GET /v2/api/conversations", f"HTTP {status}", body["error"]["code"], "req_abc123def456"):
        assert part in message, (part, message)
    assert KEY not in message and "Api-Key" not in message
    assert "allo_number" not in message and "page=" not in message  # never the query string


def test_a_rate_limit_is_waited_for_and_its_message_never_has_the_key():
    resolution = _handler().interpret_response(_response(_allo_error("RATE_LIMIT_EXCEEDED", retry_after_seconds=2), 429))
    assert (resolution.response_action, resolution.failure_type) == (ResponseAction.RATE_LIMITED, FailureType.transient_error)
    assert "429" in resolution.error_message and KEY not in resolution.error_message


def test_a_rate_limit_message_names_the_endpoint_and_request_id():
    resolution = _handler().interpret_response(_response(_allo_error("RATE_LIMIT_EXCEEDED", retry_after_seconds=2), 429))
    assert "GET /v2/api/conversations" in resolution.error_message and "req_abc123def456" in resolution.error_message


def test_the_request_id_header_is_used_when_the_body_has_none():
    body = {"code": "INTERNAL_ERROR", "details": [{"message": "oops"}]}
    resolution = _handler().interpret_response(_response(body, 502, {"X-Request-Id": "req_header77"}))
    assert resolution.response_action == ResponseAction.RETRY
    assert "HTTP 502 INTERNAL_ERROR (request_id req_header77): oops" in resolution.error_message


def test_an_error_with_a_non_json_body_says_so():
    resolution = _handler().interpret_response(_response(b"<html>Bad gateway</html>", 502))
    assert resolution.response_action == ResponseAction.RETRY
    assert "GET /v2/api/conversations -> HTTP 502 (body is not JSON)" in resolution.error_message


def test_describe_error_reads_both_envelopes():
    v1 = {"code": "API_KEY_INSUFFICIENT_SCOPE", "details": [{"message": "required=CONTACTS_READ", "field": "scope"}]}
    text = describe_error(_response(v1, 403, url="https://api.withallo.com/v1/api/contacts?page=0"))
    assert text == "GET /v1/api/contacts -> HTTP 403 API_KEY_INSUFFICIENT_SCOPE: required=CONTACTS_READ"
    v2 = _allo_error("VALIDATION_ERROR", "size must be <= 100", request_id="req_v2")
    text = describe_error(_response(v2, 400, method="POST", url="https://api.withallo.com/v2/api/crm/people/search"))
    assert text == "POST /v2/api/crm/people/search -> HTTP 400 VALIDATION_ERROR (request_id req_v2): size must be <= 100"


def test_the_body_is_parsed_once_and_shared():
    response = _response({"data": [{"id": "a"}]})
    first = parsed_body(response)
    response._content = b"not json any more"
    assert parsed_body(response) is first
    assert parsed_body(_response(b"nope")) is None


def test_a_readable_answer_resets_the_failure_streak():
    handler = _handler()
    backoff = handler.backoff_strategies[-1]
    backoff.max_failure_streak = 2
    failure = _response(_allo_error("INTERNAL_SERVER_ERROR"), 503)
    backoff.backoff_time(failure, 1)
    backoff.backoff_time(failure, 2)
    assert handler.interpret_response(_response({"data": []})).response_action == ResponseAction.SUCCESS
    assert backoff.backoff_time(failure, 1) > 0  # would raise without the reset
    backoff.backoff_time(failure, 2)
    with pytest.raises(AirbyteTracedException):
        backoff.backoff_time(failure, 3)


# ============================================================================================ backoff


def _backoff(**settings):
    return AlloBackoffStrategy(config={}, parameters={}, **settings)


def _server_error():
    return _response(_allo_error("INTERNAL_SERVER_ERROR"), 503)


@pytest.mark.parametrize("attempt, ceiling", [(1, 1), (2, 2), (3, 4), (4, 8), (6, 32), (7, 60), (30, 60)])
def test_backoff_is_jittered_exponential_within_bounds(attempt, ceiling):
    strategy = _backoff(max_failure_streak=1000)
    waits = [strategy.backoff_time(_server_error(), attempt) for _ in range(200)]
    assert all(0.1 <= wait <= ceiling for wait in waits)
    assert len({round(wait, 6) for wait in waits}) > 50  # jittered
    assert max(waits) > ceiling * 0.7  # full jitter up to the ceiling


def test_backoff_ceiling_follows_base_and_cap(monkeypatch):
    monkeypatch.setattr(random, "uniform", lambda low, high: high)
    strategy = _backoff(base_seconds="0.5", cap_seconds="3", max_failure_streak="100")
    assert [strategy.backoff_time(_server_error(), attempt) for attempt in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    monkeypatch.setattr(random, "uniform", lambda low, high: low)
    assert strategy.backoff_time(_server_error(), 3) == 0.1  # never a busy loop


def test_backoff_gives_up_after_max_failure_streak_failures_in_a_row():
    strategy = _backoff(max_failure_streak=3, base_seconds=0.01)
    for attempt in (1, 2, 3):
        assert strategy.backoff_time(_server_error(), attempt) > 0
    with pytest.raises(AirbyteTracedException) as raised:
        strategy.backoff_time(_server_error(), 4)
    assert raised.value.failure_type == FailureType.transient_error
    assert "3 requests in a row" in raised.value.message
    assert "GET /v2/api/conversations -> HTTP 503 INTERNAL_SERVER_ERROR" in raised.value.message
    assert KEY not in raised.value.message


def test_the_streak_counts_across_partitions_and_attempts():
    # One strategy serves every partition of a stream: failures on different lists add up.
    strategy = _backoff(max_failure_streak=2)
    strategy.backoff_time(_response({}, 503, url="https://api.withallo.com/v2/api/conversations?allo_number=%2B1"), 1)
    strategy.backoff_time(_response({}, 503, url="https://api.withallo.com/v2/api/conversations?allo_number=%2B2"), 1)
    with pytest.raises(AirbyteTracedException):
        strategy.backoff_time(_response({}, 503), 1)


def test_reset_streak_resets():
    strategy = _backoff(max_failure_streak=2)
    for _ in range(5):
        strategy.backoff_time(_server_error(), 1)
        strategy.backoff_time(_server_error(), 2)
        strategy.reset_streak()
    with pytest.raises(AirbyteTracedException):
        for attempt in (1, 2, 3):
            strategy.backoff_time(_server_error(), attempt)


def test_backoff_says_what_failed(caplog):
    _backoff().backoff_time(_server_error(), 2)
    _backoff().backoff_time(requests.exceptions.ReadTimeout("Read timed out", request=requests.Request("GET", URL).prepare()), 1)
    lines = [m for m in caplog.messages if m.startswith("Allo request failed")]
    assert "attempt 2" in lines[0] and "HTTP 503 INTERNAL_SERVER_ERROR" in lines[0]
    assert "GET /v2/api/conversations -> no answer (ReadTimeout" in lines[1] and KEY not in lines[1]


# ============================================================================================ records


def _record_filter(stream):
    return build(CustomRecordFilterModel, stream_definition(stream)["retriever"]["record_selector"]["record_filter"])


def _window(start="2026-01-01", end="2026-01-30", number="+14155550100"):
    return StreamSlice(partition={"allo_number": number, "parent_slice": {}}, cursor_slice={"start_time": start, "end_time": end})


def test_the_manifest_uses_the_record_filters():
    assert isinstance(_record_filter("conversation_items"), WindowRecordFilter)
    assert isinstance(_record_filter("conversations"), SinceBoundRecordFilter)


def test_window_filter_drops_rows_outside_the_requested_window_and_says_how_many(caplog):
    records = [
        {"id": "a", "date": "2025-12-31T23:59:59Z"},
        {"id": "b", "date": "2026-01-01T00:00:00Z"},
        {"id": "c", "date": "2026-01-30T23:59:59Z"},
        {"id": "d", "date": "2026-01-31T00:00:00Z"},
        {"id": "e", "date": "2027-06-01"},
    ]
    kept = list(_record_filter("conversation_items").filter_records(records, {}, _window()))
    assert [r["id"] for r in kept] == ["b", "c"]
    (warning,) = _warnings(caplog)
    assert "3 conversation item(s) outside the requested window 2026-01-01..2026-01-30" in warning


def test_window_filter_keeps_rows_it_cannot_date_and_is_quiet_when_nothing_is_dropped(caplog):
    records = [{"id": "a", "date": None}, {"id": "b"}, {"id": "c", "date": "soon"}, {"id": "d", "date": "2026-01-15T10:00:00Z"}]
    kept = list(_record_filter("conversation_items").filter_records(records, {}, _window()))
    assert [r["id"] for r in kept] == ["a", "b", "c", "d"]
    assert _warnings(caplog) == []


@pytest.mark.parametrize("stream_slice", [None, StreamSlice(partition={"allo_number": "+1"}, cursor_slice={}), StreamSlice(partition={}, cursor_slice={"start_time": "x", "end_time": "y"})])
def test_window_filter_without_a_window_keeps_everything(stream_slice, caplog):
    records = [{"id": "a", "date": "1999-01-01T00:00:00Z"}, {"id": "b", "date": "2099-01-01T00:00:00Z"}]
    assert list(WindowRecordFilter(config={}, parameters={}).filter_records(records, {}, stream_slice)) == records
    assert _warnings(caplog) == []


def test_window_filter_accepts_timestamp_windows():
    records = [{"id": "a", "date": "2026-01-01T00:00:00Z"}, {"id": "b", "date": "2026-02-01T00:00:00Z"}]
    window = _window("2026-01-01T00:00:00Z", "2026-01-31T23:59:59Z")
    assert [r["id"] for r in WindowRecordFilter(config={}, parameters={}).filter_records(records, {}, window)] == ["a"]


def test_since_filter_keeps_every_row_and_warns_once_when_the_server_ignores_it(caplog):
    since = StreamSlice(partition={"allo_number": "+14155550100", "parent_slice": {}}, cursor_slice={"start_time": "2026-11-01T00:00:00Z", "end_time": "2026-11-25T00:00:00Z"})
    rows = [{"last_activity": "2026-11-20T00:00:00Z"}, {"last_activity": "2026-10-01T00:00:00Z"}, {"last_activity": "2026-09-01T00:00:00"}]
    record_filter = _record_filter("conversations")
    assert list(record_filter.filter_records(rows, {}, since)) == rows  # the cursor drops them; this only reports
    assert list(record_filter.filter_records(rows, {}, since)) == rows
    (warning,) = _warnings(caplog)
    assert "ignored the filter" in warning and "2026-10-01T00:00:00Z < 2026-11-01T00:00:00Z" in warning and "+14155550100" in warning


def test_since_filter_is_quiet_when_the_server_honours_it(caplog):
    since = StreamSlice(partition={"allo_number": "+1"}, cursor_slice={"start_time": "2026-11-01T00:00:00Z", "end_time": "2026-11-25T00:00:00Z"})
    rows = [{"last_activity": "2026-11-01T00:00:00Z"}, {"last_activity": "2026-11-20T00:00:00Z"}, {"last_activity": None}, {}]
    assert list(SinceBoundRecordFilter(config={}, parameters={}).filter_records(rows, {}, since)) == rows
    assert list(SinceBoundRecordFilter(config={}, parameters={}).filter_records([{"last_activity": "2000-01-01T00:00:00Z"}], {}, None))
    assert _warnings(caplog) == []


def test_each_since_filter_warns_on_its_own():
    # One warning per stream instance (a new source, a new sync), not one per process.
    rows = [{"last_activity": "2026-10-01T00:00:00Z"}]
    since = StreamSlice(partition={"allo_number": "+1"}, cursor_slice={"start_time": "2026-11-01T00:00:00Z", "end_time": "2026-11-25T00:00:00Z"})
    first, second = SinceBoundRecordFilter(config={}, parameters={}), SinceBoundRecordFilter(config={}, parameters={})
    list(first.filter_records(rows, {}, since))
    assert first.__dict__.get("_warned") is True and not second.__dict__.get("_warned")


def _analytics_rows(stream, extractor_class, path, body):
    extractor = build(CustomRecordExtractorModel, stream_definition(stream)["retriever"]["record_selector"]["extractor"])
    assert isinstance(extractor, extractor_class)
    return list(extractor.extract_records(_response(body, method="POST", url=f"https://api.withallo.com{path}")))


def _team_metrics(body):
    return _analytics_rows("team_metrics_daily", TeamMetricsExtractor, "/v2/api/analytics/overview", body)


def _outbound_metrics(body):
    return _analytics_rows("outbound_metrics_daily", OutboundMetricsExtractor, "/v2/api/analytics/outbound", body)


def test_team_metrics_extractor_yields_a_team_row_and_one_row_per_user_with_numbers():
    body = {
        "data": {
            "summary": {"total_calls": {"value": 3, "previous": 2, "change": 0.5}, "answer_rate": {"value": 0.5, "previous": None, "change": None}},
            "breakdown": [{"user": {"id": "usr-1", "name": "A"}, "calls": {"value": 2, "change": -0.05}}, {"user": {"id": 42}, "calls": {"value": 1}}],
            "last_updated": "2026-04-21T19:07:00Z",
        }
    }
    rows = _team_metrics(body)
    assert rows[0] == {"scope": "team", "user_id": "team", "user": None, "total_calls": 3, "answer_rate": 0.5, "last_updated": "2026-04-21T19:07:00Z"}
    assert rows[1] == {"scope": "user", "user_id": "usr-1", "user": {"id": "usr-1", "name": "A"}, "calls": 2, "last_updated": "2026-04-21T19:07:00Z"}
    assert (rows[2]["scope"], rows[2]["user_id"], rows[2]["calls"]) == ("user", "42", 1)
    assert len(rows) == 3


def test_team_metrics_extractor_tolerates_missing_parts():
    rows = _team_metrics({"data": {"breakdown": [None, "x", {"calls": {"value": 1}}, {"user": None}]}})
    assert [(r["scope"], r["user_id"]) for r in rows] == [("team", "team"), ("user", ""), ("user", "")]
    assert rows[0] == {"scope": "team", "user_id": "team", "user": None, "last_updated": None}
    assert rows[1]["calls"] == 1 and rows[2]["user"] is None


def test_metric_values_become_their_number_and_other_values_stay():
    assert components.metric_number({"value": 12, "previous": 10, "change": 0.2}) == 12
    assert components.metric_number({"change": 0.2}) is None  # a metric without its value: null, not an object
    assert components.metric_number(7.5) == 7.5 and components.metric_number(None) is None
    assert components.metric_number({"id": "x"}) == {"id": "x"}  # not a metric: left as Allo sent it


def test_outbound_metrics_extractor_yields_the_funnel_row_and_one_row_per_leaderboard_entry():
    metric = lambda v: {"value": v, "previous": v - 1, "change": 0.1}  # noqa: E731
    body = {
        "data": {
            "date": {"from": "2026-11-10", "to": "2026-11-10"},
            "funnel": {
                "dials": {"count": metric(10), "rate": 1.0},
                "connected": {"count": metric(6), "rate": 0.6},
                "conversations": {"count": metric(4), "rate": 0.4},
                "conversions": {"count": metric(1), "rate": None},
            },
            "time_series": {"dials": [{"date": "2026-11-10", "value": 10}]},
            "heatmap": {"dials": [{"day": "TUESDAY", "hour": 10, "value": 3}]},
            "leaderboard": [{"user": {"id": "usr-1", "name": "A", "email": "a@x"}, "connected": 5}, None, {"user": {"id": "usr-2"}, "connected": 1}],
            "time_spent": {"avg_ringing_time_seconds": metric(12.5), "avg_conversation_time_seconds": metric(95.0), "total_conversation_time_seconds": metric(380)},
            "last_updated": "2026-11-10T19:07:00Z",
        }
    }
    rows = _outbound_metrics(body)
    assert rows[0] == {
        "scope": "team", "user_id": "team", "user": None,
        "dials": 10, "dials_rate": 1.0, "connected": 6, "connected_rate": 0.6, "conversations": 4, "conversations_rate": 0.4,
        "conversions": 1, "conversions_rate": None,
        "avg_ringing_time_seconds": 12.5, "avg_conversation_time_seconds": 95.0, "total_conversation_time_seconds": 380,
        "last_updated": "2026-11-10T19:07:00Z",
    }
    assert rows[1:] == [
        {"scope": "user", "user_id": "usr-1", "user": {"id": "usr-1", "name": "A", "email": "a@x"}, "connected": 5, "last_updated": "2026-11-10T19:07:00Z"},
        {"scope": "user", "user_id": "usr-2", "user": {"id": "usr-2"}, "connected": 1, "last_updated": "2026-11-10T19:07:00Z"},
    ]


def test_outbound_metrics_extractor_tolerates_missing_parts():
    rows = _outbound_metrics({"data": {"funnel": {"dials": {"count": {"value": 3}}, "connected": 2, "odd": None}, "leaderboard": None}})
    assert rows == [{"scope": "team", "user_id": "team", "user": None, "dials": 3, "dials_rate": None, "connected": 2, "odd": None, "last_updated": None}]


@pytest.mark.parametrize("body", [{"data": None}, {"data": []}, {"error": {"code": "X"}}, [], b"not json"])
def test_analytics_extractors_yield_nothing_without_data(body):
    assert _team_metrics(body) == [] and _outbound_metrics(body) == []


# ============================================================================================ the manifest and components.py


def test_the_manifest_validates_against_the_cdk_schema():
    validate_manifest(resolved_manifest(), get_declarative_component_schema())


def test_the_schema_check_has_teeth():
    manifest = resolved_manifest()
    manifest["streams"][0]["retriever"]["requester"]["http_method"] = "FETCH"
    with pytest.raises(Exception, match="declarative_component_schema"):
        validate_manifest(manifest, get_declarative_component_schema())


CUSTOM_TYPES = {
    "CustomErrorHandler": DefaultErrorHandler,
    "CustomBackoffStrategy": BackoffStrategy,
    "CustomPaginationStrategy": PaginationStrategy,
    "CustomRecordFilter": RecordFilter,
    "CustomRecordExtractor": RecordExtractor,
    "CustomStateMigration": StateMigration,
    "CustomConfigTransformation": ConfigTransformation,
    "CustomValidationStrategy": ValidationStrategy,
}


def _class_names(node):
    if isinstance(node, dict):
        if "class_name" in node:
            yield node.get("type"), node["class_name"]
        for value in node.values():
            yield from _class_names(value)
    elif isinstance(node, list):
        for value in node:
            yield from _class_names(value)


def test_every_class_name_resolves_to_a_class_of_components_py():
    found = sorted(set(_class_names(MANIFEST)))
    assert found
    for component_type, class_name in found:
        module, _, name = class_name.rpartition(".")
        assert module == "source_declarative_manifest.components", class_name
        cls = getattr(components, name, None)
        assert isinstance(cls, type) and cls.__module__ == components.__name__, f"{class_name} is not a class of components.py"
        assert component_type in CUSTOM_TYPES, f"{class_name} is used as {component_type}"
        assert issubclass(cls, CUSTOM_TYPES[component_type]), f"{name} is not a {CUSTOM_TYPES[component_type].__name__}"


def test_every_component_of_components_py_is_used_by_the_manifest():
    used = {class_name.rpartition(".")[2] for _, class_name in _class_names(MANIFEST)}
    interfaces = tuple(CUSTOM_TYPES.values())
    defined = {
        name for name, value in vars(components).items()
        if isinstance(value, type) and value.__module__ == components.__name__ and issubclass(value, interfaces)
    }
    assert defined - used == set(), "components that the manifest never uses"


def _tree(path):
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def test_components_py_imports_nothing_from_source_allo():
    for node in ast.walk(_tree(COMPONENTS_PATH)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"line {node.lineno}: relative import"
            names = [node.module or ""]
        else:
            continue
        for name in names:
            assert name.split(".")[0] != "source_allo", f"line {node.lineno}: components.py imports {name}"


def test_components_py_has_no_future_annotations():
    for node in ast.walk(_tree(COMPONENTS_PATH)):
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            pytest.fail(f"line {node.lineno}: `from __future__ import ...` breaks the runner's exec of components.py")


def test_components_py_runs_as_the_runner_loads_it():
    """Airbyte's runner execs the text in a fresh module *before* registering it: dataclasses must work there."""
    module = types.ModuleType("components")
    exec(compile(COMPONENTS_PATH.read_text(encoding="utf-8"), "components.py", "exec"), module.__dict__)
    migration = module.RepairAlloState(config={}, parameters={}, stream_name="s", cursor_field="d")
    assert migration.migrate({"d": "2026-01-01"}) == {"d": "2026-01-01"}
    strategy = module.AlloPagination(config={}, parameters={"name": "s"}, page_size="50", start_from_page="0")
    assert (strategy.initial_token, strategy.get_page_size(), strategy.stream_name) == (0, 50, "s")


def _private_reads(path):
    """`x._name` (not `self._name` / `cls._name`, not dunders), getattr(x, "_name"), and imports of `_` names."""
    found = []
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not (node.attr.startswith("__") and node.attr.endswith("__")):
            if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                found.append(f"{path.name}:{node.lineno} .{node.attr}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr", "setattr"):
            if len(node.args) > 1 and isinstance(node.args[1], ast.Constant) and str(node.args[1].value).startswith("_"):
                found.append(f"{path.name}:{node.lineno} {node.func.id}(..., {node.args[1].value!r})")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("airbyte_cdk"):
            for part in (node.module or "").split("."):
                if part.startswith("_"):
                    found.append(f"{path.name}:{node.lineno} module {node.module}")
            for alias in node.names:
                if alias.name.startswith("_"):
                    found.append(f"{path.name}:{node.lineno} import {alias.name}")
    return found


@pytest.mark.parametrize("path", [COMPONENTS_PATH, RUN_PATH], ids=["components.py", "run.py"])
def test_no_private_cdk_attribute_is_read(path):
    assert _private_reads(path) == []


def test_the_private_attribute_check_has_teeth(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from airbyte_cdk.sources.declarative import _private\n"
        "from airbyte_cdk.models import _Hidden\n"
        "def f(self, source):\n"
        "    self._ok = source.__dict__\n"
        "    return source._config, getattr(source, '_constructor')\n"
    )
    assert len(_private_reads(sample)) == 4


def test_the_manifest_schemas_equal_the_schema_files():
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "embed_schemas.py"), "--check"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_embed_schemas_check_fails_on_a_stale_manifest(tmp_path):
    (tmp_path / "tools").mkdir()
    shutil.copy(ROOT / "tools" / "embed_schemas.py", tmp_path / "tools")
    shutil.copytree(ROOT / "source_allo" / "schemas", tmp_path / "source_allo" / "schemas")
    shutil.copy(ROOT / "source_allo" / "manifest.yaml", tmp_path / "source_allo")
    schema_path = tmp_path / "source_allo" / "schemas" / "tags.json"
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    schema["properties"]["new_field"] = {"type": ["null", "string"]}
    schema_path.write_text(json.dumps(schema, indent=2) + "\n", encoding="utf-8")
    result = subprocess.run([sys.executable, str(tmp_path / "tools" / "embed_schemas.py"), "--check"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "out of date" in result.stderr
