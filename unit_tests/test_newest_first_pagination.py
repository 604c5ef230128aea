"""NewestFirstPagination (the `calls` stream's paging): stops below the slice's lower bound only while every
page is newest first; a list whose order breaks is read to its end, with one warning per stream."""

import json
import logging

import requests

from airbyte_cdk.sources.types import StreamSlice

from source_allo.components import NewestFirstPagination

URL = "http://127.0.0.1:1/v1/api/calls?allo_number=%2B14155550100&page={page}&size=100"


def _page(page, dates, total_pages=5):
    response = requests.Response()
    response.status_code = 200
    response._content = json.dumps(
        {"data": {"results": [{"id": f"c{page}{i}", "start_date": d} for i, d in enumerate(dates)],
                  "metadata": {"total_pages": total_pages, "current_page": page}}}
    ).encode()
    response.url = URL.format(page=page)
    response.request = requests.Request("GET", response.url).prepare()
    return response


def _slice(start="2026-05-10T00:00:00Z"):
    return StreamSlice(partition={"allo_number": "+14155550100", "parent_slice": {}}, cursor_slice={"start_time": start, "end_time": "2026-06-01T00:00:00Z"})


def _pager():
    return NewestFirstPagination(config={}, parameters={"name": "calls"}, page_size=100, start_from_page=0)


def test_stops_at_the_first_page_reaching_below_the_bound():
    pager = _pager()
    assert pager.next_page_token(_page(0, ["2026-05-20T10:00:00Z", "2026-05-15T10:00:00Z"]), 2, None, 0, _slice()) == 1
    assert pager.next_page_token(_page(1, ["2026-05-12T10:00:00Z", "2026-05-09T10:00:00Z"]), 2, None, 1, _slice()) is None


def test_a_page_out_of_order_reads_the_list_to_its_end_and_warns_once(caplog):
    pager = _pager()
    with caplog.at_level(logging.WARNING, logger="airbyte"):
        # Oldest first: the first page already reaches below the bound, but its order is not newest first.
        assert pager.next_page_token(_page(0, ["2026-05-01T10:00:00Z", "2026-05-02T10:00:00Z"]), 2, None, 0, _slice()) == 1
        assert pager.next_page_token(_page(1, ["2026-05-03T10:00:00Z", "2026-05-04T10:00:00Z"]), 2, None, 1, _slice()) == 2
        # Even a page that is in order on its own does not restore the stop for that list.
        assert pager.next_page_token(_page(2, ["2026-05-06T10:00:00Z", "2026-05-05T10:00:00Z"]), 2, None, 2, _slice()) == 3
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "calls" in warnings[0] and "+14155550100" in warnings[0] and "newest first" in warnings[0]


def test_the_order_is_checked_across_pages():
    pager = _pager()
    assert pager.next_page_token(_page(0, ["2026-05-20T10:00:00Z", "2026-05-18T10:00:00Z"]), 2, None, 0, _slice()) == 1
    # Each page newest first on its own, but newer than the previous page's last row: not newest first.
    assert pager.next_page_token(_page(1, ["2026-05-19T10:00:00Z", "2026-05-01T10:00:00Z"]), 2, None, 1, _slice()) == 2


def test_without_a_bound_every_page_is_read():
    pager = _pager()
    no_bound = StreamSlice(partition={"allo_number": "+14155550100"}, cursor_slice={})
    assert pager.next_page_token(_page(0, ["2020-01-02T00:00:00Z", "2020-01-01T00:00:00Z"]), 2, None, 0, no_bound) == 1
    assert pager.next_page_token(_page(4, ["2019-01-02T00:00:00Z"]), 1, None, 4, no_bound) is None  # the last page
