"""Allo error catalogue and the two error envelopes (v2 and legacy v1).

v2: ``{"error": {type, code, message, retryable, request_id, doc_url, param,
suggestion, retry_after_seconds}}`` (Allo's error-handling guide).
v1: ``{"code": ..., "details": [{message, field}] | null}`` (OpenAPI ErrorResponse).
Add a code by adding one line to ``CATALOGUE``.
"""

from __future__ import annotations

import random
import string
import threading

DOC_URL = "https://help.withallo.com/en/v2/api-reference/guides/error-handling#{code}"

# code -> (HTTP status, v2 type, default message, default suggestion, retryable)
CATALOGUE: dict[str, tuple[int, str, str, str | None, bool]] = {
    "UNAUTHORIZED": (401, "authentication_error", "No API key was provided.",
                     "Provide a valid API key in the Authorization header as Api-Key <your-key>.", False),
    "API_KEY_INVALID": (401, "authentication_error", "The API key provided is invalid.",
                        "Check your API key in Settings > API.", False),
    "API_KEY_REVOKED": (401, "authentication_error", "This API key has been revoked.",
                        "Create a new API key in Settings > API.", False),
    "API_KEY_INSUFFICIENT_SCOPE": (403, "permission_error", "This API key is missing a required scope.",
                                   "Create a key with the required scope in Settings > API.", False),
    "API_KEY_TRIAL_NOT_ALLOWED": (403, "permission_error", "API access is not available on trial plans.",
                                  "Upgrade your plan to use the API.", False),
    "MISSING_ALLO_NUMBER": (400, "validation_error",
                            "The allo_number parameter is required. List numbers with GET /v2/api/numbers.",
                            "List your numbers with GET /v2/api/numbers and pass one as allo_number.", False),
    "MISSING_PARAMETER": (400, "validation_error", "A required parameter is missing.", None, False),
    "INVALID_PARAMETER": (400, "validation_error", "A parameter has an invalid value.", None, False),
    "INVALID_PAGE_SIZE": (400, "validation_error", "Invalid page size.",
                          "Provide a numeric value between 1 and 100.", False),
    "UNSUPPORTED_EXTEND_VALUE": (400, "validation_error", "Unsupported extend value.",
                                 "Currently supported extend value: transcript.", False),
    "INVALID_DATE_RANGE": (400, "validation_error", "Invalid date range.",
                           "Use YYYY-MM-DD dates with from on or before to.", False),
    "DATE_RANGE_TOO_WIDE": (400, "validation_error", "The date range is too wide.",
                            "Use a range of at most 366 days.", False),
    "INVALID_GRANULARITY": (400, "validation_error", "Invalid granularity.",
                            "Use DAY, WEEK or MONTH.", False),
    "INVALID_REQUEST_BODY": (400, "validation_error", "The request body is not valid JSON.",
                             "Send a JSON object with Content-Type: application/json.", False),
    "INVALID_SEARCH_QUERY": (400, "validation_error",
                             "The search query must contain at least one alphanumeric character.",
                             "Special characters are stripped automatically; use plain keywords.", False),
    # v1 GET /v1/api/contact/{contact_id}: the OpenAPI document answers an unknown id with 400, not 404.
    "CONTACT_NOT_FOUND": (400, "not_found_error", "Contact not found.", None, False),
    "ENDPOINT_NOT_FOUND": (404, "not_found_error", "No endpoint matches this path.",
                           "Call GET /v2/api/me to list the endpoints available to your key.", False),
    "METHOD_NOT_ALLOWED": (405, "validation_error", "This method is not allowed on this endpoint.",
                           "Call GET /v2/api/me to list the endpoints available to your key.", False),
    "RATE_LIMIT_EXCEEDED": (429, "rate_limit_error", "You have exceeded the rate limit.",
                            "Wait for Retry-After seconds, then retry.", True),
    "API_KEY_QUOTA_EXCEEDED": (429, "rate_limit_error", "You have exceeded your daily request quota.",
                               "Wait until the quota resets or upgrade your plan.", True),
    "INTERNAL_SERVER_ERROR": (500, "server_error", "An internal error occurred.",
                              "Retry later; contact support@withallo.com with the request_id if it persists.",
                              True),
}

_rid_rng = random.Random()
_rid_lock = threading.Lock()


def new_request_id() -> str:
    """``req_`` + 12 alphanumerics, as Allo documents."""
    with _rid_lock:
        return "req_" + "".join(_rid_rng.choices(string.ascii_lowercase + string.digits, k=12))


class ApiError(Exception):
    """An Allo error; rendered in the v1 or v2 envelope depending on the path."""

    def __init__(self, code: str, message: str | None = None, *, param: str | None = None,
                 suggestion: str | None = None, status: int | None = None, retry_after: int | None = None,
                 v1_details: list[dict] | None = None, bare: bool = False) -> None:
        cat_status, etype, default_msg, default_sugg, retryable = CATALOGUE[code]
        super().__init__(message or default_msg)
        self.code = code
        self.status = status or cat_status
        self.type = etype if self.status < 500 else "server_error"
        self.message = message or default_msg
        self.param = param
        # "bare": no hint at all (e.g. a Bearer header gets a plain 401).
        self.suggestion = None if bare else (suggestion or default_sugg)
        self.retryable = retryable
        self.retry_after = retry_after
        self.v1_details = v1_details

    def v2_body(self, request_id: str) -> dict:
        return {"error": {
            "type": self.type, "code": self.code, "message": self.message, "retryable": self.retryable,
            "request_id": request_id, "doc_url": DOC_URL.format(code=self.code), "param": self.param,
            "suggestion": self.suggestion, "retry_after_seconds": self.retry_after,
        }}

    def v1_body(self) -> dict:
        details = self.v1_details
        if details is None and self.param and self.code not in ("API_KEY_INVALID", "UNAUTHORIZED"):
            details = [{"message": self.message, "field": self.param}]
        return {"code": self.code, "details": details}

    def body(self, family: str, request_id: str) -> dict:
        return self.v1_body() if family == "v1" else self.v2_body(request_id)
