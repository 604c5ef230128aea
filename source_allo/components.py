"""Custom components of the source-allo manifest: only what `manifest.yaml` cannot say.

This one file serves both runners: the `source-allo` command registers it as
`source_declarative_manifest.components` (the name the manifest's `class_name`s use), and Airbyte's
`source-declarative-manifest` runner loads the same text from `__injected_components_py`. So it imports
nothing from the `source_allo` package, keeps no state between syncs (every component's state lives on
its own instance, built anew for each source), and touches only public airbyte-cdk interfaces.
"""

import json
import logging
import os
import random
import re
import sys
import threading
import time
import ipaddress
from dataclasses import InitVar, dataclass, field
from datetime import date, datetime, timezone
from typing import Any, Iterable, List, Mapping, MutableMapping, Optional, Union
from urllib.parse import urlsplit

import requests

from airbyte_cdk.models import (
    AirbyteEstimateTraceMessage,
    AirbyteMessage,
    AirbyteMessageSerializer,
    AirbyteTraceMessage,
    EstimateType,
    FailureType,
    TraceType,
    Type,
)
from airbyte_cdk.sources.declarative.extractors.record_extractor import RecordExtractor
from airbyte_cdk.sources.declarative.extractors.record_filter import RecordFilter
from airbyte_cdk.sources.declarative.migrations.state_migration import StateMigration
from airbyte_cdk.sources.declarative.requesters.error_handlers.default_error_handler import (
    DefaultErrorHandler,
)
from airbyte_cdk.sources.declarative.requesters.paginators.strategies.pagination_strategy import (
    PaginationStrategy,
)
from airbyte_cdk.sources.declarative.transformations.config_transformations.config_transformation import (
    ConfigTransformation,
)
from airbyte_cdk.sources.declarative.validators.validation_strategy import ValidationStrategy
from airbyte_cdk.sources.streams.http.error_handlers import BackoffStrategy
from airbyte_cdk.sources.streams.http.error_handlers.response_models import (
    ErrorResolution,
    ResponseAction,
)
from airbyte_cdk.sources.types import Config, Record, StreamSlice, StreamState
from airbyte_cdk.utils.airbyte_secrets_utils import update_secrets
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

logger = logging.getLogger("airbyte")

API_KEYS_PAGE = "https://web.withallo.com/settings/api"
DEFAULT_API_URL = "https://api.withallo.com"


# ============================================================================================ config


_KEY_PREFIX = re.compile(r"^(api-key|bearer)\s+", re.IGNORECASE)


@dataclass
class NormalizeAlloConfig(ConfigTransformation):
    """Normalises what users paste, before anything reads the config.

    * `api_key`: a leading `Api-Key ` or `Bearer ` (any case) and surrounding blanks are removed, and the
      bare key is registered as a secret, so that it is masked in every log line like the key as typed.
    * `api_url`: surrounding blanks and a trailing `/` are removed; empty means Allo's URL.
    * `start_date`: `YYYY-MM-DD` becomes `YYYY-MM-DDT00:00:00Z`, the one form the cursors read.

    ConfigAddFields could set a field from a template, but not strip a prefix conditionally nor mask the
    result. It never raises: what is still wrong afterwards is reported by the validations, with the
    field's name and the fix.
    """

    def transform(self, config: MutableMapping[str, Any]) -> None:
        key = config.get("api_key")
        if isinstance(key, str):
            bare = _KEY_PREFIX.sub("", key.strip()).strip()
            config["api_key"] = bare
            if bare:
                update_secrets([bare])
        url = config.get("api_url")
        if url is None or (isinstance(url, str) and not url.strip()):
            config["api_url"] = DEFAULT_API_URL
        elif isinstance(url, str):
            config["api_url"] = url.strip().rstrip("/")
        start = config.get("start_date")
        if isinstance(start, str):
            start = start.strip()
            if re.fullmatch(r"\d{4}-\d{2}-\d{2}", start):
                start += "T00:00:00Z"
            config["start_date"] = start
        if config.get("start_date") in ("", None):
            config.pop("start_date", None)


def _config_error(message: str) -> AirbyteTracedException:
    return AirbyteTracedException(message=message, internal_message=message, failure_type=FailureType.config_error)


@dataclass
class ValidApiKey(ValidationStrategy):
    """The key must be one word once its prefix is removed. The spec's JSON schema can require a string,
    not say what is wrong with it."""

    def validate(self, value: Any) -> None:
        if not isinstance(value, str) or not value or value.lower() in ("api-key", "bearer"):
            raise _config_error(
                f"The API key (`api_key`) is empty. Paste the key created in Allo under Settings > API ({API_KEYS_PAGE})."
            )
        if any(character.isspace() for character in value):
            raise _config_error(
                "The API key (`api_key`) is malformed: it must be one word such as `ak_live_...`, optionally "
                "preceded by `Api-Key `. Paste the key again from Allo's Settings > API page."
            )


@dataclass
class ValidApiUrl(ValidationStrategy):
    """`api_url` must be an https URL, or http on a loopback host (a local test server): over plain http to a
    remote host the key would travel in clear. A pattern cannot tell a loopback address from another."""

    def validate(self, value: Any) -> None:
        parts = urlsplit(str(value))
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise _config_error(f"`api_url` {value!r} is not an http(s) URL. Leave it empty to use {DEFAULT_API_URL}.")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise _config_error(f"`api_url` must be a base URL such as {DEFAULT_API_URL}, without query or credentials.")
        if parts.scheme == "http" and not _is_loopback(parts.hostname):
            raise _config_error(
                f"`api_url` {value!r} uses plain http:// with a non-local host, which would send the API key in clear. "
                "Use https://, or http:// only with localhost / 127.0.0.1 (a local test server)."
            )


