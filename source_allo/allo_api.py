"""The few Allo calls the connector makes outside its streams: `GET /v2/api/me` (check, scopes, rate
limits) and the list of Allo numbers the partitioned streams share.

They go through the CDK's HttpClient (same retries and backoff as the streams); only the
interpretation of 4xx answers is ours, because `check` must say exactly what is wrong.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, List, Mapping, Optional, Set

import requests

from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.streams.call_rate import APIBudget
from airbyte_cdk.sources.streams.http.error_handlers import HttpStatusErrorHandler
from airbyte_cdk.sources.streams.http.error_handlers.default_error_mapping import DEFAULT_ERROR_MAPPING
from airbyte_cdk.sources.streams.http.error_handlers.response_models import ErrorResolution, ResponseAction
from airbyte_cdk.sources.streams.http.http_client import HttpClient
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

DEFAULT_API_URL = "https://api.withallo.com"
API_KEYS_PAGE = "https://web.withallo.com/settings/api"

# The scope each stream needs (Allo's authentication guide and OpenAPI security schemes). `None`: Allo
# does not document one; the stream is attempted and a 403 names the scope Allo asks for.
STREAM_SCOPES: Mapping[str, Optional[str]] = {
    "conversations": "CONVERSATIONS_READ",
    "conversation_items": "CONVERSATIONS_READ",
    "calls": "CONVERSATIONS_READ",
    "phone_numbers": "PHONE_NUMBERS_READ",
    "users": "USERS_READ",
    "tags": "TAGS_READ",
    "webhooks": "WEBHOOKS_READ_WRITE",
    "webhook_event_types": "WEBHOOKS_READ_WRITE",
    "summary_templates": "SUMMARY_TEMPLATES_READ",
    "crm_people": "CRM_READ",
    "crm_companies": "CRM_READ",
    "crm_deals": "CRM_READ",
    "contacts": "CONTACTS_READ",
    "team_metrics_daily": None,
}

# Streams whose scope Allo does not document: (method, path) of a cheap request that tells whether the
# key may read them, used only when /v2/api/me does not list the endpoint.
UNDOCUMENTED_SCOPE_PROBES: Mapping[str, tuple[str, str, Mapping[str, Any]]] = {
    "team_metrics_daily": ("POST", "/v2/api/analytics/overview", {"date": {"from": "{today}", "to": "{today}"}}),
}

# Scopes that also grant a read scope (a read-write key can read).
_IMPLIED_SCOPES = {"CONTACTS_READ_WRITE": {"CONTACTS_READ"}, "CRM_WRITE": {"CRM_READ"}}


def describe_error(response: requests.Response) -> str:
    """`GET /v2/api/numbers -> HTTP 403 API_KEY_INSUFFICIENT_SCOPE (request_id req_x): message`.

    Names what Allo support needs; never includes the query string, headers or the key.
    """
    request = response.request
    method = getattr(request, "method", None) or "GET"
    path = requests.utils.urlparse(getattr(request, "url", None) or response.url or "").path
    code, request_id, message = None, response.headers.get("X-Request-Id"), None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            code = error.get("code")
            request_id = error.get("request_id") or request_id
            message = error.get("message")
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


def error_code(response: requests.Response) -> Optional[str]:
    try:
        body = response.json()
    except ValueError:
        return None
    if isinstance(body, dict):
        if isinstance(body.get("error"), dict):
            return body["error"].get("code")
        if isinstance(body.get("code"), str):
            return body["code"]
    return None


@dataclass
class KeyInfo:
    """What `GET /v2/api/me` says about the key."""

    scopes: Set[str]
    read_per_second: int = 20
    write_per_second: int = 5
    team_name: Optional[str] = None
    raw: Mapping[str, Any] = field(default_factory=dict)

    def lists_endpoint(self, method: str, path: str) -> bool:
        """True when /v2/api/me lists this endpoint among those the key can call."""
        for endpoint in self.raw.get("endpoints") or []:
            if isinstance(endpoint, dict) and endpoint.get("method") == method and endpoint.get("path") == path:
                return True
        return False

    def can_read(self, stream_name: str) -> bool:
        needed = STREAM_SCOPES.get(stream_name)
        return needed is None or needed in self.effective_scopes

    @property
    def effective_scopes(self) -> Set[str]:
        scopes = set(self.scopes)
        for scope in list(scopes):
            scopes |= _IMPLIED_SCOPES.get(scope, set())
        return scopes


class AlloApiError(AirbyteTracedException):
    """An Allo answer `check` and the preflight turn into an actionable message."""


def explain_auth_failure(response: requests.Response) -> str:
    """The user-facing message for a 401/403 answer: what is wrong and what to do."""
    code = error_code(response) or f"HTTP {response.status_code}"
    if code == "API_KEY_TRIAL_NOT_ALLOWED":
        return (
            "Allo refused the API key: API access is not available on trial plans (API_KEY_TRIAL_NOT_ALLOWED). "
            "Upgrade the Allo workspace to a paid plan, then retry."
        )
    if code == "API_KEY_REVOKED":
        return (
            "The Allo API key has been revoked (API_KEY_REVOKED). Create a new key in Allo under "
            f"Settings > API ({API_KEYS_PAGE}) and paste it into the source's API key field."
        )
    if code == "API_KEY_INSUFFICIENT_SCOPE":
        return (
            f"The Allo API key lacks a scope this request needs ({describe_error(response)}). "
            f"Create a key with that scope in Allo under Settings > API ({API_KEYS_PAGE})."
        )
    if code == "API_KEY_QUOTA_EXCEEDED":
        return (
            f"Allo's daily API request quota for this key is spent ({describe_error(response)}). "
            "Retry after the quota resets, or raise it on your Allo plan."
        )
    return (
        f"Allo rejected the API key ({code}): it is invalid. Check that you pasted the whole key, or create "
        f"one in Allo under Settings > API ({API_KEYS_PAGE})."
    )


# The sync's request budget (the manifest's api_budget), once the streams are built: the numbers listing
# then counts against the same per-second limits as the streams' own requests.
SHARED_BUDGET: Optional[APIBudget] = None


class AlloApi:
    def __init__(self, api_url: str, api_key: str, logger: Optional[logging.Logger] = None):
        self._base = (api_url or DEFAULT_API_URL).rstrip("/")
        self._api_key = api_key
        self._logger = logger or logging.getLogger("airbyte")
        from source_allo.components import AlloBackoffStrategy  # local: components imports this module

        # 4xx answers come back to us (IGNORE) so that we can explain them; 429/5xx/timeouts are retried.
        mapping = dict(DEFAULT_ERROR_MAPPING)
        for status in (400, 401, 403, 404):
            mapping[status] = ErrorResolution(ResponseAction.IGNORE, FailureType.config_error, "")
        self._client = HttpClient(
            name="allo_api",
            logger=self._logger,
            error_handler=HttpStatusErrorHandler(self._logger, mapping, max_retries=5, max_time=timedelta(seconds=300)),
            backoff_strategy=AlloBackoffStrategy(config={}, parameters={}, max_wait_seconds=120),
            request_timeout=(10, 60),
            api_budget=SHARED_BUDGET,
        )

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "AlloApi":
        return cls(config.get("api_url") or DEFAULT_API_URL, config["api_key"])

    def missing_scope(self, method: str, path: str, body: Mapping[str, Any]) -> Optional[str]:
        """One request to an endpoint whose scope is undocumented: Allo's message when it refuses the key
        for a missing scope, else None (readable, or another problem the stream itself will report)."""
        _, response = self._client.send_request(
            http_method=method,
            url=f"{self._base}{path}",
            request_kwargs={},
            headers={"Authorization": f"Api-Key {self._api_key}", "Accept": "application/json"},
            json=dict(body),
        )
        if response.status_code == 403 and error_code(response) == "API_KEY_INSUFFICIENT_SCOPE":
            return describe_error(response)
        return None

    def get(self, path: str, attempts: int = 5) -> requests.Response:
        """GET with the client's retries; a 200 whose body is not JSON (truncated, a proxy's HTML page) is
        retried too, then refused: an unreadable list must never pass for an empty one."""
        for attempt in range(1, attempts + 1):
            _, response = self._client.send_request(
                http_method="GET",
                url=f"{self._base}{path}",
                request_kwargs={},
                headers={"Authorization": f"Api-Key {self._api_key}", "Accept": "application/json"},
            )
            if not response.ok or _is_json(response):
                return response
            self._logger.info(f"Allo returned an unreadable body ({describe_error(response)}); retrying.")
            time.sleep(min(8.0, 0.5 * 2 ** (attempt - 1)))
        raise AlloApiError(
            message=f"Allo kept returning an unreadable (non-JSON or truncated) body: {describe_error(response)}. Retry later.",
            failure_type=FailureType.transient_error,
        )

    def me(self) -> KeyInfo:
        response = self.get("/v2/api/me")
        if response.status_code in (401, 403):
            raise AlloApiError(message=explain_auth_failure(response), failure_type=FailureType.config_error)
        if not response.ok:
            raise AlloApiError(
                message=f"Allo's GET /v2/api/me failed: {describe_error(response)}.",
                failure_type=FailureType.transient_error,
            )
        try:
            data = response.json().get("data") or {}
        except (ValueError, AttributeError):
            data = {}
        limits = data.get("rate_limits") or {}
        return KeyInfo(
            scopes={str(s) for s in data.get("scopes") or []},
            read_per_second=_positive_int(limits.get("read_per_second"), 20),
            write_per_second=_positive_int(limits.get("write_per_second"), 5),
            team_name=(data.get("team") or {}).get("name"),
            raw=data,
        )

    def list_allo_numbers(self) -> List[str]:
        """Every number of the account (sender IDs skipped): v2 when the key may list numbers, else v1."""
        response = self.get("/v2/api/numbers")
        if response.status_code == 403 and error_code(response) == "API_KEY_INSUFFICIENT_SCOPE":
            self._logger.info("The key lacks PHONE_NUMBERS_READ; listing Allo numbers with GET /v1/api/numbers.")
            response = self.get("/v1/api/numbers")
        if not response.ok:
            failure = FailureType.config_error if response.status_code in (401, 403) else FailureType.system_error
            message = (
                explain_auth_failure(response)
                if response.status_code in (401, 403)
                else f"Could not list the Allo numbers: {describe_error(response)}."
            )
            raise AlloApiError(
                message=message + " Alternatively, list the numbers in the source's `allo_numbers` field.",
                failure_type=failure,
            )
        body = response.json()
        rows = body.get("data") if isinstance(body, dict) else None
        if not isinstance(rows, list):
            raise AlloApiError(
                message=f"Allo's list of numbers has no `data` list ({describe_error(response)}); refusing to treat it as "
                "an account without numbers. Retry later, or list the numbers in the source's `allo_numbers` field.",
                failure_type=FailureType.transient_error,
            )
        return list(dict.fromkeys(row["number"] for row in rows if isinstance(row, dict) and row.get("number")))


def _is_json(response: requests.Response) -> bool:
    try:
        response.json()
        return True
    except ValueError:
        return False


def _positive_int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default
