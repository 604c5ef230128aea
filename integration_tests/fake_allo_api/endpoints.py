"""Allo endpoints: parameter rules, filters, pagination and response shapes.

Each endpoint is a function registered with ``@route(method, path, scope,
description)``; it receives a ``Request`` and returns the JSON payload or
raises ``ApiError``. Auth, scopes, rate limits and faults are applied before
the handler runs (see ``server.py``), so adding an endpoint is one function.
Only the read side of the API is implemented.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from .dataset import DAY, Dataset, parse_day, parse_instant
from .errors import ApiError


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    raw_body: bytes
    family: str                      # "v1" or "v2": picks the error envelope
    api: Any                         # the FakeAlloApi (knobs, drift hook)
    key: Any = None                  # the authenticated ApiKey
    path_params: dict[str, str] = field(default_factory=dict)  # {name} segments of a templated route
    _json: Any = field(default=None, repr=False)

    @property
    def dataset(self) -> Dataset:
        return self.api.dataset

    @property
    def knobs(self):
        return self.api.knobs

    def q(self, name: str) -> str | None:
        """First value of a query parameter (None if absent)."""
        vals = self.query.get(name)
        return vals[0] if vals else None

    def json(self) -> dict:
        """The JSON body as an object ({} when empty); INVALID_REQUEST_BODY otherwise."""
        if self._json is None:
            if not self.raw_body.strip():
                self._json = {}
            else:
                try:
                    self._json = json.loads(self.raw_body)
                except (ValueError, UnicodeDecodeError):
                    raise ApiError("INVALID_REQUEST_BODY", "The request body is not valid JSON.") from None
                if not isinstance(self._json, dict):
                    raise ApiError("INVALID_REQUEST_BODY", "The request body must be a JSON object.")
        return self._json


@dataclass
class Route:
    method: str
    path: str
    scope: str | None
    description: str
    handler: Callable[[Request], Any]


ROUTES: dict[tuple[str, str], Route] = {}


def route(method: str, path: str, scope: str | None, description: str):
    def register(fn):
        ROUTES[(method, path)] = Route(method, path, scope, description, fn)
        return fn
    return register


# ---------------------------------------------------------------- parameter helpers

def _as_int(value: Any) -> int | None:
    """Integers, or strings of digits (query params, lenient JSON); None if not an integer."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
        return int(value)
    return None


def page_and_size(page_raw: Any, size_raw: Any, *, first: int, default_size: int, status: int = 400) -> tuple[int, int]:
    """Validate page (>= first) and size (1..100)."""
    size = default_size
    if size_raw is not None:
        size = _as_int(size_raw)
        if size is None or not 1 <= size <= 100:
            raise ApiError("INVALID_PAGE_SIZE", f"Invalid page size '{size_raw}'. Size must be between 1 and 100.",
                           param="size", status=status)
    page = first
    if page_raw is not None:
        page = _as_int(page_raw)
        if page is None or page < first:
            raise ApiError("INVALID_PARAMETER",
                           f"Invalid page '{page_raw}'. Page must be an integer >= {first}.",
                           param="page", status=status,
                           suggestion=f"Pages are {'1' if first == 1 else '0'}-indexed.")
    return page, size


def v2_page(rows: list, page: int, size: int, view: Callable[[Any], dict]) -> dict:
    """v2 pagination envelope; a page past the end is empty with has_more false."""
    total = len(rows)
    total_pages = math.ceil(total / size)
    chunk = rows[(page - 1) * size: page * size]
    return {"data": [view(r) for r in chunk],
            "pagination": {"page": page, "size": size, "total_count": total, "total_pages": total_pages,
                           "has_more": page < total_pages}}


def parse_extend(raw: Any) -> bool:
    """True when transcripts are requested; only ``transcript`` is supported."""
    if raw is None or raw == "":
        return False
    if not isinstance(raw, str):
        raise ApiError("UNSUPPORTED_EXTEND_VALUE", f"Unsupported extend value '{raw}'.", param="extend")
    values = [v.strip() for v in raw.split(",") if v.strip()]
    for v in values:
        if v != "transcript":
            raise ApiError("UNSUPPORTED_EXTEND_VALUE",
                           f"Unsupported extend value '{v}'. Currently supported extend value: transcript.",
                           param="extend")
    return bool(values)