def unreachable_message(url: str, reason: str) -> str:
    return (
        f"Could not connect to the Allo API at {url}: {reason}. Check the source's API URL "
        f"(`api_url`; leave it empty for {DEFAULT_API_URL}) and that this machine can reach it."
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


@dataclass
class ValidAlloNumbers(ValidationStrategy):
    """`allo_numbers` must be E.164 numbers. A pattern in the spec would be refused with the raw regular
    expression; this names the value and shows the expected form."""

    def validate(self, value: Any) -> None:
        if value is None:
            return
        if not isinstance(value, list):
            raise _config_error('`allo_numbers` must be a list of phone numbers such as ["+14155550100"].')
        for number in value:
            if not isinstance(number, str) or not _E164.match(number):
                raise _config_error(
                    f"`allo_numbers` contains {number!r}, which is not an E.164 phone number. Write it as a plus sign, "
                    "country code and number with no spaces or dashes, e.g. +14155550100, or leave the list empty "
                    "to sync every number."
                )


@dataclass
class ValidStartDate(ValidationStrategy):
    """`start_date` must be a real UTC date between 2000 and now. The spec's pattern accepts 2026-02-31 and
    dates in the future; a future start would make every sync silently empty."""

    def validate(self, value: Any) -> None:
        parsed = parse_instant(value)
        if parsed is None:
            raise _config_error(
                f"`start_date` {value!r} is not a valid date. Use YYYY-MM-DD or YYYY-MM-DDTHH:mm:ssZ (UTC), "
                "e.g. 2025-01-01 or 2025-01-01T00:00:00Z, or leave it empty."
            )
        if parsed > datetime.now(timezone.utc):
            raise _config_error(f"`start_date` {value!r} is in the future. Use a past date, or leave it empty.")
        if parsed.year < 2000:
            raise _config_error(f"`start_date` {value!r} is before 2000. Use the date your Allo history begins, or leave it empty.")


# ============================================================================================ timestamps


_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?)?$")


def parse_instant(value: Any) -> Optional[datetime]:
    """An Allo timestamp or date as an aware UTC datetime (zone-less values are UTC), or None."""
    if not isinstance(value, str) or not _TIMESTAMP.match(value.strip()):
        return None
    text = value.strip().replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


# ============================================================================================ state


