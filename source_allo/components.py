"""Custom components of the source-allo manifest.

Each class covers one behaviour the declarative framework cannot express; its docstring says which.
Everything else (auth, retries, cursors, state) stays in `manifest.yaml`.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import InitVar, dataclass, field
from datetime import date, datetime, timezone
from typing import Any, Callable, Iterable, List, Mapping, MutableMapping, Optional, Union

import orjson
import requests

from airbyte_cdk.models import (
    AirbyteEstimateTraceMessage,
    AirbyteMessage,
    AirbyteTraceMessage,
    EstimateType,
    FailureType,
    TraceType,
    Type,
)
from airbyte_cdk.sources.declarative.extractors.record_extractor import RecordExtractor
from airbyte_cdk.sources.declarative.extractors.record_filter import RecordFilter
from airbyte_cdk.sources.declarative.partition_routers.partition_router import PartitionRouter
from airbyte_cdk.sources.declarative.requesters.error_handlers.default_error_handler import (
    DefaultErrorHandler,
)
from airbyte_cdk.sources.declarative.requesters.paginators.strategies.pagination_strategy import (
    PaginationStrategy,
)
from airbyte_cdk.sources.declarative.transformations import RecordTransformation
from airbyte_cdk.sources.streams.http.error_handlers import BackoffStrategy
from airbyte_cdk.sources.streams.http.error_handlers.response_models import (
    ErrorResolution,
    ResponseAction,
)
from airbyte_cdk.sources.types import Config, Record, StreamSlice, StreamState
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_allo.allo_api import AlloApi, describe_error

logger = logging.getLogger("airbyte")


_NOT_JSON = object()


def _json_or_none(response: requests.Response) -> Optional[Any]:
    """The parsed body, or None when it is not JSON. Parsed once per response (orjson) and kept on it:
    the error handler, the paginator and the progress tracker all look at the same page."""
    cached = getattr(response, "_allo_json", None)
    if cached is None:
        try:
            cached = orjson.loads(response.content)
        except (orjson.JSONDecodeError, TypeError):
            cached = _NOT_JSON
        response._allo_json = cached  # type: ignore[attr-defined]
    return None if cached is _NOT_JSON else cached


# --------------------------------------------------------------------------------------------- errors


@dataclass
class AlloErrorHandler(DefaultErrorHandler):
    """DefaultErrorHandler plus two things the manifest cannot say.

    * A 200 whose body is not JSON (a truncated body, a proxy's HTML error page) is retried instead of
      failing the sync in the JSON decoder.
    * Every error message names the endpoint, the HTTP status, Allo's error `code` and `request_id`
      (what Allo support asks for), whichever envelope (v1 or v2) the endpoint uses.
    """

    def interpret_response(
        self, response_or_exception: Optional[Union[requests.Response, Exception]]
    ) -> ErrorResolution:
        if isinstance(response_or_exception, requests.Response) and response_or_exception.ok:
            if _json_or_none(response_or_exception) is None:
                return ErrorResolution(
                    response_action=ResponseAction.RETRY,
                    failure_type=FailureType.transient_error,
                    error_message=f"Allo returned an unreadable (non-JSON or truncated) body: "
                    f"{describe_error(response_or_exception)}.",
                )
            # A readable 2xx page is a success: the response filters only describe errors, and each
            # of their predicates would parse the whole page again.
            FAILURE_STREAKS.record_success(_endpoint_of(response_or_exception))
            return ErrorResolution(response_action=ResponseAction.SUCCESS)
        resolution = super().interpret_response(response_or_exception)
        if resolution.response_action == ResponseAction.IGNORE and isinstance(response_or_exception, requests.Response):
            self._warn_once(response_or_exception, resolution.error_message)
        if (
            isinstance(response_or_exception, requests.Response)
            and resolution.response_action in (ResponseAction.FAIL, ResponseAction.RETRY)
            and not response_or_exception.ok
        ):
            detail = describe_error(response_or_exception)
            message = resolution.error_message or "Allo request failed."
            if detail not in message:
                message = f"{message.rstrip()} [{detail}]"
            resolution = ErrorResolution(
                response_action=resolution.response_action,
                failure_type=resolution.failure_type,
                error_message=message,
            )
        return resolution


    def _warn_once(self, response: requests.Response, message: Optional[str]) -> None:
        # One warning per endpoint, not one per page or per Allo number.
        path = requests.utils.urlparse(response.url or "").path
        with _WARNED_LOCK:
            if path in _WARNED_PATHS:
                return
            _WARNED_PATHS.add(path)
        logger.warning(message or f"Skipping {path}: {describe_error(response)}")


_WARNED_LOCK = threading.Lock()
_WARNED_PATHS: set = set()


@dataclass
class AlloBackoffStrategy(BackoffStrategy):
    """Waits as Allo asks (`Retry-After` header, else `error.retry_after_seconds` in the body), then
    exponential backoff with full jitter.

    WaitTimeFromHeader cannot read the body field nor add jitter; and a wait longer than
    `max_wait_seconds` (a daily quota reset, hours away) fails the stream at once instead of sleeping.

    It also bounds the total wait when an endpoint is down: every partition and window retries on its
    own, so after `max_failure_streak` failures in a row on one endpoint (across all of them) the
    stream fails instead of spending hours retrying windows one after the other.
    """

    config: Config
    parameters: InitVar[Mapping[str, Any]]
    max_wait_seconds: Union[int, str] = 120
    base_seconds: float = 1.0
    cap_seconds: float = 60.0
    max_failure_streak: Union[int, str] = 24

    def __post_init__(self, parameters: Mapping[str, Any]) -> None:
        self.max_wait_seconds = int(self.max_wait_seconds)
        self.max_failure_streak = int(self.max_failure_streak)

    def backoff_time(
        self,
        response_or_exception: Optional[Union[requests.Response, requests.RequestException]],
        attempt_count: int,
    ) -> Optional[float]:
        requested = None
        if isinstance(response_or_exception, requests.Response):
            requested = _requested_wait(response_or_exception)
        if requested is not None:
            if requested > self.max_wait_seconds:
                raise AirbyteTracedException(
                    message=f"Allo asked to wait {requested:.0f} s before retrying "
                    f"({describe_error(response_or_exception)}), longer than the {self.max_wait_seconds} s "
                    "this connector waits inside a sync. The next sync resumes from the saved state.",
                    failure_type=FailureType.transient_error,
                )
            # A little jitter so that parallel workers do not all come back in the same millisecond.
            wait = requested + random.uniform(0.05, 0.25)
        else:
            streak = FAILURE_STREAKS.record_failure(_endpoint_of(response_or_exception))
            if streak > self.max_failure_streak:
                raise AirbyteTracedException(
                    message=f"Allo failed {streak - 1} requests in a row on this endpoint "
                    f"({_describe_failure(response_or_exception)}); giving up instead of retrying for hours. "
                    "The next sync resumes from the saved state.",
                    failure_type=FailureType.transient_error,
                )
            exponential = min(self.cap_seconds, self.base_seconds * (2 ** max(0, attempt_count - 1)))
            wait = max(0.1, random.uniform(0, exponential))
        # The CDK's own retry log says "Rate limit exceeded" whatever happened (a 500, a dropped
        # connection, a truncated body): say what Allo actually answered.
        logger.info(
            f"Allo request failed (attempt {attempt_count}): {_describe_failure(response_or_exception)}. "
            f"Retrying in {wait:.1f} s."
        )
        return wait


class FailureStreaks:
    """Consecutive failed requests per endpoint path, reset by any readable answer from it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._streaks: dict[str, int] = {}

    def record_failure(self, endpoint: str) -> int:
        with self._lock:
            self._streaks[endpoint] = self._streaks.get(endpoint, 0) + 1
            return self._streaks[endpoint]

    def record_success(self, endpoint: str) -> None:
        if self._streaks.get(endpoint):
            with self._lock:
                self._streaks[endpoint] = 0


FAILURE_STREAKS = FailureStreaks()


def _endpoint_of(response_or_exception: Any) -> str:
    request = getattr(response_or_exception, "request", None)
    url = getattr(request, "url", None) or getattr(response_or_exception, "url", None) or ""
    return requests.utils.urlparse(url).path


def _describe_failure(response_or_exception: Any) -> str:
    if isinstance(response_or_exception, requests.Response):
        return describe_error(response_or_exception)
    request = getattr(response_or_exception, "request", None)
    where = ""
    if request is not None and getattr(request, "url", None):
        where = f"{request.method} {requests.utils.urlparse(request.url).path} -> "
    return f"{where}no answer ({type(response_or_exception).__name__}: {response_or_exception})"


def _requested_wait(response: requests.Response) -> Optional[float]:
    header = response.headers.get("Retry-After")
    if header:
        try:
            return max(0.0, float(header))
        except ValueError:
            pass
    body = _json_or_none(response)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        seconds = body["error"].get("retry_after_seconds")
        if isinstance(seconds, (int, float)):
            return max(0.0, float(seconds))
    return None



# --------------------------------------------------------------------------------------------- progress


class SyncProgress:
    """Row estimates and a steady progress log for long syncs.

    Allo's first page of every slice says how many rows the slice holds (`total_count`, or
    `total_pages` on v1); the sum per stream is sent as the protocol's ESTIMATE trace message, and a
    log line every `interval_seconds` says how far each stream is. Estimates go through the source's
    message repository (set by SourceAllo), so they come out in order with the records.
    """

    def __init__(self, interval_seconds: float = 30.0):
        self.interval_seconds = interval_seconds
        self.repository = None
        self._lock = threading.Lock()
        self._estimate: dict[str, int] = {}
        self._seen: dict[str, int] = {}
        self._last_log = time.monotonic()

    def reset(self, repository: Any, interval_seconds: float) -> None:
        with self._lock:
            self.repository, self.interval_seconds = repository, interval_seconds
            self._estimate.clear()
            self._seen.clear()
            self._last_log = time.monotonic()

    def page(self, stream: Optional[str], first_page_of_slice: bool, rows_in_slice: Optional[int], rows_on_page: int) -> None:
        if not stream or self.repository is None:
            return
        estimate_message = log_line = None
        with self._lock:
            self._seen[stream] = self._seen.get(stream, 0) + rows_on_page
            if first_page_of_slice and rows_in_slice is not None:
                self._estimate[stream] = self._estimate.get(stream, 0) + rows_in_slice
                estimate_message = AirbyteMessage(
                    type=Type.TRACE,
                    trace=AirbyteTraceMessage(
                        type=TraceType.ESTIMATE,
                        emitted_at=time.time() * 1000,
                        estimate=AirbyteEstimateTraceMessage(name=stream, type=EstimateType.STREAM, row_estimate=self._estimate[stream]),
                    ),
                )
            now = time.monotonic()
            if now - self._last_log >= self.interval_seconds:
                self._last_log = now
                log_line = "Progress: " + ", ".join(
                    f"{name} {seen:,} of ~{self._estimate[name]:,} records" if self._estimate.get(name) else f"{name} {seen:,} records"
                    for name, seen in sorted(self._seen.items())
                )
        if estimate_message is not None:
            self.repository.emit_message(estimate_message)
        if log_line is not None:
            logger.info(log_line)


PROGRESS = SyncProgress()

# The paginated endpoints, by the stream that reads them (for progress messages).
STREAM_BY_PATH = {
    "/v2/api/conversations": "conversations",
    "/v2/api/conversations/items/search": "conversation_items",
    "/v2/api/crm/people/search": "crm_people",
    "/v2/api/crm/companies/search": "crm_companies",
    "/v2/api/crm/deals/search": "crm_deals",
    "/v1/api/contacts": "contacts",
    "/v1/api/calls": "calls",
}

# --------------------------------------------------------------------------------------------- paging


@dataclass
class AlloPagination(PaginationStrategy):
    """Page-number pagination that trusts Allo's own page metadata.

    PageIncrement stops only on a short page (one wasted request whenever the total is a multiple of
    the page size, and each request may count against a daily quota); CursorPagination cannot fall back
    when metadata is missing. This reads v2 `pagination.has_more/total_pages`, v1
    `data.metadata(.pagination).total_pages/current_page`, and only without either falls back to the
    short-page rule. It never requests a page past `total_pages`, so a server that keeps answering
    cannot make it loop.

    Rows deleted while a slice is paged shift every later row up: the first rows of the next page slide
    onto a page already read and would be skipped. When `total_count` drops between two pages, this
    goes back as many pages as rows vanished and reads on from there (duplicates, never a gap), at
    most `MAX_REWINDS` times per slice.
    """

    MAX_REWINDS = 5

    config: Config
    parameters: InitVar[Mapping[str, Any]]
    page_size: Union[int, str] = 100
    start_from_page: int = 1

    def __post_init__(self, parameters: Mapping[str, Any]) -> None:
        self._page_size = int(self.page_size)
        # Custom components get no stream name ($parameters would also leak into request bodies):
        # the progress tracker names a stream by the endpoint it reads.
        self._stream = (parameters or {}).get("name")
        # One strategy serves every partition of a stream, concurrently: track each slice by its request.
        self._lock = threading.Lock()
        self._totals: dict[str, tuple[Optional[int], int]] = {}

    @property
    def initial_token(self) -> Optional[Any]:
        # Always send the first page number explicitly, so page 1 is never read twice.
        return self.start_from_page

    def get_page_size(self) -> Optional[int]:
        return self._page_size

    def next_page_token(
        self,
        response: requests.Response,
        last_page_size: int,
        last_record: Optional[Record],
        last_page_token_value: Optional[Any] = None,
        stream_slice: Optional[StreamSlice] = None,
    ) -> Optional[Any]:
        current = self.start_from_page if last_page_token_value is None else int(last_page_token_value)
        body = _json_or_none(response)
        # `last_page_size` counts the records left after the record filter: a page whose rows were all
        # dropped (e.g. outside the requested window) is not the end of the data. Count what Allo sent.
        served = _rows_served(body)
        if served is not None:
            last_page_size = served
        has_more, total_pages = _page_metadata(body)
        stream = self._stream or STREAM_BY_PATH.get(requests.utils.urlparse(response.url or "").path)
        PROGRESS.page(stream, current == self.start_from_page, _row_count(body, total_pages, self._page_size), last_page_size)
        rewind_to = self._rewind_after_deletions(response, body, current)
        if rewind_to is not None:
            return rewind_to
        following = self._following_page(current, last_page_size, has_more, total_pages)
        if following is None:
            with self._lock:
                self._totals.pop(_slice_key(response), None)
        return following

    def _following_page(self, current: int, rows: int, has_more: Optional[bool], total_pages: Optional[int]) -> Optional[int]:
        if rows == 0:
            return None
        # Allo's `total_pages` counts from 1 even on the 0-indexed v1 API.
        last_page_index = None if total_pages is None else total_pages - 1 + self.start_from_page
        if last_page_index is not None and current >= last_page_index:
            return None
        if has_more is not None:
            return current + 1 if has_more else None
        if total_pages is not None:
            return current + 1
        return current + 1 if rows >= self._page_size else None


    def _rewind_after_deletions(self, response: requests.Response, body: Any, current: int) -> Optional[int]:
        pagination = body.get("pagination") if isinstance(body, dict) else None
        total = pagination.get("total_count") if isinstance(pagination, dict) else None
        if not isinstance(total, int) or isinstance(total, bool):
            return None
        key = _slice_key(response)
        with self._lock:
            if len(self._totals) > 10_000:  # slices that ended long ago
                self._totals.clear()
            previous, rewinds = self._totals.get(key, (None, 0))
            self._totals[key] = (total, rewinds)
            if previous is None or total >= previous or rewinds >= self.MAX_REWINDS:
                return None
            self._totals[key] = (total, rewinds + 1)
        back = -(-(previous - total) // self._page_size)
        target = max(self.start_from_page, current - back)
        logger.info(
            f"{self._stream or 'stream'}: {previous - total} row(s) disappeared while paging "
            f"{requests.utils.urlparse(response.url or '').path}; re-reading from page {target} so that no row is skipped."
        )
        return target


def _slice_key(response: requests.Response) -> str:
    """The request without its page number: the same for every page of one slice."""
    request = response.request
    parts = requests.utils.urlparse(getattr(request, "url", "") or "")
    query = "&".join(sorted(q for q in parts.query.split("&") if q and not q.startswith("page=")))
    body = getattr(request, "body", None) or b""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    try:
        payload = orjson.loads(body) if body else {}
        if isinstance(payload, dict):
            payload.pop("page", None)
        body = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS).decode()
    except orjson.JSONDecodeError:
        pass
    return f"{getattr(request, 'method', '')} {parts.path}?{query} {body}"


def _rows_served(body: Any) -> Optional[int]:
    """How many rows a v2 (`data[]`) or v1 (`data.results[]`, null past the end) page holds; None if unknown."""
    if not isinstance(body, dict):
        return None
    data = body.get("data")
    if isinstance(data, list):
        return len(data)
    if isinstance(data, dict) and "results" in data:
        results = data.get("results")
        return len(results) if isinstance(results, list) else 0
    return None


def _row_count(body: Any, total_pages: Optional[int], page_size: int) -> Optional[int]:
    """Rows in the whole slice: v2 `total_count`; v1 only says pages, so an upper bound."""
    pagination = body.get("pagination") if isinstance(body, dict) else None
    if isinstance(pagination, dict) and isinstance(pagination.get("total_count"), int):
        return pagination["total_count"]
    return total_pages * page_size if total_pages is not None else None


def _page_metadata(body: Any) -> tuple[Optional[bool], Optional[int]]:
    """(has_more, total_pages) from a v2 or v1 response body; None where the body does not say."""
    if not isinstance(body, dict):
        return None, None
    pagination = body.get("pagination")
    if not isinstance(pagination, dict):
        data = body.get("data")
        metadata = data.get("metadata") if isinstance(data, dict) else None
        if isinstance(metadata, dict):
            pagination = metadata.get("pagination") if isinstance(metadata.get("pagination"), dict) else metadata
    if not isinstance(pagination, dict):
        return None, None
    has_more = pagination.get("has_more")
    total_pages = pagination.get("total_pages")
    return (
        has_more if isinstance(has_more, bool) else None,
        total_pages if isinstance(total_pages, int) and not isinstance(total_pages, bool) else None,
    )


# --------------------------------------------------------------------------------------------- records


@dataclass
class AddAlloNumber(RecordTransformation):
    """Adds the partition's Allo number to each record (`allo_number`, a string).

    AddFields would do it with a Jinja template rendered for every record, a tenth of the CPU of a
    conversations sync; this reads the partition directly.
    """

    def transform(
        self,
        record: MutableMapping[str, Any],
        config: Optional[Config] = None,
        stream_state: Optional[StreamState] = None,
        stream_slice: Optional[StreamSlice] = None,
    ) -> None:
        number = (stream_slice.partition if stream_slice is not None else {}).get("allo_number")
        record["allo_number"] = None if number is None else str(number)


# ------------------------------------------------------------------------------------ pages read ahead


_PAGE_AHEAD_POOL = ThreadPoolExecutor(max_workers=16, thread_name_prefix="allo-page-ahead")


class PageAhead:
    """Requests the next pages of a slice while the reader is still on the current one.

    The CDK reads the pages of one partition strictly one after the other, so a partition moves at one
    page per round trip (~6 pages/s at Allo's latency) and a sync slows down to that pace once only one
    Allo number is left. Allo pages by number and says how many pages there are, so the
    following pages can be requested early. No declarative component can do this: it is installed on a
    stream's `SimpleRetriever` in place of its `_fetch_next_page` (see `SourceAllo`), and leaves the
    retriever's own loop (paginator, rewinds, stop conditions, state) untouched.

    Correctness does not depend on it: requests go through the stream's own requester (same budget,
    retries and errors), and the reader still receives every page in order and decides alone what comes
    next. Pages are read ahead only once the reader asks for page 2 (a data feed that stops on page 1
    costs nothing extra), never past `total_pages`, and at most `depth` ahead; when the reader asks for a
    page that was not predicted (a rewind after deletions, a new slice), the predictions are dropped.
    """

    def __init__(self, fetch_page: Any, first_page: int, depth: int):
        self._fetch_page = fetch_page  # the retriever's own `_fetch_next_page`
        self._first_page = first_page
        self.depth = depth
        self._local = threading.local()  # one slice at a time per worker thread

    def __call__(
        self,
        stream_slice: StreamSlice,
        next_page_token: Optional[Mapping[str, Any]] = None,
        page_size_override: Optional[int] = None,
    ) -> Optional[requests.Response]:
        page = (next_page_token or {}).get("next_page_token")
        ahead = self._ahead_for(stream_slice)
        if page_size_override is not None or not isinstance(page, int):
            self._drop(ahead)
            return self._fetch_page(stream_slice, next_page_token, page_size_override)
        future = ahead["pages"].pop(page, None)
        if future is None:
            self._drop(ahead)
        if page > self._first_page and ahead["last_page"] is not None:
            for following in range(max(page + 1, ahead["scheduled_to"] + 1), min(page + self.depth, ahead["last_page"]) + 1):
                ahead["pages"][following] = _PAGE_AHEAD_POOL.submit(
                    self._fetch_page, stream_slice, {"next_page_token": following}
                )
                ahead["scheduled_to"] = following
        response = future.result() if future is not None else self._fetch_page(stream_slice, next_page_token)
        _, total_pages = _page_metadata(_json_or_none(response)) if response is not None else (None, None)
        if total_pages is not None:
            ahead["last_page"] = total_pages - 1 + self._first_page  # `total_pages` counts from 1, also on v1
        return response

    def _ahead_for(self, stream_slice: StreamSlice) -> dict:
        ahead = getattr(self._local, "ahead", None)
        if ahead is None or ahead["slice"] is not stream_slice:
            if ahead is not None:
                self._drop(ahead)
            ahead = {"slice": stream_slice, "pages": {}, "last_page": None, "scheduled_to": self._first_page}
            self._local.ahead = ahead
        return ahead

    def _drop(self, ahead: dict) -> None:
        """Forget predicted pages: not yet sent ones are cancelled, answers of sent ones are discarded."""
        for future in ahead["pages"].values():
            future.cancel()
        ahead["pages"].clear()
        ahead["scheduled_to"] = self._first_page


# --------------------------------------------------------------------------------------------- partitions


_NUMBERS_LOCK = threading.Lock()
_NUMBERS_CACHE: dict[tuple[str, str], List[str]] = {}
# Listings started before the streams exist (see list_allo_numbers_early), taken by the first router.
_NUMBERS_EARLY: dict[tuple[str, str], Future] = {}


def in_background(work: Callable[[], Any], thread_name: str) -> Future:
    """Runs `work` on a thread of its own, which ends with it; its result or error is the Future's."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_name)
    future = pool.submit(work)
    pool.shutdown(wait=False)
    return future


def _numbers_key(config: Config) -> tuple[str, str]:
    return (str(config.get("api_url")), str(config.get("api_key")))


def list_allo_numbers_early(config: Config) -> bool:
    """Starts listing the account's numbers on a background thread, for a sync whose partitioned streams
    will need them: the request then overlaps `GET /v2/api/me` and the building of the streams instead
    of following them. False when there is nothing to list (numbers configured, or already listed)."""
    if any(config.get("allo_numbers") or []):
        return False
    key = _numbers_key(config)
    with _NUMBERS_LOCK:
        if key in _NUMBERS_CACHE or key in _NUMBERS_EARLY:
            return False
        _NUMBERS_EARLY[key] = in_background(AlloApi.from_config(config).list_allo_numbers, "allo-numbers")
    return True


@dataclass
class AlloNumberPartitionRouter(PartitionRouter):
    """One partition per Allo number (`{"allo_number": "+1..."}`, injected as the `allo_number` query
    parameter).

    The numbers come from the config's `allo_numbers`, else from the account: `GET /v2/api/numbers`
    (sender IDs, whose `number` is null, skipped), or `GET /v1/api/numbers` when the key lacks
    PHONE_NUMBERS_READ (that endpoint only needs CONVERSATIONS_READ). A SubstreamPartitionRouter would
    read the parent once per child stream and could neither prefer the config nor fall back to v1; this
    lists the numbers once per sync and shares them between `conversations` and `calls`.
    """

    config: Config
    parameters: InitVar[Mapping[str, Any]]

    def __post_init__(self, parameters: Mapping[str, Any]) -> None:
        pass

    def allo_numbers(self) -> List[str]:
        configured = [n for n in (self.config.get("allo_numbers") or []) if n]
        if configured:
            return list(dict.fromkeys(configured))
        key = _numbers_key(self.config)
        with _NUMBERS_LOCK:
            if key not in _NUMBERS_CACHE:
                early = _NUMBERS_EARLY.pop(key, None)
                # An early listing's error is raised here, as the listing's own would be.
                numbers = early.result() if early else AlloApi.from_config(self.config).list_allo_numbers()
                _NUMBERS_CACHE[key] = numbers
            return list(_NUMBERS_CACHE[key])

    def stream_slices(self) -> Iterable[StreamSlice]:
        for number in self.allo_numbers():
            yield StreamSlice(partition={"allo_number": number}, cursor_slice={})

    def _inject(self, stream_slice: Optional[StreamSlice]) -> Mapping[str, Any]:
        if stream_slice and stream_slice.partition.get("allo_number"):
            return {"allo_number": stream_slice.partition["allo_number"]}
        return {}

    def get_request_params(self, stream_state=None, stream_slice=None, next_page_token=None) -> Mapping[str, Any]:
        return self._inject(stream_slice)

    def get_request_headers(self, stream_state=None, stream_slice=None, next_page_token=None) -> Mapping[str, Any]:
        return {}

    def get_request_body_data(self, stream_state=None, stream_slice=None, next_page_token=None) -> Mapping[str, Any]:
        return {}

    def get_request_body_json(self, stream_state=None, stream_slice=None, next_page_token=None) -> Mapping[str, Any]:
        return {}

    def set_initial_state(self, stream_state: StreamState) -> None:
        # The partitions carry no state of their own: the per-number cursors hold it.
        pass

    def get_stream_state(self) -> Optional[Mapping[str, StreamState]]:
        return None


# --------------------------------------------------------------------------------------------- records


@dataclass
class WindowRecordFilter(RecordFilter):
    """Keeps only records whose `date` falls inside the requested date window, and logs the others.

    Allo silently ignores body fields it does not understand; rows outside the window mean the date
    filter was not applied. Dropping them keeps every window exact (each row is emitted by the window it
    belongs to, exactly once) and the log says the server misbehaved. It also applies the optional
    `allo_numbers` restriction (in Python: a template per record costs more than the rest of the work).
    """

    def filter_records(
        self,
        records: Iterable[Mapping[str, Any]],
        stream_state: StreamState,
        stream_slice: Optional[StreamSlice] = None,
        next_page_token: Optional[Mapping[str, Any]] = None,
    ) -> Iterable[Mapping[str, Any]]:
        window = _slice_window(stream_slice)
        numbers = set(self.config.get("allo_numbers") or [])
        dropped = 0
        if self.condition:
            records = super().filter_records(records, stream_state, stream_slice, next_page_token)
        for record in records:
            day = _record_day(record.get("date"))
            if window and day is not None and not (window[0] <= day <= window[1]):
                dropped += 1
                continue
            if numbers and record.get("allo_number") not in numbers:
                continue
            yield record
        if dropped:
            logger.warning(
                f"Allo returned {dropped} conversation item(s) outside the requested window "
                f"{window[0]}..{window[1]}: the server ignored the date filter. They were dropped here and "
                "are read by the window they belong to."
            )


@dataclass
class SinceBoundRecordFilter(RecordFilter):
    """Says so, once per sync, when Allo returns conversations older than the `last_activity_since` the
    connector sent: the server ignored the filter. The cursor (`is_data_feed`) already stops paging
    there and drops those rows; without this the misbehaviour would go unnoticed."""

    _warned: bool = field(default=False, init=False, repr=False)

    def filter_records(
        self,
        records: Iterable[Mapping[str, Any]],
        stream_state: StreamState,
        stream_slice: Optional[StreamSlice] = None,
        next_page_token: Optional[Mapping[str, Any]] = None,
    ) -> Iterable[Mapping[str, Any]]:
        bound = _instant((stream_slice or {}).get("start_time")) if stream_slice else None
        for record in records:
            if bound is not None and not self._warned:
                seen = _instant(record.get("last_activity"))
                if seen is not None and seen < bound:
                    self._warned = True
                    logger.warning(
                        f"Allo returned conversations older than the requested last_activity_since filter "
                        f"({record.get('last_activity')} < {stream_slice.get('start_time')}, number "
                        f"{(stream_slice.partition or {}).get('allo_number')}): the server ignored the filter. "
                        "Paging stops at the bound and older rows are not emitted again."
                    )
            yield record


def _instant(value: Any) -> Optional[datetime]:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _slice_window(stream_slice: Optional[StreamSlice]) -> Optional[tuple[date, date]]:
    if not stream_slice:
        return None
    try:
        return (
            date.fromisoformat(str(stream_slice["start_time"])[:10]),
            date.fromisoformat(str(stream_slice["end_time"])[:10]),
        )
    except (KeyError, ValueError):
        return None


def _record_day(value: Any) -> Optional[date]:
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


@dataclass
class AlloRecordExtractor(RecordExtractor):
    """Returns the list at `field_path` (`data`, or `data.results` on v1) of the page's JSON body.

    Same result as a DpathExtractor, at a fraction of the cost: dpath walks the whole page for a plain
    key lookup (more CPU than everything else per record), and this reuses the body the error handler
    already parsed instead of decoding the page a second time.
    """

    config: Config
    parameters: InitVar[Mapping[str, Any]]
    field_path: List[str] = field(default_factory=lambda: ["data"])

    def __post_init__(self, parameters: Mapping[str, Any]) -> None:
        pass

    def extract_records(self, response: requests.Response) -> Iterable[MutableMapping[Any, Any]]:
        node: Any = _json_or_none(response)
        for key in self.field_path:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, list):
            return [row for row in node if isinstance(row, dict)]
        if isinstance(node, dict):
            return [node]
        return []


@dataclass
class TeamMetricsExtractor(RecordExtractor):
    """Turns one `POST /v2/api/analytics/overview` answer into rows: one team row (`data.summary`) and
    one row per user (`data.breakdown[]`). A DpathExtractor can select only one of the two."""

    config: Config
    parameters: InitVar[Mapping[str, Any]]

    def __post_init__(self, parameters: Mapping[str, Any]) -> None:
        pass

    def extract_records(self, response: requests.Response) -> Iterable[MutableMapping[Any, Any]]:
        body = _json_or_none(response)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            return
        last_updated = data.get("last_updated")
        summary = data.get("summary") if isinstance(data.get("summary"), dict) else {}
        yield {
            "scope": "team",
            "user_id": "",
            "user": None,
            **summary,
            "last_updated": last_updated,
        }
        for entry in data.get("breakdown") or []:
            if not isinstance(entry, dict):
                continue
            user = entry.get("user") if isinstance(entry.get("user"), dict) else {}
            yield {
                "scope": "user",
                "user_id": str(user.get("id") or ""),
                **entry,
                "last_updated": last_updated,
            }
