"""Unit tests of what makes a sync fast without changing what it reads: pages requested ahead of the
reader, the partition's number added without a template, and the timestamp and start-up shortcuts."""

import json
import threading
from datetime import datetime, timezone

import pytest
import requests

from airbyte_cdk.sources.declarative.datetime.datetime_parser import DatetimeParser
from airbyte_cdk.sources.types import StreamSlice

import source_allo  # noqa: F401  (installs the timestamp fast path, as the connector does)
from source_allo.components import AddAlloNumber, PageAhead


# ---------------------------------------------------------------------------------------- PageAhead


class FakeFetch:
    """Stands in for SimpleRetriever._fetch_next_page: records which pages were requested, from which
    thread, and answers with Allo's v2 page metadata."""

    def __init__(self, total_pages: int, first_page: int = 1):
        self.total_pages = total_pages
        self.first_page = first_page
        self.requested = []
        self.lock = threading.Lock()

    def __call__(self, stream_slice, next_page_token=None, page_size_override=None):
        page = (next_page_token or {}).get("next_page_token")
        with self.lock:
            self.requested.append(page)
        response = requests.Response()
        response.status_code = 200
        index = page - self.first_page + 1
        body = {
            "data": [{"page": page}],
            "pagination": {"page": page, "total_pages": self.total_pages, "has_more": index < self.total_pages},
        }
        response._content = json.dumps(body).encode()
        return response


def _read_in_order(reader, stream_slice, pages):
    return [json.loads(reader(stream_slice, {"next_page_token": p}).content)["data"][0]["page"] for p in pages]


def test_page_one_is_read_alone_then_following_pages_are_requested_ahead_up_to_the_last():
    fetch = FakeFetch(total_pages=6)
    reader = PageAhead(fetch, first_page=1, depth=3)
    a_slice = StreamSlice(partition={"allo_number": "+1"}, cursor_slice={})

    reader(a_slice, {"next_page_token": 1})
    assert fetch.requested == [1]  # a data feed that stops on page 1 costs nothing extra

    assert _read_in_order(reader, a_slice, [2, 3, 4, 5, 6]) == [2, 3, 4, 5, 6]
    # Every page exactly once, none past total_pages.
    assert sorted(fetch.requested) == [1, 2, 3, 4, 5, 6]


def test_pages_ahead_are_bounded_by_depth():
    fetch = FakeFetch(total_pages=50)
    reader = PageAhead(fetch, first_page=1, depth=3)
    a_slice = StreamSlice(partition={}, cursor_slice={})
    reader(a_slice, {"next_page_token": 1})
    reader(a_slice, {"next_page_token": 2})
    # Page 2 plus at most three ahead of it.
    assert max(fetch.requested) <= 5


def test_a_page_that_was_not_predicted_drops_the_predictions_and_is_read_directly():
    fetch = FakeFetch(total_pages=10)
    reader = PageAhead(fetch, first_page=1, depth=3)
    a_slice = StreamSlice(partition={}, cursor_slice={})
    reader(a_slice, {"next_page_token": 1})
    reader(a_slice, {"next_page_token": 2})
    # The paginator rewinds (rows vanished): page 2 again, answered by a fresh request.
    before = fetch.requested.count(2)
    assert _read_in_order(reader, a_slice, [2]) == [2]
    assert fetch.requested.count(2) == before + 1


def test_a_new_slice_never_receives_pages_of_the_previous_one():
    fetch = FakeFetch(total_pages=10)
    reader = PageAhead(fetch, first_page=1, depth=3)
    first = StreamSlice(partition={"allo_number": "+1"}, cursor_slice={})
    second = StreamSlice(partition={"allo_number": "+2"}, cursor_slice={})
    reader(first, {"next_page_token": 1})
    reader(first, {"next_page_token": 2})
    requested_before = len(fetch.requested)
    reader(second, {"next_page_token": 1})
    reader(second, {"next_page_token": 2})
    # The second slice's pages 1 and 2 were requested for it, not served from the first's predictions.
    assert len(fetch.requested) >= requested_before + 2


def test_v1_pages_count_from_zero():
    fetch = FakeFetch(total_pages=3, first_page=0)
    reader = PageAhead(fetch, first_page=0, depth=3)
    a_slice = StreamSlice(partition={}, cursor_slice={})
    assert _read_in_order(reader, a_slice, [0, 1, 2]) == [0, 1, 2]
    assert sorted(fetch.requested) == [0, 1, 2]