@dataclass
class RepairAlloState(StateMigration):
    """Makes a saved state safe to resume from: unreadable parts are dropped (read again, never skipped).

    The CDK starts a partition that has no saved cursor at the stream's *global* cursor (`state`), which it
    keeps beside the per-partition cursors. For an Allo number added since the last sync (to
    `allo_numbers`, or bought in the workspace) that skips its whole history. And a cursor it cannot
    parse ends the sync with a system error. This migration runs on every incoming state of the stream
    (as `AirbyteStateMessage` or dict, whichever the runner passes, the CDK hands it here as a mapping).

    Per-number streams (`per_partition: true`, state before and after)::

        before: {"use_global_cursor": false, "state": {"last_activity": "2026-05-01T10:00:00Z"},
                 "states": [{"partition": {"allo_number": "+14155550100"},
                             "cursor": {"last_activity": "2026-05-01T10:00:00Z"}},
                            {"partition": {"allo_number": "+14155550101"}, "cursor": {"last_activity": "yesterday"}},
                            {"partition": {"allo_number": "+14155550102"}}],
                 "lookback_window": 86400}
        after:  {"use_global_cursor": false,
                 "states": [{"partition": {"allo_number": "+14155550100", "parent_slice": {}},
                             "cursor": {"last_activity": "2026-05-01T10:00:00Z"}}],
                 "lookback_window": 86400}

      A partition is kept as the CDK wrote it (it matches partitions as a whole); one saved without the
      `parent_slice` the CDK's parent-stream partitions carry gets the empty one.

      +14155550101 and +14155550102 (and any number not listed) start again at `start_date`, each
      with a warning. A state with no per-number entries but a readable global cursor (the shape of
      an older release's `conversation_items` state, `{"date": "2026-05-01"}`) is kept as the global
      cursor, so an upgrade does not re-read history.

    Flat streams (`per_partition: false`)::

        before: {"updated_at": "not a date"}      after: {}          (re-read from the start, warning)
        before: {"updated_at": "2026-05-01T10:00:00Z"}               (unchanged)

    Substreams read only for the parent records that changed (`parent_stream` set: `contact_details`, one
    partition per changed contact, with the CDK's global substream cursor)::

        before: {"use_global_cursor": true, "state": {"changed_at": "2026-05-01T10:00:00"}, "lookback_window": 12,
                 "parent_state": {"contact_list": {"changed_at": "2026-05-01T10:00:00"}}}
        after:  {"use_global_cursor": true, "states": [],
                 "parent_state": {"contact_list": {"changed_at": "2026-05-01T10:00:00"}}}

      Only the parent's cursor decides what is read (the parents changed since it); it is kept as saved. The
      substream's own cursor (`state`, per-partition `states`, `lookback_window`) is dropped: each partition
      then starts at the cursor's start, so a partition the parent hands over is never skipped by a cursor
      saved ahead of it. A state without a readable parent cursor (none, not a date, another shape) is
      dropped with a warning: every parent record is read again (one request each, duplicates, never a gap).

    Anything else (not an object, `states` not a list, another connector's keys) is dropped with a
    warning naming the stream and what was wrong: that stream is read again from `start_date`.
    """

    config: Config
    parameters: InitVar[Mapping[str, Any]]
    stream_name: str = ""
    cursor_field: str = ""
    partition_field: str = "allo_number"
    per_partition: bool = False
    parent_stream: str = ""

    def __post_init__(self, parameters: Mapping[str, Any]) -> None:
        if isinstance(self.per_partition, str):
            self.per_partition = self.per_partition.strip().lower() == "true"

    def should_migrate(self, stream_state: Mapping[str, Any]) -> bool:
        return stream_state is not None and stream_state != {}

    def migrate(self, stream_state: Mapping[str, Any]) -> Mapping[str, Any]:
        if not isinstance(stream_state, Mapping):
            return self._drop(f"it is not an object ({_shorten(stream_state)})")
        if self.parent_stream:
            return self._repair_substream(stream_state)
        if self.per_partition:
            return self._repair_per_partition(stream_state)
        return self._repair_flat(stream_state)

    def _repair_substream(self, stream_state: Mapping[str, Any]) -> Mapping[str, Any]:
        parents = stream_state.get("parent_state")
        parent = parents.get(self.parent_stream) if isinstance(parents, Mapping) else None
        if not isinstance(parent, Mapping) or self.cursor_field not in parent:
            return self._drop(
                f"it has no `{self.cursor_field}` cursor of its parent `{self.parent_stream}` ({_shorten(stream_state)})"
            )
        value = parent[self.cursor_field]
        if parse_instant(value) is None:
            return self._drop(f"the `{self.cursor_field}` cursor {value!r} of its parent `{self.parent_stream}` is not a date")
        return {"use_global_cursor": True, "states": [], "parent_state": {self.parent_stream: {self.cursor_field: value}}}

    def _repair_flat(self, stream_state: Mapping[str, Any]) -> Mapping[str, Any]:
        if self.cursor_field not in stream_state:
            return self._drop(f"it has no `{self.cursor_field}` cursor ({_shorten(stream_state)})")
        value = stream_state[self.cursor_field]
        if parse_instant(value) is None:
            return self._drop(f"its `{self.cursor_field}` cursor {value!r} is not a date")
        return {self.cursor_field: value}

    def _repair_per_partition(self, stream_state: Mapping[str, Any]) -> Mapping[str, Any]:
        if "states" not in stream_state and "state" not in stream_state:
            # A flat cursor: the shape an older release saved for conversation_items.
            flat = self._repair_flat(stream_state)
            return {"use_global_cursor": False, "states": [], "state": flat} if flat else {}
        entries = stream_state.get("states", [])
        if not isinstance(entries, list):
            return self._drop(f"its `states` is not a list ({_shorten(entries)})")
        repaired: dict[str, Any] = {"use_global_cursor": False}
        kept = []
        for entry in entries:
            problem = self._entry_problem(entry)
            if problem:
                logger.warning(
                    f"Ignoring part of the saved state of stream `{self.stream_name}`: {problem}. That "
                    f"{self.partition_field.replace('_', ' ')} is read again from start_date (duplicates, never a gap)."
                )
                continue
            # The partition exactly as the CDK wrote it (with its `parent_slice`): it is matched as a whole.
            partition = dict(entry["partition"])
            # Saved by an older release without it: the CDK's parent-stream partitions always carry one.
            partition.setdefault("parent_slice", {})
            kept.append({"partition": partition, "cursor": {self.cursor_field: entry["cursor"][self.cursor_field]}})
        repaired["states"] = kept
        if not kept:
            # No number has a cursor of its own: a readable global cursor is the previous release's state,
            # the only place its progress is recorded.
            global_cursor = stream_state.get("state")
            if isinstance(global_cursor, Mapping) and parse_instant(global_cursor.get(self.cursor_field)) is not None:
                repaired["state"] = {self.cursor_field: global_cursor[self.cursor_field]}
        lookback = stream_state.get("lookback_window")
        if isinstance(lookback, int) and not isinstance(lookback, bool) and lookback >= 0:
            repaired["lookback_window"] = lookback
        return repaired

    def _entry_problem(self, entry: Any) -> Optional[str]:
        if not isinstance(entry, Mapping):
            return f"an entry is not an object ({_shorten(entry)})"
        partition, cursor = entry.get("partition"), entry.get("cursor")
        number = partition.get(self.partition_field) if isinstance(partition, Mapping) else None
        if not isinstance(number, str) or not number:
            return f"an entry has no `{self.partition_field}` partition ({_shorten(entry)})"
        if not isinstance(cursor, Mapping) or self.cursor_field not in cursor:
            return f"the entry of {number} has no `{self.cursor_field}` cursor"
        if parse_instant(cursor[self.cursor_field]) is None:
            return f"the `{self.cursor_field}` cursor {cursor[self.cursor_field]!r} of {number} is not a date"
        return None

    def _drop(self, problem: str) -> Mapping[str, Any]:
        again = (
            "read again in full, one request per parent record"
            if self.parent_stream
            else "read again from start_date"
        )
        logger.warning(
            f"Ignoring the saved state of stream `{self.stream_name}`: {problem}. The stream is {again} "
            "(duplicates, never a gap)."
        )
        return {}