def parse_bool(raw: str | None, name: str) -> bool | None:
    if raw is None:
        return None
    low = raw.strip().lower()
    if low in ("true", "1"):
        return True
    if low in ("false", "0"):
        return False
    raise ApiError("INVALID_PARAMETER", f"Invalid {name} '{raw}'. Use true or false.", param=name)


def enum_value(raw: Any, allowed: tuple[str, ...], name: str, status: int = 400) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or raw not in allowed:
        raise ApiError("INVALID_PARAMETER", f"Invalid {name} '{raw}'. Allowed values: {', '.join(allowed)}.",
                       param=name, status=status)
    return raw


def string_value(body: dict, name: str, status: int = 400) -> str | None:
    raw = body.get(name)
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise ApiError("INVALID_PARAMETER", f"Invalid {name}: expected a string.", param=name, status=status)
    return raw


def date_range(raw: Any, name: str = "date") -> tuple[int, int]:
    """{from, to} as YYYY-MM-DD, inclusive on both ends (UTC days)."""
    if not isinstance(raw, dict) or "from" not in raw or "to" not in raw:
        raise ApiError("INVALID_DATE_RANGE", f"'{name}' must be an object with 'from' and 'to' (YYYY-MM-DD).",
                       param=name)
    try:
        lo, hi = parse_day(raw["from"]), parse_day(raw["to"])
    except (ValueError, TypeError):
        raise ApiError("INVALID_DATE_RANGE",
                       f"Invalid date range {json.dumps(raw, ensure_ascii=False)}: dates must be YYYY-MM-DD.",
                       param=name) from None
    if lo > hi:
        raise ApiError("INVALID_DATE_RANGE",
                       f"Invalid date range: from ({raw['from']}) must be on or before to ({raw['to']}).",
                       param=name)
    return lo, hi


def search_terms(raw: Any) -> tuple[str, ...] | None:
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise ApiError("INVALID_SEARCH_QUERY", param="search")
    terms = tuple(re.findall(r"\w+", raw.lower()))
    if not terms:
        raise ApiError("INVALID_SEARCH_QUERY", param="search")
    return terms


# ---------------------------------------------------------------- v2: account

@route("GET", "/v2/api/me", None, "Information about this API key: scopes, endpoints, team and rate limits")
def me(req: Request) -> dict:
    key, knobs = req.key, req.knobs
    endpoints = [{"method": r.method, "path": r.path, "description": r.description, "scope": r.scope}
                 for r in ROUTES.values() if r.scope is not None and r.scope in key.scopes]
    return {"data": {"api_key_id": key.id, "scopes": list(key.scopes), "endpoints": endpoints,
                     "team": dict(req.dataset.team),
                     "rate_limits": {"read_per_second": knobs.read_per_second,
                                     "write_per_second": knobs.write_per_second}}}


@route("GET", "/v2/api/numbers", "PHONE_NUMBERS_READ", "List phone numbers with capabilities and member access")
def numbers(req: Request) -> dict:
    with req.dataset.lock:
        return {"data": req.dataset.phone_numbers_view()}


@route("GET", "/v2/api/users", "USERS_READ", "List team members with roles and assigned numbers")
def users(req: Request) -> dict:
    status = enum_value(req.q("status"), ("ACTIVE", "BLOCKED"), "status") or "ACTIVE"
    role = enum_value(req.q("role"), ("ADMIN", "MANAGER", "MEMBER"), "role")
    with req.dataset.lock:
        return {"data": req.dataset.users_view(status, role)}


@route("GET", "/v2/api/tags", "TAGS_READ", "List all available tags")
def tags(req: Request) -> dict:
    with req.dataset.lock:
        return {"data": [dict(t) for t in req.dataset.tags]}