def test_an_error_on_a_page_read_ahead_reaches_the_reader_when_it_asks_for_that_page():
    fetch = FakeFetch(total_pages=5)

    def failing(stream_slice, next_page_token=None, page_size_override=None):
        if (next_page_token or {}).get("next_page_token") == 4:
            raise RuntimeError("page 4 failed")
        return fetch(stream_slice, next_page_token, page_size_override)

    reader = PageAhead(failing, first_page=1, depth=3)
    a_slice = StreamSlice(partition={}, cursor_slice={})
    assert _read_in_order(reader, a_slice, [1, 2, 3]) == [1, 2, 3]
    with pytest.raises(RuntimeError, match="page 4 failed"):
        reader(a_slice, {"next_page_token": 4})


def test_conversations_and_the_other_big_paged_streams_read_pages_ahead():
    from source_allo.source import PAGE_AHEAD_STREAMS, SourceAllo

    source = SourceAllo(config={"api_key": "k", "api_url": "http://127.0.0.1:9"})
    readers = {}
    for stream in source.streams(source._config):
        retriever = stream._stream_partition_generator._partition_factory._retriever
        readers[stream.name] = type(retriever.__dict__.get("_fetch_next_page")).__name__
    assert {name for name, kind in readers.items() if kind == "PageAhead"} == {"conversations", "calls", "contacts"} == set(PAGE_AHEAD_STREAMS)


def test_the_streams_that_list_numbers_early_are_those_partitioned_by_number():
    from source_allo.components import AlloNumberPartitionRouter
    from source_allo.source import NUMBER_PARTITIONED_STREAMS, SourceAllo

    source = SourceAllo(config={"api_key": "k", "api_url": "http://127.0.0.1:9"})
    partitioned = set()
    for stream in source.streams(source._config):
        slicer = stream._stream_partition_generator._stream_slicer
        routers = [slicer, getattr(slicer, "_partition_router", None), getattr(slicer, "_stream_slicer", None)]
        if any(isinstance(router, AlloNumberPartitionRouter) for router in routers):
            partitioned.add(stream.name)
    assert partitioned == {"conversations", "calls"} == NUMBER_PARTITIONED_STREAMS


# ------------------------------------------------------------------------------------- AddAlloNumber


def test_the_partition_number_is_added_as_a_string():
    record = {"contact_number": "+33600000000"}
    AddAlloNumber().transform(record, stream_slice=StreamSlice(partition={"allo_number": "+14155550100"}, cursor_slice={}))
    assert record["allo_number"] == "+14155550100"


# ---------------------------------------------------------------------------- timestamp fast path


@pytest.mark.parametrize(
    "value, fmt",
    [
        ("2026-04-28T10:30:00Z", "%Y-%m-%dT%H:%M:%SZ"),
        ("2026-04-28T10:30:00", "%Y-%m-%dT%H:%M:%S"),
        ("1999-12-31T23:59:59Z", "%Y-%m-%dT%H:%M:%SZ"),
        ("2024-02-29T00:00:00Z", "%Y-%m-%dT%H:%M:%SZ"),
        ("2026-4-28T1:2:3Z", "%Y-%m-%dT%H:%M:%SZ"),  # not the fast shape: strptime's own leniency
        ("2026-04-28T10:30:00.123Z", "%Y-%m-%dT%H:%M:%S.%fZ"),
        ("2026-04-28T10:30:00+02:00", "%Y-%m-%dT%H:%M:%S%z"),
        ("２０２６-04-28T10:30:00Z", "%Y-%m-%dT%H:%M:%SZ"),  # non-ASCII digits: left to strptime
    ],
)
def test_fast_timestamp_parsing_gives_what_strptime_gives(value, fmt):
    expected = datetime.strptime(value, fmt)
    if expected.tzinfo is None:
        expected = expected.replace(tzinfo=timezone.utc)
    parsed = DatetimeParser().parse(value, fmt)
    assert parsed == expected and parsed.utcoffset() == expected.utcoffset()


@pytest.mark.parametrize(
    "value, fmt",
    [
        ("2026-13-28T10:30:00Z", "%Y-%m-%dT%H:%M:%SZ"),  # month 13
        ("2026-02-30T10:30:00Z", "%Y-%m-%dT%H:%M:%SZ"),  # 30 February
        ("2026-04-28T10:30:00+02:00", "%Y-%m-%dT%H:%M:%SZ"),  # a zone where Z is expected
        ("2026-04-28 10:30:00Z", "%Y-%m-%dT%H:%M:%SZ"),  # space instead of T
        ("2026-04-28T10:30:00Z", "%Y-%m-%dT%H:%M:%S"),  # Z where none is expected
    ],
)
def test_fast_timestamp_parsing_refuses_what_strptime_refuses(value, fmt):
    with pytest.raises(ValueError):
        datetime.strptime(value, fmt)
    with pytest.raises(ValueError):
        DatetimeParser().parse(value, fmt)


def test_the_fast_path_is_installed():
    assert getattr(DatetimeParser.parse, "_allo_fast_path", False)