def _shorten(value: Any, limit: int = 120) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ============================================================================================ errors


_NOT_JSON = object()


def parsed_body(response: requests.Response) -> Optional[Any]:
    """The response's JSON body, or None when it is not JSON. Parsed once and kept on the response (a
    `requests` object, not the CDK's): the error handler and the paginator look at the same page."""
    cached = response.__dict__.get("_allo_json")
    if cached is None:
        try:
            cached = json.loads(response.content)
        except (ValueError, TypeError):
            cached = _NOT_JSON
        response.__dict__["_allo_json"] = cached
    return None if cached is _NOT_JSON else cached


def describe_error(response: requests.Response) -> str:
    """`GET /v2/api/numbers -> HTTP 403 API_KEY_INSUFFICIENT_SCOPE (request_id req_x): message`.

    What Allo support asks for, from either error envelope (v2 `error{}`, v1 `code`/`details`); never
    the query string, the headers or the key.
    """
    request = response.request
    method = getattr(request, "method", None) or "GET"
    path = urlsplit(getattr(request, "url", None) or response.url or "").path
    code, request_id, message = None, response.headers.get("X-Request-Id"), None
    body = parsed_body(response)
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            code, message = error.get("code"), error.get("message")
            request_id = error.get("request_id") or request_id
        elif isinstance(body.get("code"), str):
            code = body["code"]
            details = body.get("details")
            if isinstance(details, list) and details and isinstance(details[0], dict):
                message = details[0].get("message")
    text = f"{method} {path} -> HTTP {response.status_code}"
    if code:
        text += f" {code}"
    if request_id:
        text += f" (request_id {request_id})"
    if message:
        text += f": {message}"
    elif body is None:
        text += " (body is not JSON)"
    return text


def _connection_problem(error: Exception) -> Optional[str]:
    """Why a connection could not be opened at all, when that is the problem; None for a timeout or a
    connection that broke mid-answer (worth retrying)."""
    if isinstance(error, requests.exceptions.Timeout) or not isinstance(error, requests.exceptions.ConnectionError):
        return None
    text = str(error)
    for marker, reason in (
        ("Connection refused", "the connection was refused"),
        ("Name or service not known", "the host name could not be resolved"),
        ("nodename nor servname", "the host name could not be resolved"),
        ("Temporary failure in name resolution", "the host name could not be resolved"),
        ("No address associated", "the host name could not be resolved"),
        ("CERTIFICATE_VERIFY_FAILED", "its TLS certificate is not trusted"),
    ):
        if marker in text:
            return reason
    return None


@dataclass
class AlloErrorHandler(DefaultErrorHandler):
    """The manifest's DefaultErrorHandler (its response filters and backoff strategies) plus what a filter
    cannot express:

    * a 2xx whose body is not JSON (a truncated body, a proxy's HTML page) is retried, not fed to the
      JSON decoder: a filter sees such a body as an empty `response` and cannot tell it from `{}`;
    * a URL that refuses connections or does not resolve fails at once with a config error naming the
      URL (it is almost always a wrong `api_url`), instead of minutes of retries ending in the CDK's
      "Exhausted available request attempts"; a timeout is still retried;
    * every error message names the endpoint, the HTTP status, Allo's `code` and `request_id`;
    * an ignored answer (a scope the key lacks) is logged as one warning per stream, not one per request;
      during the connection check (`fail_on_missing_scope`, set by the manifest's `config_overrides`) it
      fails instead: a response filter's predicate is not given the config, so it cannot tell the two apart.
    """

    stream_name: str = ""

    def __post_init__(self, parameters: Mapping[str, Any]) -> None:
        super().__post_init__(parameters)
        self.stream_name = self.stream_name or (parameters or {}).get("name", "")
        self._warned = False
        self._lock = threading.Lock()

    def interpret_response(
        self, response_or_exception: Optional[Union[requests.Response, Exception]]
    ) -> ErrorResolution:
        if isinstance(response_or_exception, requests.Response) and response_or_exception.ok:
            if parsed_body(response_or_exception) is None:
                return ErrorResolution(
                    response_action=ResponseAction.RETRY,
                    failure_type=FailureType.transient_error,
                    error_message=f"Allo returned an unreadable (non-JSON or truncated) body: {describe_error(response_or_exception)}.",
                )
            for strategy in self.backoff_strategies or []:
                if isinstance(strategy, AlloBackoffStrategy):
                    strategy.reset_streak()
            return ErrorResolution(response_action=ResponseAction.SUCCESS)
        if isinstance(response_or_exception, Exception):
            reason = _connection_problem(response_or_exception)
            if reason:
                return ErrorResolution(
                    response_action=ResponseAction.FAIL,
                    failure_type=FailureType.config_error,
                    error_message=unreachable_message(self.config.get("api_url") or DEFAULT_API_URL, reason),
                )
        resolution = super().interpret_response(response_or_exception)
        if not isinstance(response_or_exception, requests.Response):
            return resolution
        if resolution.response_action == ResponseAction.IGNORE:
            message = resolution.error_message or describe_error(response_or_exception)
            if self.config.get("fail_on_missing_scope"):
                # The connection check (the manifest's `config_overrides`) reports the scope it lacks.
                return ErrorResolution(
                    response_action=ResponseAction.FAIL, failure_type=FailureType.config_error, error_message=message
                )
            self._warn_once(message)
            return resolution
        if resolution.response_action in (ResponseAction.FAIL, ResponseAction.RETRY, ResponseAction.RATE_LIMITED) and not response_or_exception.ok:
            detail = describe_error(response_or_exception)
            message = (resolution.error_message or "Allo request failed.").strip()
            if detail not in message:
                message = f"{message} [{detail}]"
            resolution = ErrorResolution(
                response_action=resolution.response_action, failure_type=resolution.failure_type, error_message=message
            )
        return resolution

    def _warn_once(self, message: str) -> None:
        with self._lock:
            if self._warned:
                return
            self._warned = True
        logger.warning(f"Stream `{self.stream_name}`: {message}")