@route("GET", "/v2/api/summary_templates", "SUMMARY_TEMPLATES_READ", "List call summary templates")
def summary_templates(req: Request) -> dict:
    with req.dataset.lock:
        return {"data": req.dataset.summary_templates}


@route("GET", "/v2/api/webhooks", "WEBHOOKS_READ_WRITE", "List webhook endpoints")
def webhooks(req: Request) -> dict:
    with req.dataset.lock:
        # Served as stored, signing_secret included where present (see dataset).
        return {"data": req.dataset.webhooks}


@route("GET", "/v2/api/webhooks/event_types", "WEBHOOKS_READ_WRITE", "List webhook event types")
def webhook_event_types(req: Request) -> dict:
    return {"data": req.dataset.webhook_event_types}


# ---------------------------------------------------------------- v2: conversations

@route("GET", "/v2/api/conversations", "CONVERSATIONS_READ", "List conversations grouped by contact number")
def conversations(req: Request) -> dict:
    allo = req.q("allo_number")
    if not allo:
        raise ApiError("MISSING_ALLO_NUMBER", param="allo_number")
    page, size = page_and_size(req.q("page"), req.q("size"), first=1, default_size=20)
    transcript = parse_extend(req.q("extend"))
    since = None
    raw_since = req.q("last_activity_since")
    if raw_since is not None:
        try:
            since = parse_instant(raw_since)
        except (ValueError, TypeError):
            raise ApiError("INVALID_PARAMETER",
                           f"Invalid last_activity_since '{raw_since}'. Use ISO 8601, e.g. 2026-04-20T10:00:00Z.",
                           param="last_activity_since") from None
    unread = parse_bool(req.q("unread"), "unread")
    if req.knobs.ignore_since_filter:
        since = None
    ds = req.dataset
    with ds.lock:
        rows = ds.conversations(allo, since, unread)
        payload = v2_page(rows, page, size, lambda c: ds.conversation_view(c, transcript))
    if page == 1:
        req.api.after_conversations_page_one(allo)
    return payload


ITEM_TYPES = ("CALL", "SMS", "ALL")
ITEM_SORTS = ("DATE_DESC", "DATE_ASC", "RELEVANCE")


@route("POST", "/v2/api/conversations/items/search", "CONVERSATIONS_READ",
       "Search calls and SMS with filters and keyword search")
def items_search(req: Request) -> dict:
    body = req.json()  # unknown fields are ignored, as the live API does
    page, size = page_and_size(body.get("page"), body.get("size"), first=1, default_size=20)
    transcript = parse_extend(body.get("extend"))
    kind = enum_value(body.get("type"), ITEM_TYPES, "type")
    sort = enum_value(body.get("sort"), ITEM_SORTS, "sort") or "DATE_DESC"
    direction = enum_value(body.get("direction"), ("INBOUND", "OUTBOUND"), "direction")
    result = enum_value(body.get("result"), ("ANSWERED", "VOICEMAIL", "TRANSFERRED"), "result")
    tag_filter = body.get("tags")
    if tag_filter is not None and (not isinstance(tag_filter, list) or
                                   not all(isinstance(t, str) for t in tag_filter)):
        raise ApiError("INVALID_PARAMETER", "Invalid tags: expected an array of tag names.", param="tags")
    terms = search_terms(body.get("search"))
    day_from = day_to = None
    if body.get("date") is not None:
        day_from, day_to = date_range(body["date"])
    if req.knobs.ignore_date_filter:
        day_from = day_to = None
    ds = req.dataset
    with ds.lock:
        rows = ds.search_items(
            allo_number=string_value(body, "allo_number"), contact_number=string_value(body, "contact_number"),
            kind=None if kind in (None, "ALL") else kind, direction=direction,
            user_id=string_value(body, "user_id"), result=result, tags=tag_filter or None,
            day_from=day_from, day_to=day_to, sort=sort, search=terms)
        return v2_page(rows, page, size, lambda it: ds.item_view(it, transcript))