@dataclass
class SayWhatAlloAnswered(BackoffStrategy):
    """First of the backoff strategies: logs what Allo answered to a request that is about to be retried
    after a wait Allo asked for (a 429), then leaves the wait to the next strategies (`WaitTimeFromHeader`,
    `WaitTimeFromResponse`). The CDK's own retry line says only "Rate limit exceeded", and the HTTP client
    asks the strategies directly, so a strategy is the one place that sees every retried answer."""

    config: Config
    parameters: InitVar[Mapping[str, Any]]

    def __post_init__(self, parameters: Mapping[str, Any]) -> None:
        pass

    def backoff_time(
        self,
        response_or_exception: Optional[Union[requests.Response, requests.RequestException]],
        attempt_count: int,
    ) -> Optional[float]:
        if isinstance(response_or_exception, requests.Response) and response_or_exception.status_code == 429:
            logger.info(
                f"Allo request failed (attempt {attempt_count}): {describe_error(response_or_exception)}. "
                "Retrying after the wait Allo asks for."
            )
        return None


@dataclass
class AlloBackoffStrategy(BackoffStrategy):
    """Exponential backoff with full jitter, and a bound on the total time spent retrying one endpoint.

    Comes after WaitTimeFromHeader / WaitTimeFromResponse (the waits Allo asks for). The CDK's
    ExponentialBackoffStrategy has no jitter (parallel partitions come back in the same millisecond) and
    no bound across partitions: every Allo number, date window and day retries on its own, so while Allo
    is down a sync would sleep for hours. After `max_failure_streak` failures in a row on this stream
    (any readable answer resets the count) the stream fails with a transient error; its finished
    partitions' state is already saved.
    """

    config: Config
    parameters: InitVar[Mapping[str, Any]]
    base_seconds: Union[float, str] = 1.0
    cap_seconds: Union[float, str] = 60.0
    max_failure_streak: Union[int, str] = 24

    def __post_init__(self, parameters: Mapping[str, Any]) -> None:
        self.base_seconds = float(self.base_seconds)
        self.cap_seconds = float(self.cap_seconds)
        self.max_failure_streak = int(self.max_failure_streak)
        self._streak = 0
        self._lock = threading.Lock()

    def backoff_time(
        self,
        response_or_exception: Optional[Union[requests.Response, requests.RequestException]],
        attempt_count: int,
    ) -> Optional[float]:
        with self._lock:
            self._streak += 1
            streak = self._streak
        what = _describe_failure(response_or_exception)
        if streak > self.max_failure_streak:
            raise AirbyteTracedException(
                message=f"Allo failed {streak - 1} requests in a row ({what}); giving up instead of retrying for hours. "
                "The next sync resumes from the saved state.",
                failure_type=FailureType.transient_error,
            )
        ceiling = min(self.cap_seconds, self.base_seconds * (2 ** max(0, attempt_count - 1)))
        wait = max(0.1, random.uniform(0, ceiling))
        # The CDK's own retry line says "Rate limit exceeded" whatever happened: say what Allo answered.
        logger.info(f"Allo request failed (attempt {attempt_count}): {what}. Retrying in {wait:.1f} s.")
        return wait

    def reset_streak(self) -> None:
        with self._lock:
            self._streak = 0


def _describe_failure(response_or_exception: Any) -> str:
    if isinstance(response_or_exception, requests.Response):
        return describe_error(response_or_exception)
    request = getattr(response_or_exception, "request", None)
    where = ""
    if request is not None and getattr(request, "url", None):
        where = f"{request.method} {urlsplit(request.url).path} -> "
    return f"{where}no answer ({type(response_or_exception).__name__}: {response_or_exception})"


# ============================================================================================ paging