# ---------------------------------------------------------------- v2: CRM

CRM_SORTS = ("DATE_DESC", "DATE_ASC", "NAME_ASC", "NAME_DESC", "CREATED_DESC", "CREATED_ASC")


def _contains(value: str | None, needle: Any) -> bool:
    return isinstance(needle, str) and value is not None and needle.casefold() in value.casefold()


def _crm_search(req: Request, entity: str, view: str, keep: Callable[[Any, dict, tuple | None], bool]) -> dict:
    # The CRM endpoints document 422 (not 400) for invalid requests.
    body = req.json()
    page, size = page_and_size(body.get("page"), body.get("size"), first=1, default_size=20, status=422)
    sort = enum_value(body.get("sort"), CRM_SORTS, "sort", status=422) or "DATE_DESC"
    filters = body.get("filters") or {}
    if not isinstance(filters, dict):
        raise ApiError("INVALID_PARAMETER", "Invalid filters: expected an object.", param="filters", status=422)
    search = body.get("search")
    terms = tuple(re.findall(r"\w+", search.casefold())) if isinstance(search, str) and search.strip() else None
    ds = req.dataset
    with ds.lock:
        recs = ds.crm_sorted(entity, sort)
        if filters or terms:
            recs = [r for r in recs if keep(r, filters, terms)]
        return v2_page(recs, page, size, getattr(ds, view))


def _terms_in(terms: tuple | None, *fields: str | None) -> bool:
    if not terms:
        return True
    hay = " ".join(f for f in fields if f).casefold()
    return all(t in hay for t in terms)


@route("POST", "/v2/api/crm/people/search", "CRM_READ", "Search people in your CRM")
def crm_people(req: Request) -> dict:
    def keep(p, f, terms) -> bool:
        checks = [("name", p.name), ("last_name", p.last_name), ("job_title", p.job_title),
                  ("website", p.website), ("company", p.company.name if p.company else None)]
        for name, value in checks:
            if f.get(name) is not None and not _contains(value, f[name]):
                return False
        if f.get("phone_number") is not None and f["phone_number"] not in p.numbers:
            return False
        if f.get("email") is not None and not any(_contains(e, f["email"]) for e in p.emails):
            return False
        if f.get("deal_status") is not None and not (
                p.company and any(d.status == f["deal_status"] for d in p.company.deals)):
            return False
        return _terms_in(terms, p.name, p.last_name, *p.emails, *p.numbers, p.company.name if p.company else None)
    return _crm_search(req, "people", "crm_person_view", keep)


@route("POST", "/v2/api/crm/companies/search", "CRM_READ", "Search companies in your CRM")
def crm_companies(req: Request) -> dict:
    def keep(c, f, terms) -> bool:
        for name, value in (("name", c.name), ("website", c.website), ("industry", c.industry)):
            if f.get(name) is not None and not _contains(value, f[name]):
                return False
        return _terms_in(terms, c.name, c.website, c.industry)
    return _crm_search(req, "companies", "crm_company_view", keep)


@route("POST", "/v2/api/crm/deals/search", "CRM_READ", "Search deals synced from your CRM integrations")
def crm_deals(req: Request) -> dict:
    def keep(d, f, terms) -> bool:
        if f.get("stage") is not None and d.status != f["stage"]:
            return False
        return _terms_in(terms, d.name, d.company.name if d.company else None)
    return _crm_search(req, "deals", "crm_deal_view", keep)


# ---------------------------------------------------------------- v2: analytics