@dataclass
class AlloPagination(PaginationStrategy):
    """Page-number pagination that trusts Allo's own page metadata, reading one page after the other.

    * Stops on v2 `pagination.has_more` / `total_pages`, or v1 `data.metadata(.pagination).total_pages`;
      falls back to a short page only when the answer has no metadata. PageIncrement stops only on a
      short page (one wasted request whenever the total is a multiple of 100, on a daily quota), and
      CursorPagination cannot fall back, nor cap the page number at `total_pages`.
    * Counts the rows Allo sent, not the rows the record filter kept: a page whose rows were all
      dropped is not the end of the list.
    * Rows deleted while a list is paged move every later row up onto a page already read. When v2
      `total_count` drops between two pages, this goes back as many pages as rows vanished and reads on
      from there (duplicates, never a gap), at most `MAX_REWINDS` times per list.
    * Reports progress: Allo's first page of each list says how many rows it holds; the sum per stream
      is sent as the protocol's ESTIMATE message, and a log line every 30 s (`SOURCE_ALLO_PROGRESS_SECONDS`) says how far each stream is.

    The next page is only ever asked for once the previous one has been answered (the CDK's paginator
    loop): Allo sorts newest first, and a page answered before the one above it would miss the rows
    that moved across their boundary in between.
    """

    MAX_REWINDS = 5
    PROGRESS_LOG_SECONDS = 30.0

    config: Config
    parameters: InitVar[Mapping[str, Any]]
    page_size: Union[int, str] = 100
    start_from_page: Union[int, str] = 1
    stream_name: str = ""

    def __post_init__(self, parameters: Mapping[str, Any]) -> None:
        self.stream_name = self.stream_name or (parameters or {}).get("name", "")
        self._page_size = int(self.page_size)
        self.start_from_page = int(self.start_from_page)
        # One strategy serves every partition of its stream, from several threads: lists are told apart
        # by their request without its page number.
        self._lock = threading.Lock()
        self._totals: dict[str, tuple[int, int]] = {}
        self._estimated_lists: set[str] = set()
        self._estimate = 0
        self._seen = 0
        self._last_log = time.monotonic()
        self._log_every = float(os.environ.get("SOURCE_ALLO_PROGRESS_SECONDS", self.PROGRESS_LOG_SECONDS))

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
        key = _list_key(response)
        body = parsed_body(response)
        rows = _page_rows(body)
        if rows is not None:
            last_page_size = len(rows)
        has_more, total_pages = _page_metadata(body)
        self._progress(self._first_answer_of_list(key), _row_count(body, total_pages, self._page_size), last_page_size)
        rewind_to = self._rewind_after_deletions(key, response, body, current)
        if rewind_to is not None:
            return rewind_to
        following = self._following_page(current, last_page_size, has_more, total_pages)
        if following is not None and self.stops_early(key, response, rows or [], stream_slice):
            following = None
        if following is None:
            self.list_ended(key)
        return following

    def stops_early(
        self, key: str, response: requests.Response, rows: List[Any], stream_slice: Optional[StreamSlice]
    ) -> bool:
        """Whether the list ends on this page although Allo has more: never, here (see NewestFirstPagination)."""
        return False

    def list_ended(self, key: str) -> None:
        with self._lock:
            self._totals.pop(key, None)

    def _first_answer_of_list(self, key: str) -> bool:
        """True once per list, on its first answer: a rewind to page 1 must not count the list again."""
        with self._lock:
            if key in self._estimated_lists:
                return False
            self._estimated_lists.add(key)
            return True

    def _following_page(self, current: int, rows: int, has_more: Optional[bool], total_pages: Optional[int]) -> Optional[int]:
        if rows == 0:
            return None
        # Allo's `total_pages` counts from 1 even on the 0-indexed v1 API.
        last_page = None if total_pages is None else total_pages - 1 + self.start_from_page
        if last_page is not None and current >= last_page:
            return None
        if has_more is not None:
            return current + 1 if has_more else None
        if total_pages is not None:
            return current + 1
        return current + 1 if rows >= self._page_size else None

    def _rewind_after_deletions(self, key: str, response: requests.Response, body: Any, current: int) -> Optional[int]:
        pagination = body.get("pagination") if isinstance(body, dict) else None
        total = pagination.get("total_count") if isinstance(pagination, dict) else None
        if not isinstance(total, int) or isinstance(total, bool):
            return None
        with self._lock:
            previous, rewinds = self._totals.get(key, (None, 0))
            self._totals[key] = (total, rewinds)
            if previous is None or total >= previous or rewinds >= self.MAX_REWINDS:
                return None
            self._totals[key] = (total, rewinds + 1)
        back = -(-(previous - total) // self._page_size)
        target = max(self.start_from_page, current - back)
        logger.info(
            f"{self.stream_name}: {previous - total} row(s) disappeared while paging "
            f"{urlsplit(response.url or '').path}; re-reading from page {target} so that no row is skipped."
        )
        return target

    def _progress(self, first_page: bool, rows_in_list: Optional[int], rows_on_page: int) -> None:
        estimate = log_line = None
        with self._lock:
            self._seen += rows_on_page
            if first_page and rows_in_list is not None:
                self._estimate += rows_in_list
                estimate = self._estimate
            now = time.monotonic()
            if now - self._last_log >= self._log_every:
                self._last_log = now
                log_line = f"Progress: {self.stream_name} {self._seen:,} of ~{max(self._estimate, self._seen):,} records."
        if estimate is not None and self.stream_name:
            _emit_estimate(self.stream_name, estimate)
        if log_line:
            logger.info(log_line)


@dataclass
class NewestFirstPagination(AlloPagination):
    """AlloPagination for a list with no date filter that Allo serves newest first (v1 `calls`): paging stops
    at the first page that reaches below the slice's lower bound (the saved cursor minus the lookback), so
    an incremental sync reads only the new pages.

    Allo does not document that order, so every page is checked: each row's `cursor_field` must be no newer
    than the row before it, across pages. Where a page is not newest first, that list is read in full (the
    stream's client-side cursor still emits only the rows above the bound) and one warning per stream says
    so. The CDK's `is_data_feed` stops on the first older row whatever the order, and cannot fall back.
    """

    cursor_field: str = "start_date"

    def __post_init__(self, parameters: Mapping[str, Any]) -> None:
        super().__post_init__(parameters)
        self._oldest_seen: dict[str, Optional[datetime]] = {}
        self._unordered_lists: set[str] = set()
        self._warned_order = False

    def stops_early(
        self, key: str, response: requests.Response, rows: List[Any], stream_slice: Optional[StreamSlice]
    ) -> bool:
        bound = parse_instant((stream_slice or {}).get("start_time")) if stream_slice else None
        dates = [parse_instant(row.get(self.cursor_field)) for row in rows if isinstance(row, dict)]
        dates = [date_ for date_ in dates if date_ is not None]
        with self._lock:
            previous = self._oldest_seen.get(key)
            sequence = ([previous] if previous else []) + dates
            ordered = key not in self._unordered_lists and all(
                newer >= older for newer, older in zip(sequence, sequence[1:])
            )
            if not ordered:
                self._unordered_lists.add(key)
            elif dates:
                self._oldest_seen[key] = dates[-1]
            warn = not ordered and not self._warned_order
            if warn:
                self._warned_order = True
        if warn:
            number = ((stream_slice or {}).get("allo_number") if stream_slice else None) or "an Allo number"
            logger.warning(
                f"Stream `{self.stream_name}`: Allo's {urlsplit(response.url or '').path} answer for {number} is not sorted "
                f"newest first by {self.cursor_field}; that history is read in full (only new rows are emitted)."
            )
        # In a newest-first list, everything on the following pages is older than the bound.
        return ordered and bound is not None and bool(dates) and dates[-1] < bound

    def list_ended(self, key: str) -> None:
        super().list_ended(key)
        with self._lock:
            self._oldest_seen.pop(key, None)


def _emit_estimate(stream: str, rows: int) -> None:
    """Writes an ESTIMATE trace message on the protocol's channel, stdout. A component is handed no message
    repository; the runner's stdout (the CDK's print buffer under `launch`) takes one whole line per write."""
    message = AirbyteMessage(
        type=Type.TRACE,
        trace=AirbyteTraceMessage(
            type=TraceType.ESTIMATE,
            emitted_at=time.time() * 1000,
            estimate=AirbyteEstimateTraceMessage(name=stream, type=EstimateType.STREAM, row_estimate=rows),
        ),
    )
    sys.stdout.write(json.dumps(AirbyteMessageSerializer.dump(message)) + "\n")


def _list_key(response: requests.Response) -> str:
    """The request without its page number: the same for every page of one list."""
    request = response.request
    parts = urlsplit(getattr(request, "url", "") or "")
    query = "&".join(sorted(q for q in parts.query.split("&") if q and not q.startswith("page=")))
    body = getattr(request, "body", None) or b""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    try:
        payload = json.loads(body) if body else {}
        if isinstance(payload, dict):
            payload.pop("page", None)
        body = json.dumps(payload, sort_keys=True)
    except ValueError:
        pass
    return f"{getattr(request, 'method', '')} {parts.path}?{query} {body}"


def _page_rows(body: Any) -> Optional[List[Any]]:
    """The rows a v2 (`data[]`) or v1 (`data.results[]`, null past the end) page holds; None if unknown."""
    if not isinstance(body, dict):
        return None
    data = body.get("data")
    if isinstance(data, list):
        return data
    if isinstance(data, dict) and "results" in data:
        results = data.get("results")
        return results if isinstance(results, list) else []
    return None


def _row_count(body: Any, total_pages: Optional[int], page_size: int) -> Optional[int]:
    """Rows in the whole list: v2 `total_count`; v1 only says pages, so an upper bound."""
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
    has_more, total_pages = pagination.get("has_more"), pagination.get("total_pages")
    return (
        has_more if isinstance(has_more, bool) else None,
        total_pages if isinstance(total_pages, int) and not isinstance(total_pages, bool) else None,
    )


# ============================================================================================ records


@dataclass
class WindowRecordFilter(RecordFilter):
    """Keeps only conversation items whose `date` falls inside the requested date window, and says how
    many it dropped. Allo silently ignores body fields it does not understand: rows outside the window
    mean the date filter was not applied. Dropping them keeps every window exact (each row is emitted by
    the window it belongs to) and the warning says the server misbehaved; a filter `condition` could
    drop them but not say so."""

    def filter_records(
        self,
        records: Iterable[Mapping[str, Any]],
        stream_state: StreamState,
        stream_slice: Optional[StreamSlice] = None,
        next_page_token: Optional[Mapping[str, Any]] = None,
    ) -> Iterable[Mapping[str, Any]]:
        window = _slice_window(stream_slice)
        dropped = 0
        for record in records:
            day = _record_day(record.get("date"))
            if window and day is not None and not (window[0] <= day <= window[1]):
                dropped += 1
                continue
            yield record
        if dropped and window:
            logger.warning(
                f"Allo returned {dropped} conversation item(s) outside the requested window {window[0]}..{window[1]}: "
                "the server ignored the date filter. They were dropped here and are read by the window they belong to."
            )


@dataclass
class SinceBoundRecordFilter(RecordFilter):
    """Says so, once per sync, when Allo returns conversations older than the `last_activity_since` the
    connector sent: the server ignored the filter. The cursor (`is_data_feed`) already stops paging there
    and drops those rows; without this the misbehaviour would go unnoticed."""

    def filter_records(
        self,
        records: Iterable[Mapping[str, Any]],
        stream_state: StreamState,
        stream_slice: Optional[StreamSlice] = None,
        next_page_token: Optional[Mapping[str, Any]] = None,
    ) -> Iterable[Mapping[str, Any]]:
        bound = parse_instant((stream_slice or {}).get("start_time")) if stream_slice else None
        for record in records:
            if bound is not None and not self.__dict__.get("_warned"):
                seen = parse_instant(record.get("last_activity"))
                if seen is not None and seen < bound:
                    self.__dict__["_warned"] = True
                    logger.warning(
                        f"Allo returned conversations older than the requested last_activity_since filter "
                        f"({record.get('last_activity')} < {stream_slice.get('start_time')}, number "
                        f"{(stream_slice.partition or {}).get('allo_number')}): the server ignored the filter. "
                        "Paging stops at the bound and older rows are not emitted again."
                    )
            yield record


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


# The team row of the analytics streams: its user_id is this word, so the primary key (date, user_id) is never
# null and the row is told from a user's at a glance (Allo's user IDs start with `usr-`).
TEAM_ROW_USER_ID = "team"


def metric_number(value: Any) -> Any:
    """The number an analytics metric holds. Allo sends each metric as `{"value", "previous", "change"}`
    (MetricValue): its `value` is kept. `previous` and `change` compare with the period just before, which
    for a one-day request is the day before: its own row already, so they are not kept. Anything else (a
    bare number, a field Allo adds later) is left as it is."""
    if isinstance(value, dict) and {"value", "previous", "change"} & set(value):
        return value.get("value")
    return value


def _analytics_data(response: requests.Response) -> Optional[Mapping[str, Any]]:
    body = parsed_body(response)
    data = body.get("data") if isinstance(body, dict) else None
    return data if isinstance(data, dict) else None


def _user_row(entry: Mapping[str, Any], last_updated: Any) -> MutableMapping[str, Any]:
    user = entry.get("user") if isinstance(entry.get("user"), dict) else {}
    figures = {name: metric_number(value) for name, value in entry.items() if name != "user"}
    return {"scope": "user", "user_id": str(user.get("id") or ""), "user": entry.get("user"), **figures, "last_updated": last_updated}


@dataclass
class TeamMetricsExtractor(RecordExtractor):
    """Turns one `POST /v2/api/analytics/overview` answer into rows: one team row (`data.summary`, user_id
    "team") and one row per user (`data.breakdown[]`), each metric as its number. A DpathExtractor selects
    one of the two, and CombinedExtractor cannot tag which is which."""

    config: Config
    parameters: InitVar[Mapping[str, Any]]

    def __post_init__(self, parameters: Mapping[str, Any]) -> None:
        pass

    def extract_records(self, response: requests.Response) -> Iterable[MutableMapping[Any, Any]]:
        data = _analytics_data(response)
        if data is None:
            return
        last_updated = data.get("last_updated")
        summary = data.get("summary") if isinstance(data.get("summary"), dict) else {}
        figures = {name: metric_number(value) for name, value in summary.items()}
        yield {"scope": "team", "user_id": TEAM_ROW_USER_ID, "user": None, **figures, "last_updated": last_updated}
        for entry in data.get("breakdown") or []:
            if isinstance(entry, dict):
                yield _user_row(entry, last_updated)


@dataclass
class OutboundMetricsExtractor(RecordExtractor):
    """Turns one `POST /v2/api/analytics/outbound` answer into rows: one team row (user_id "team") with the
    dial funnel (`data.funnel.<stage>.count` as `<stage>`, `.rate` as `<stage>_rate`) and the time spent
    (`data.time_spent.*`), and one row per user of `data.leaderboard[]`, each metric as its number. The
    time series and the heatmap are not emitted: for one day the series is one point per stage, the
    funnel's own numbers."""

    config: Config
    parameters: InitVar[Mapping[str, Any]]

    def __post_init__(self, parameters: Mapping[str, Any]) -> None:
        pass

    def extract_records(self, response: requests.Response) -> Iterable[MutableMapping[Any, Any]]:
        data = _analytics_data(response)
        if data is None:
            return
        last_updated = data.get("last_updated")
        team: MutableMapping[str, Any] = {"scope": "team", "user_id": TEAM_ROW_USER_ID, "user": None}
        funnel = data.get("funnel") if isinstance(data.get("funnel"), dict) else {}
        for stage, figures in funnel.items():
            if isinstance(figures, dict) and ("count" in figures or "rate" in figures):
                team[stage] = metric_number(figures.get("count"))
                team[f"{stage}_rate"] = figures.get("rate")
            else:
                team[stage] = metric_number(figures)
        time_spent = data.get("time_spent") if isinstance(data.get("time_spent"), dict) else {}
        team.update({name: metric_number(value) for name, value in time_spent.items()})
        team["last_updated"] = last_updated
        yield team
        for entry in data.get("leaderboard") or []:
            if isinstance(entry, dict):
                yield _user_row(entry, last_updated)