def _analytics_filters(body: dict) -> tuple[int, int, int, int, list[str] | None, list[str] | None]:
    """AnalyticsBaseRequest: date (required, at most 366 days), compare_date (default: the period of the
    same length just before), user_ids XOR allo_numbers."""
    if body.get("date") is None:
        raise ApiError("MISSING_PARAMETER", "The date parameter is required ({\"from\": \"YYYY-MM-DD\", "
                       "\"to\": \"YYYY-MM-DD\"}).", param="date")
    lo, hi = date_range(body["date"])
    if (hi - lo) // DAY + 1 > 366:
        raise ApiError("DATE_RANGE_TOO_WIDE", "The date range cannot exceed 366 days.", param="date")
    if body.get("compare_date") is not None:
        clo, chi = date_range(body["compare_date"], "compare_date")
    else:
        # Default comparison: the period of the same length just before.
        span = hi - lo + DAY
        clo, chi = lo - span, lo - DAY
    user_ids, allo_numbers = body.get("user_ids"), body.get("allo_numbers")
    for name, val in (("user_ids", user_ids), ("allo_numbers", allo_numbers)):
        if val is not None and (not isinstance(val, list) or not all(isinstance(v, str) for v in val)):
            raise ApiError("INVALID_PARAMETER", f"Invalid {name}: expected an array of strings.", param=name)
    if user_ids and allo_numbers:
        raise ApiError("INVALID_PARAMETER", "user_ids cannot be combined with allo_numbers.", param="user_ids")
    return lo, hi, clo, chi, user_ids or None, allo_numbers or None


@route("POST", "/v2/api/analytics/overview", "ANALYTICS_READ",
       "Team KPIs with period-over-period comparison and a per-user breakdown")
def analytics_overview(req: Request) -> dict:
    return {"data": req.dataset.analytics(*_analytics_filters(req.json()))}


OUTBOUND_STAGES = ("DIAL", "CONNECTED", "CONVERSATION", "CONVERSION")


@route("POST", "/v2/api/analytics/outbound", "ANALYTICS_READ",
       "Outbound call metrics: dial funnel, time series, heatmap, leaderboard and time spent")
def analytics_outbound(req: Request) -> dict:
    body = req.json()
    filters = _analytics_filters(body)
    tags = body.get("tags")
    if tags is not None and (not isinstance(tags, list) or not all(isinstance(t, str) for t in tags)):
        raise ApiError("INVALID_PARAMETER", "Invalid tags: expected an array of tag keys.", param="tags")
    granularity = body.get("granularity", "DAY")
    if granularity not in ("DAY", "WEEK", "MONTH"):
        raise ApiError("INVALID_GRANULARITY", f"Invalid granularity '{granularity}'. Allowed values: DAY, WEEK, MONTH.",
                       param="granularity")
    extend = body.get("extend")
    drilldown = None
    if extend is not None and extend != "":
        if extend != "items":
            raise ApiError("UNSUPPORTED_EXTEND_VALUE",
                           f"Unsupported extend value '{extend}'. Supported extend value for this endpoint: items.",
                           param="extend", suggestion="Use extend=items with a stage to list the calls.")
        if body.get("stage") is None:
            raise ApiError("MISSING_PARAMETER", "extend=items requires a stage (DIAL, CONNECTED, CONVERSATION, "
                           "CONVERSION).", param="stage")
        stage = enum_value(body.get("stage"), OUTBOUND_STAGES, "stage")
        page, size = page_and_size(body.get("page"), body.get("size"), first=1, default_size=20)
        drilldown = (stage, page, size)
    return {"data": req.dataset.outbound_analytics(*filters, tags=tags or None, granularity=granularity,
                                                   drilldown=drilldown)}


# ---------------------------------------------------------------- v1 (legacy)

@route("GET", "/v1/api/numbers", "CONVERSATIONS_READ", "Get phone numbers (legacy)")
def v1_numbers(req: Request) -> dict:
    with req.dataset.lock:
        return {"data": req.dataset.v1_numbers_view()}


def _v1_page(req: Request) -> tuple[int, int]:
    page, size = page_and_size(req.q("page"), req.q("size"), first=0, default_size=10)
    return page, size


@route("GET", "/v1/api/contacts", "CONTACTS_READ", "Search contacts with engagement (legacy)")
def v1_contacts(req: Request) -> dict:
    page, size = _v1_page(req)
    ds = req.dataset
    with ds.lock:
        recs = ds.contacts_v1()
        total_pages = math.ceil(len(recs) / size)
        chunk = recs[page * size: (page + 1) * size]
        # results is nullable in the contract: an out-of-range page gives null.
        results = [ds.v1_contact_view(p) for p in chunk] if chunk else None
    return {"data": {"results": results,
                     "metadata": {"pagination": {"total_pages": total_pages, "current_page": page}}}}


@route("GET", "/v1/api/calls", "CONVERSATIONS_READ", "Search calls for one Allo number (legacy)")
def v1_calls(req: Request) -> dict:
    allo = req.q("allo_number")
    if not allo:
        raise ApiError("MISSING_PARAMETER", "allo_number is required.", param="allo_number",
                       v1_details=[{"message": "required=allo_number", "field": "allo_number"}])
    page, size = _v1_page(req)
    ds = req.dataset
    with ds.lock:
        recs = ds.calls_v1(allo, req.q("contact_number") or None)
        if allo in (req.knobs.calls_oldest_first or []):
            recs = list(reversed(recs))  # Allo does not document the order: a number served the other way
        total_pages = math.ceil(len(recs) / size)
        results = [ds.v1_call_view(it) for it in recs[page * size: (page + 1) * size]]
    return {"data": {"results": results, "metadata": {"total_pages": total_pages, "current_page": page}}}


@route("GET", "/v1/api/contact/{contact_id}", "CONTACTS_READ",
       "Get one contact's context: emails, CRM integration data, custom properties, activity (legacy)")
def v1_contact(req: Request) -> dict:
    """`extend` takes `engagement` and `activity` (comma-separated); an unknown id is 400 CONTACT_NOT_FOUND
    with details null, as the OpenAPI document shows."""
    wanted = [v.strip() for v in (req.q("extend") or "").split(",") if v.strip()]
    for value in wanted:
        if value not in ("engagement", "activity"):
            raise ApiError("UNSUPPORTED_EXTEND_VALUE",
                           f"Unsupported extend value '{value}'. Available options: engagement, activity.",
                           param="extend")
    ds = req.dataset
    with ds.lock:
        contact_id = req.path_params.get("contact_id", "")
        person = ds.v1_contact_by_id(contact_id)
        if person is None or contact_id in (req.knobs.deleted_contacts or []):
            # deleted_contacts: deleted between the list and this request (the list answer still had it)
            raise ApiError("CONTACT_NOT_FOUND")
        return {"data": ds.v1_contact_context_view(person, engagement="engagement" in wanted,
                                                   activity="activity" in wanted)}


def _template_match(template: str, path: str) -> dict[str, str] | None:
    """The {name} segments of ``path`` when it matches the route ``template``; None otherwise."""
    if "{" not in template:
        return None
    want, got = template.split("/"), path.split("/")
    if len(want) != len(got):
        return None
    params = {}
    for w, g in zip(want, got):
        if w.startswith("{") and w.endswith("}"):
            if not g:
                return None
            params[w[1:-1]] = g
        elif w != g:
            return None
    return params


def path_params(route_path: str, path: str) -> dict[str, str]:
    """The path parameters of a request routed to ``route_path`` ({} for a plain route)."""
    if len(path) > 1 and path.endswith("/"):
        path = path[:-1]
    return _template_match(route_path, path) or {}


def find_route(method: str, path: str) -> Route:
    """The route for (method, path); 404 ENDPOINT_NOT_FOUND or 405 METHOD_NOT_ALLOWED otherwise."""
    if len(path) > 1 and path.endswith("/"):
        path = path[:-1]
    r = ROUTES.get((method, path))
    if r is not None:
        return r
    for (m, p), candidate in ROUTES.items():
        if m == method and _template_match(p, path) is not None:
            return candidate
    allowed = sorted(m for (m, p) in ROUTES if p == path or _template_match(p, path) is not None)
    if allowed:
        raise ApiError("METHOD_NOT_ALLOWED", f"{method} is not allowed on {path}. Allowed: {', '.join(allowed)}.")
    raise ApiError("ENDPOINT_NOT_FOUND", f"No endpoint {method} {path}.")
