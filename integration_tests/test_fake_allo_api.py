"""Tests of the fake Allo API itself: contract shapes, auth, limits, faults, mutation and truth."""

from __future__ import annotations

import http.client
import json
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import pytest
import requests

from integration_tests.fake_allo_api import DEFAULT_KEYS, Dataset, FakeAlloApi, Knobs

REPO = Path(__file__).resolve().parent.parent
US, FR, GB = "+14155550100", "+33187650200", "+442071230300"
V2_ERROR_FIELDS = {"type", "code", "message", "retryable", "request_id", "doc_url", "param", "suggestion",
                   "retry_after_seconds"}
ZONELESS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")
ZULU = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


# ---------------------------------------------------------------- helpers and fixtures

class Client:
    def __init__(self, api: FakeAlloApi) -> None:
        self.api = api
        self.s = requests.Session()

    def auth(self, key: str = "full", form: str = "Api-Key") -> dict:
        value = self.api.keys.get(key, key)
        return {"Authorization": f"{form} {value}".strip()}

    def get(self, path: str, key: str = "full", headers: dict | None = None, **params) -> requests.Response:
        return self.s.get(self.api.url + path, params=params, headers={**self.auth(key), **(headers or {})},
                          timeout=10)

    def post(self, path: str, body=None, key: str = "full", **kw) -> requests.Response:
        return self.s.post(self.api.url + path, json=body if body is not None else {}, headers=self.auth(key),
                           timeout=10, **kw)

    def all_conversations(self, number: str, **params) -> list[dict]:
        rows, page = [], 1
        while True:
            r = self.get("/v2/api/conversations", allo_number=number, size=100, page=page, **params)
            assert r.status_code == 200, r.text
            rows += r.json()["data"]
            if not r.json()["pagination"]["has_more"]:
                return rows
            page += 1

    def all_items(self, **body) -> list[dict]:
        rows, page = [], 1
        while True:
            r = self.post("/v2/api/conversations/items/search", {"size": 100, "page": page, **body})
            assert r.status_code == 200, r.text
            rows += r.json()["data"]
            if not r.json()["pagination"]["has_more"]:
                return rows
            page += 1


@pytest.fixture(scope="module")
def api():
    """Read-only server; rate limits off so tests can page freely."""
    with FakeAlloApi(dataset=Dataset(seed=42, scale="small"), knobs=Knobs(enforce_rate_limits=False)) as a:
        yield a


@pytest.fixture
def fresh():
    """A server of the test's own, for knobs and mutations."""
    with FakeAlloApi(dataset=Dataset(seed=7, scale="small"), knobs=Knobs(enforce_rate_limits=False)) as a:
        yield a


@pytest.fixture
def c(api):
    return Client(api)


@pytest.fixture
def fc(fresh):
    return Client(fresh)


def v2_error(r: requests.Response, status: int, code: str) -> dict:
    assert r.status_code == status, (r.status_code, r.text)
    err = r.json()["error"]
    assert set(err) == V2_ERROR_FIELDS
    assert err["code"] == code, err
    assert re.fullmatch(r"req_[a-z0-9]{12}", err["request_id"]) or err["request_id"] == r.headers["X-Request-Id"]
    return err


# ---------------------------------------------------------------- auth and scopes

def test_both_documented_header_forms_are_accepted(c):
    assert c.get("/v2/api/me", headers={"Authorization": "Api-Key " + DEFAULT_KEYS["full"]}).status_code == 200
    assert c.get("/v2/api/me", headers={"Authorization": DEFAULT_KEYS["full"]}).status_code == 200


def test_bearer_gets_a_bare_401_api_key_invalid(c):
    r = c.get("/v2/api/me", headers={"Authorization": "Bearer " + DEFAULT_KEYS["full"]})
    err = v2_error(r, 401, "API_KEY_INVALID")
    assert err["type"] == "authentication_error" and err["suggestion"] is None


@pytest.mark.parametrize("header, status, code", [
    (None, 401, "UNAUTHORIZED"),
    ("Api-Key ak_live_doesnotexist", 401, "API_KEY_INVALID"),
    ("Api-Key " + DEFAULT_KEYS["revoked"], 401, "API_KEY_REVOKED"),
    ("Api-Key " + DEFAULT_KEYS["trial"], 403, "API_KEY_TRIAL_NOT_ALLOWED"),
])
def test_bad_keys_are_refused_even_on_me(api, header, status, code):
    headers = {"Authorization": header} if header else {}
    r = requests.get(api.url + "/v2/api/me", headers=headers, timeout=5)
    err = v2_error(r, status, code)
    if code == "API_KEY_TRIAL_NOT_ALLOWED":
        assert err["message"] == "API access is not available on trial plans."


def test_v1_paths_use_the_v1_error_envelope(api):
    r = requests.get(api.url + "/v1/api/contacts", headers={"Authorization": "nope"}, timeout=5)
    assert r.status_code == 401 and r.json() == {"code": "API_KEY_INVALID", "details": None}


def test_missing_scope_is_403_naming_the_scope(c):
    err = v2_error(c.get("/v2/api/users", key="conversations_only"), 403, "API_KEY_INSUFFICIENT_SCOPE")
    assert err["message"] == "This API key is missing the required scope USERS_READ."
    assert err["param"] == "scope" and err["type"] == "permission_error"
    err = v2_error(c.get("/v2/api/conversations", key="no_conversations", allo_number=US), 403,
                   "API_KEY_INSUFFICIENT_SCOPE")
    assert "CONVERSATIONS_READ" in err["message"]
    r = c.get("/v1/api/contacts", key="conversations_only")
    assert r.status_code == 403
    assert r.json() == {"code": "API_KEY_INSUFFICIENT_SCOPE",
                        "details": [{"message": "required=CONTACTS_READ", "field": "scope"}]}
    r = c.get("/v1/api/calls", key="no_conversations", allo_number=US)
    assert r.json()["details"][0]["message"] == "required=CONVERSATIONS_READ"


@pytest.mark.parametrize("path, body, scope", [
    ("/v2/api/numbers", None, "PHONE_NUMBERS_READ"), ("/v2/api/tags", None, "TAGS_READ"),
    ("/v2/api/webhooks", None, "WEBHOOKS_READ_WRITE"), ("/v2/api/webhooks/event_types", None, "WEBHOOKS_READ_WRITE"),
    ("/v2/api/summary_templates", None, "SUMMARY_TEMPLATES_READ"), ("/v2/api/crm/deals/search", {}, "CRM_READ"),
    ("/v2/api/analytics/overview", {"date": {"from": "2026-11-01", "to": "2026-11-01"}}, "ANALYTICS_READ"),
    ("/v2/api/analytics/outbound", {"date": {"from": "2026-11-01", "to": "2026-11-01"}}, "ANALYTICS_READ"),
    ("/v1/api/numbers", None, "CONVERSATIONS_READ"),
])
def test_each_endpoint_requires_its_scope(c, path, body, scope):
    key = "no_conversations" if scope == "CONVERSATIONS_READ" else "conversations_only"
    r = c.get(path, key=key) if body is None else c.post(path, body, key=key)
    assert r.status_code == 403
    text = r.text
    assert scope in text
    ok = c.get(path) if body is None else c.post(path, body)
    assert ok.status_code == 200, ok.text


def test_me_lists_scopes_endpoints_team_and_rate_limits(c, fresh):
    me = c.get("/v2/api/me", key="conversations_only").json()["data"]
    assert me["scopes"] == ["CONVERSATIONS_READ"]
    assert me["endpoints"] and {e["scope"] for e in me["endpoints"]} == {"CONVERSATIONS_READ"}
    assert {"GET /v2/api/conversations", "POST /v2/api/conversations/items/search"} <= \
           {f"{e['method']} {e['path']}" for e in me["endpoints"]}
    assert me["team"]["id"].startswith("team-") and me["rate_limits"] == {"read_per_second": 20,
                                                                           "write_per_second": 5}
    full = c.get("/v2/api/me").json()["data"]
    assert len(full["endpoints"]) > len(me["endpoints"]) and "ANALYTICS_READ" in full["scopes"]
    fresh.set_knobs(read_per_second=7, write_per_second=2)
    assert Client(fresh).get("/v2/api/me").json()["data"]["rate_limits"] == {"read_per_second": 7,
                                                                              "write_per_second": 2}


def test_request_id_is_echoed_and_rate_limit_headers_are_always_sent(c):
    r = c.get("/v2/api/users", key="conversations_only", headers={"X-Request-Id": "req_mine00000001"})
    assert r.json()["error"]["request_id"] == "req_mine00000001"
    for resp in (r, c.get("/v2/api/tags"), c.post("/v2/api/crm/people/search", {})):
        assert {"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} <= set(resp.headers)
        assert int(resp.headers["X-RateLimit-Reset"]) >= int(time.time())
    assert c.post("/v2/api/crm/people/search", {}).headers["X-RateLimit-Limit"] == "5"
    assert c.get("/v2/api/tags").headers["X-RateLimit-Limit"] == "20"


def test_unknown_path_and_wrong_method(c):
    v2_error(c.get("/v2/api/nothing"), 404, "ENDPOINT_NOT_FOUND")
    v2_error(c.post("/v2/api/users", {}), 405, "METHOD_NOT_ALLOWED")
    assert c.get("/v1/api/nothing").json()["code"] == "ENDPOINT_NOT_FOUND"


# ---------------------------------------------------------------- conversations

def test_conversations_paging_yields_the_truth_in_last_activity_desc_order(c, api):
    truth = api.truth("conversations")
    for number in (US, FR, GB):
        rows = c.all_conversations(number)
        want = [{k: v for k, v in t.items() if k != "allo_number"} for t in truth if t["allo_number"] == number]
        assert rows == want and len(rows) >= 100
        keys = [(r["last_activity"], r["contact_number"]) for r in rows]
        assert keys == sorted(keys, key=lambda k: (-time.mktime(time.strptime(k[0], "%Y-%m-%dT%H:%M:%SZ")), k[1]))
        assert all(r["last_item"]["date"] == r["last_activity"] for r in rows)
    assert len(truth) == sum(len(c.all_conversations(n)) for n in (US, FR, GB))


def test_conversation_pagination_fields_and_past_the_end(c):
    r = c.get("/v2/api/conversations", allo_number=US).json()
    total = r["pagination"]["total_count"]
    assert r["pagination"] == {"page": 1, "size": 20, "total_count": total, "total_pages": -(-total // 20),
                               "has_more": True}
    assert len(r["data"]) == 20
    last = c.get("/v2/api/conversations", allo_number=US, size=100, page=-(-total // 100)).json()
    assert last["pagination"]["has_more"] is False and 0 < len(last["data"]) <= 100
    past = c.get("/v2/api/conversations", allo_number=US, size=100, page=99).json()
    assert past["data"] == [] and past["pagination"]["has_more"] is False


@pytest.mark.parametrize("params, code", [
    ({}, "MISSING_ALLO_NUMBER"),
    ({"allo_number": US, "size": 0}, "INVALID_PAGE_SIZE"),
    ({"allo_number": US, "size": 101}, "INVALID_PAGE_SIZE"),
    ({"allo_number": US, "size": "ten"}, "INVALID_PAGE_SIZE"),
    ({"allo_number": US, "page": 0}, "INVALID_PARAMETER"),
    ({"allo_number": US, "page": "x"}, "INVALID_PARAMETER"),
    ({"allo_number": US, "extend": "engagement"}, "UNSUPPORTED_EXTEND_VALUE"),
    ({"allo_number": US, "last_activity_since": "yesterday"}, "INVALID_PARAMETER"),
])
def test_conversation_parameter_errors(c, params, code):
    err = v2_error(c.get("/v2/api/conversations", **params), 400, code)
    assert err["type"] == "validation_error" and err["retryable"] is False
    if code == "MISSING_ALLO_NUMBER":
        assert err["message"] == "The allo_number parameter is required. List numbers with GET /v2/api/numbers."


def test_unknown_number_and_unencoded_plus_give_an_empty_list(c, api):
    assert c.get("/v2/api/conversations", allo_number="+19999999999").json()["data"] == []
    # A raw "+" in a query string decodes to a space, as on any real server.
    r = requests.get(f"{api.url}/v2/api/conversations?allo_number={US}", headers=c.auth(), timeout=5)
    assert r.status_code == 200 and r.json()["pagination"]["total_count"] == 0


def test_transcripts_only_with_extend(c):
    plain = c.get("/v2/api/conversations", allo_number=US, size=100).json()["data"]
    assert all(r["last_item"]["transcript"] is None for r in plain)
    ext = c.get("/v2/api/conversations", allo_number=US, size=100, extend="transcript").json()["data"]
    calls = [r["last_item"] for r in ext if r["last_item"]["type"] == "CALL"]
    assert calls and all(it["transcript"] and {e["source"] for e in it["transcript"]} <= {"USER", "EXTERNAL"}
                         for it in calls)
    assert all(r["last_item"]["transcript"] is None for r in ext if r["last_item"]["type"] == "SMS")


def test_last_activity_since_is_strictly_after(c, api):
    truth = [t for t in api.truth("conversations") if t["allo_number"] == US]
    pivot = truth[len(truth) // 3]["last_activity"]
    want = [t["contact_number"] for t in truth if t["last_activity"] > pivot]
    got = [r["contact_number"] for r in c.all_conversations(US, last_activity_since=pivot)]
    assert got == want and pivot not in {r["last_activity"] for r in c.all_conversations(US, last_activity_since=pivot)}
    # Same instant written with an offset, and with fractional seconds.
    offset = time.strftime("%Y-%m-%dT%H:%M:%S+02:00",
                           time.gmtime(time.mktime(time.strptime(pivot, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone + 7200))
    assert [r["contact_number"] for r in c.all_conversations(US, last_activity_since=offset)] == want
    frac = pivot[:-1] + ".000Z"
    assert [r["contact_number"] for r in c.all_conversations(US, last_activity_since=frac)] == want


def test_conversations_with_equal_last_activity_exist_and_tie_break_on_contact_number(api):
    truth = [t for t in api.truth("conversations") if t["allo_number"] == US]
    ties = Counter(t["last_activity"] for t in truth)
    tied = [t for t in truth if ties[t["last_activity"]] > 1]
    assert tied
    for i in range(len(truth) - 1):
        a, b = truth[i], truth[i + 1]
        if a["last_activity"] == b["last_activity"]:
            assert a["contact_number"] < b["contact_number"]


def test_unread_filter(c):
    unread = c.all_conversations(US, unread="true")
    read = c.all_conversations(US, unread="false")
    assert len(unread) + len(read) == len(c.all_conversations(US))
    assert all(r["last_item"]["direction"] == "INBOUND" for r in unread)


# ---------------------------------------------------------------- items search

def test_items_search_pages_yield_every_item_newest_first(c, api):
    truth = api.truth("conversation_items")
    rows = c.all_items()
    assert rows == truth and len({r["id"] for r in rows}) == len(rows) >= 2000
    asc = c.all_items(sort="DATE_ASC")
    assert [r["id"] for r in asc] == [r["id"] for r in reversed(truth)]
    dates = [r["date"] for r in rows]
    assert dates == sorted(dates, reverse=True)


def test_items_default_page_and_size(c):
    r = c.post("/v2/api/conversations/items/search", {}).json()
    assert r["pagination"]["page"] == 1 and r["pagination"]["size"] == 20 and len(r["data"]) == 20


def test_items_date_range_is_inclusive_utc_days(c, api):
    truth = api.truth("conversation_items")
    boundary = [t for t in truth if t["date"].endswith(("T00:00:00Z", "T23:59:59Z"))]
    assert boundary, "the dataset must hold items on day boundaries"
    for item in boundary[:4]:
        day = item["date"][:10]
        got = c.all_items(date={"from": day, "to": day})
        assert [r["id"] for r in got] == [t["id"] for t in truth if t["date"][:10] == day]
        assert item["id"] in {r["id"] for r in got}
    days = sorted({t["date"][:10] for t in truth})
    lo, hi = days[10], days[20]
    got = c.all_items(date={"from": lo, "to": hi})
    assert [r["id"] for r in got] == [t["id"] for t in truth if lo <= t["date"][:10] <= hi]


@pytest.mark.parametrize("body, code", [
    ({"date": {"from": "2026-11-02", "to": "2026-11-01"}}, "INVALID_DATE_RANGE"),
    ({"date": {"from": "2026-11-01T00:00:00Z", "to": "2026-11-02"}}, "INVALID_DATE_RANGE"),
    ({"date": {"from": "2026-11-01"}}, "INVALID_DATE_RANGE"),
    ({"size": 101}, "INVALID_PAGE_SIZE"),
    ({"page": 0}, "INVALID_PARAMETER"),
    ({"type": "TEXT_MESSAGE"}, "INVALID_PARAMETER"),
    ({"sort": "RECENT"}, "INVALID_PARAMETER"),
    ({"extend": "summary"}, "UNSUPPORTED_EXTEND_VALUE"),
    ({"search": "???"}, "INVALID_SEARCH_QUERY"),
])
def test_items_search_errors(c, body, code):
    v2_error(c.post("/v2/api/conversations/items/search", body), 400, code)


def test_items_search_rejects_a_body_that_is_not_json(c, api):
    r = requests.post(api.url + "/v2/api/conversations/items/search", data="{not json", headers=c.auth(), timeout=5)
    v2_error(r, 400, "INVALID_REQUEST_BODY")


def test_unknown_body_fields_are_silently_ignored(c):
    everything = c.post("/v2/api/conversations/items/search", {}).json()["pagination"]["total_count"]
    r = c.post("/v2/api/conversations/items/search", {"start_date": "2026-11-01", "end_date": "2026-11-02"})
    assert r.status_code == 200 and r.json()["pagination"]["total_count"] == everything


def test_items_filters(c, api):
    truth = api.truth("conversation_items")
    total = len(truth)
    calls = c.post("/v2/api/conversations/items/search", {"type": "CALL"}).json()["pagination"]["total_count"]
    sms = c.post("/v2/api/conversations/items/search", {"type": "SMS"}).json()["pagination"]["total_count"]
    assert calls + sms == total and calls == sum(t["type"] == "CALL" for t in truth)
    assert c.post("/v2/api/conversations/items/search", {"type": "ALL"}).json()["pagination"]["total_count"] == total
    fr = c.all_items(allo_number=FR, direction="OUTBOUND")
    assert fr and all(r["allo_number"] == FR and r["direction"] == "OUTBOUND" for r in fr)
    assert len(fr) == sum(t["allo_number"] == FR and t["direction"] == "OUTBOUND" for t in truth)
    contact = truth[0]["contact_number"]
    got = c.all_items(contact_number=contact)
    assert [r["id"] for r in got] == [t["id"] for t in truth if t["contact_number"] == contact]
    ext = c.post("/v2/api/conversations/items/search", {"type": "CALL", "extend": "transcript", "size": 5}).json()
    assert all(it["transcript"] for it in ext["data"])


def test_keyword_search_and_relevance(c):
    hits = c.all_items(search="bill", extend="transcript")
    assert hits and len(hits) < len(c.all_items())
    for h in hits:
        text = " ".join([h["summary"] or "", h["content"] or ""] + [t["text"] for t in h["transcript"] or []])
        assert any(w.startswith("bill") for w in re.findall(r"\w+", text.lower())), h["id"]
    both = c.all_items(search="bill invoice")
    assert {h["id"] for h in both} <= {h["id"] for h in hits}
    rel = c.post("/v2/api/conversations/items/search", {"search": "invoice", "sort": "RELEVANCE"})
    assert rel.status_code == 200 and rel.json()["pagination"]["total_count"] > 0


def test_item_shapes_follow_the_documented_nulls_and_live_quirks(api):
    items = api.truth("conversation_items")
    calls = [i for i in items if i["type"] == "CALL"]
    sms = [i for i in items if i["type"] == "SMS"]
    assert calls and sms
    for s in sms:
        assert s["duration"] is s["result"] is s["recording_url"] is s["transcript"] is s["summary"] is None
        assert s["content"] and s["status"] in {"PENDING", "SENT", "DELIVERED", "FAILED"}
        assert s["message_type"] in {"SMS", "MMS", "WHATSAPP"} and s["tags"] is None
    for k in calls:
        assert k["content"] is k["status"] is k["message_type"] is None
        assert k["result"] in {"ANSWERED", "VOICEMAIL", "TRANSFERRED"} and isinstance(k["duration"], int)
        assert isinstance(k["tags"], list)
    pending = sum(k["summary"] is None for k in calls) / len(calls)
    assert 0.05 < pending < 0.2
    assert any("extracted_data" in k and isinstance(k["data_collected"], dict) for k in calls)
    assert any(i["contacts"] == [] for i in items)
    assert any(len(i["contacts"]) > 1 for i in items)
    assert any(d["status"] == "open" for i in items for ct in i["contacts"] for d in ct["deals"])
    assert all(ZULU.match(i["date"]) for i in items)
    text = json.dumps(items, ensure_ascii=False)
    for s in ("Zoë", "Müller", "Ñúñez", "北京", "🙏"):
        assert s in text, s
    assert {i["allo_number"] for i in items} == {US, FR, GB}


# ---------------------------------------------------------------- plain lists, CRM, v1

def test_numbers_users_and_plain_lists(c, api):
    nums = c.get("/v2/api/numbers").json()["data"]
    assert nums[0]["type"] == "SENDER_ID" and nums[0]["number"] is None
    assert [n["number"] for n in nums[1:]] == [US, FR, GB]
    assert nums == api.truth("phone_numbers")
    v1 = c.get("/v1/api/numbers").json()["data"]
    assert [n["number"] for n in v1] == [US, FR, GB] and set(v1[0]) == {"number", "name", "country",
                                                                          "is_shared_number"}
    active = c.get("/v2/api/users").json()["data"]
    blocked = c.get("/v2/api/users", status="BLOCKED").json()["data"]
    assert len(active) == 5 and len(blocked) == 1 and blocked[0]["status"] == "BLOCKED"
    assert active + blocked == api.truth("users")
    assert all(u["role"] == "ADMIN" for u in c.get("/v2/api/users", role="ADMIN").json()["data"])
    v2_error(c.get("/v2/api/users", status="GONE"), 400, "INVALID_PARAMETER")
    assert c.get("/v2/api/tags").json()["data"] == api.truth("tags")
    templates = c.get("/v2/api/summary_templates").json()["data"]
    assert len(templates) == 2 and all(ZONELESS.match(t["created_at"]) for t in templates)
    hooks = c.get("/v2/api/webhooks").json()["data"]
    assert len(hooks) == 2 and any(h.get("signing_secret") for h in hooks)
    assert all("signing_secret" not in h for h in api.truth("webhooks"))
    assert c.get("/v2/api/webhooks/event_types").json()["data"] == api.truth("webhook_event_types")


@pytest.mark.parametrize("entity, stream", [("people", "crm_people"), ("companies", "crm_companies"),
                                            ("deals", "crm_deals")])
def test_crm_search_pages_yield_the_truth(c, api, entity, stream):
    rows, page = [], 1
    while True:
        r = c.post(f"/v2/api/crm/{entity}/search", {"page": page, "size": 100})
        assert r.status_code == 200
        rows += r.json()["data"]
        if not r.json()["pagination"]["has_more"]:
            break
        page += 1
    assert rows == api.truth(stream)
    assert all(ZONELESS.match(x["created_at"]) and ZONELESS.match(x["updated_at"]) for x in rows)


def test_crm_filters_sorts_and_validation(c, api):
    deals = api.truth("crm_deals")
    assert any(d["status"] == "open" for d in deals) and any(d["status"] == "WON" for d in deals)
    opened = c.post("/v2/api/crm/deals/search", {"filters": {"stage": "open"}, "size": 100}).json()["data"]
    assert opened and all(d["status"] == "open" for d in opened)
    by_name = c.post("/v2/api/crm/companies/search", {"sort": "NAME_ASC", "size": 100}).json()["data"]
    assert [x["name"].lower() for x in by_name] == sorted(x["name"].lower() for x in by_name)
    assert c.post("/v2/api/crm/people/search", {"size": 101}).status_code == 422
    assert c.post("/v2/api/crm/people/search", {"sort": "BOGUS"}).status_code == 422


def test_v1_contacts_are_zero_indexed(c, api):
    truth = api.truth("contacts")
    first = c.get("/v1/api/contacts").json()["data"]
    assert len(first["results"]) == 10 and first["metadata"]["pagination"]["current_page"] == 0
    rows, page = [], 0
    while True:
        d = c.get("/v1/api/contacts", page=page, size=100).json()["data"]
        assert d["metadata"]["pagination"]["current_page"] == page
        rows += d["results"]
        page += 1
        if page >= d["metadata"]["pagination"]["total_pages"]:
            break
    assert rows == truth
    past = c.get("/v1/api/contacts", page=page, size=100).json()["data"]
    assert past["results"] is None  # nullable in the contract
    assert c.get("/v1/api/contacts", size=500).json()["code"] == "INVALID_PAGE_SIZE"
    assert all(r["engagement"] in (None, "ENGAGED", "COOLING", "COLD") for r in truth)


# ContactContextApiResponse in Allo's OpenAPI document (July 2026).
CONTACT_CONTEXT_FIELDS = {"id", "name", "last_name", "numbers", "emails", "company", "job_title", "website",
                          "integration_data", "custom_properties", "engagement", "activity", "conversation_url"}


def test_v1_contact_context_follows_the_contract(c, api):
    truth = api.truth("contact_details")
    listed = {r["id"]: r for r in api.truth("contacts")}
    assert [r["id"] for r in truth] == list(listed)
    first = truth[0]["id"]
    full = c.get(f"/v1/api/contact/{first}", extend="engagement,activity")
    assert full.status_code == 200
    data = full.json()["data"]
    assert data == {k: v for k, v in truth[0].items() if k != "changed_at"}
    assert set(data) == CONTACT_CONTEXT_FIELDS
    # engagement and activity only when extended; the rest always
    plain = c.get(f"/v1/api/contact/{first}").json()["data"]
    assert "engagement" not in plain and "activity" not in plain
    assert plain == {k: v for k, v in data.items() if k not in ("engagement", "activity")}
    assert set(c.get(f"/v1/api/contact/{first}", extend="activity").json()["data"]) == set(plain) | {"activity"}
    # the list's identity fields, and what only the contact's page has
    for r in truth:
        same = listed[r["id"]]
        assert all(r[k] == same[k] for k in ("name", "last_name", "numbers", "company", "job_title", "website", "engagement"))
        assert r["conversation_url"] == f"/v1/api/contact/{r['id']}/conversation"
        assert r["changed_at"] == max(same["updated_at"] or "", same["last_activity_date"] or "")
        for a in r["activity"]:
            assert a["type"] in ("INBOUND_CALL", "OUTBOUND_CALL", "INBOUND_SMS", "OUTBOUND_SMS") and ZONELESS.match(a["made_at"])
            assert (a["allo_number"] is None) == a["type"].endswith("_SMS") and (a["content"] is None) == a["type"].endswith("_CALL")
        assert [a["made_at"] for a in r["activity"]] == sorted((a["made_at"] for a in r["activity"]), reverse=True)
        assert len(r["activity"]) <= 10 and (not r["activity"] or r["activity"][0]["made_at"] == same["last_activity_date"])
    kinds = Counter(k for r in truth for k in r["integration_data"])
    assert {"HUBSPOT", "SALESFORCE", "PIPEDRIVE"} <= set(kinds) and any(r["integration_data"] == {} for r in truth)
    assert any(r["custom_properties"] is None for r in truth) and any(r["custom_properties"] for r in truth)
    assert any(r["emails"] for r in truth) and any(r["emails"] == [] for r in truth)


def test_v1_contact_errors(c, api):
    first = api.truth("contacts")[0]["id"]
    missing = c.get("/v1/api/contact/cnt_doesnotexist")
    assert missing.status_code == 400 and missing.json() == {"code": "CONTACT_NOT_FOUND", "details": None}
    bad = c.get(f"/v1/api/contact/{first}", extend="transcript")
    assert bad.status_code == 400 and bad.json()["code"] == "UNSUPPORTED_EXTEND_VALUE"
    refused = c.get(f"/v1/api/contact/{first}", key="conversations_only")
    assert refused.status_code == 403 and refused.json()["code"] == "API_KEY_INSUFFICIENT_SCOPE"
    assert c.post(f"/v1/api/contact/{first}").status_code == 405
    assert c.get(f"/v1/api/contact/{first}/conversation").status_code == 404
    me = c.get("/v2/api/me").json()["data"]
    assert {"method": "GET", "path": "/v1/api/contact/{contact_id}", "scope": "CONTACTS_READ"}.items() <= \
        next(e for e in me["endpoints"] if e["path"] == "/v1/api/contact/{contact_id}").items()


def test_activity_moves_the_updated_at_of_the_contacts_it_changes(fresh, fc):
    before_rows = {r["id"]: r for r in fresh.truth("contact_details")}
    fresh.reset_touched()
    fresh.add_activity(n=15)
    changed = set(fresh.touched()["contacts"])
    after_rows = {r["id"]: r for r in fresh.truth("contact_details")}
    listed = {r["id"]: r for r in fresh.truth("contacts")}
    assert changed and changed <= set(after_rows)
    for cid, row in after_rows.items():
        if cid in changed:
            assert listed[cid]["updated_at"] == listed[cid]["last_activity_date"] == row["changed_at"]
            assert cid not in before_rows or row["changed_at"] > before_rows[cid]["changed_at"]
        else:
            assert row == before_rows[cid]
    fresh.set_knobs(deleted_contacts=[sorted(changed)[0]])
    assert fc.get(f"/v1/api/contact/{sorted(changed)[0]}").json()["code"] == "CONTACT_NOT_FOUND"
    assert sorted(changed)[0] in listed


def test_v1_calls_are_legacy_views_of_the_same_calls(c, api):
    r = c.get("/v1/api/calls")
    assert r.status_code == 400 and r.json()["details"][0]["field"] == "allo_number"
    truth = [t for t in api.truth("calls") if t["allo_number"] == FR]
    rows, page = [], 0
    while True:
        d = c.get("/v1/api/calls", allo_number=FR, page=page, size=100).json()["data"]
        rows += d["results"]
        page += 1
        if page >= d["metadata"]["total_pages"]:
            break
    assert rows == [{k: v for k, v in t.items() if k != "allo_number"} for t in truth]
    items = {i["id"]: i for i in api.truth("conversation_items")}
    for call in rows[:50]:
        item = items["cll-" + call["id"][len("call_"):]]
        assert call["length_in_minutes"] == round(item["duration"] / 60, 2)
        assert call["start_date"] + "Z" == item["date"] and ZONELESS.match(call["start_date"])
        assert call["type"] == item["direction"] and call["summary"] == item["summary"]
        assert call["transcript"] and all({"source", "text", "time", "start_seconds", "end_seconds"} == set(t)
                                          for t in call["transcript"])
    assert {r["result"] for r in api.truth("calls")} >= {"ANSWERED", "VOICEMAIL", "TRANSFERRED_AI",
                                                         "TRANSFERRED_EXTERNAL"}
    assert any(t["source"] == "AGENT" for r in api.truth("calls") for t in r["transcript"])
    one = c.get("/v1/api/calls", allo_number=FR, contact_number=rows[0]["to_number"]
                if rows[0]["type"] == "OUTBOUND" else rows[0]["from_number"]).json()["data"]["results"]
    assert one and rows[0] in one


def test_analytics_overview_for_one_day_matches_the_calls(c, api):
    calls = [i for i in api.truth("conversation_items") if i["type"] == "CALL"]
    day = Counter(i["date"][:10] for i in calls).most_common(1)[0][0]
    todays = [i for i in calls if i["date"][:10] == day]
    r = c.post("/v2/api/analytics/overview", {"date": {"from": day, "to": day}})
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["date"] == {"from": day, "to": day} and ZULU.match(data["last_updated"])
    s = data["summary"]
    assert s["total_calls"]["value"] == len(todays)
    assert s["talk_time_seconds"]["value"] == sum(i["duration"] for i in todays)
    assert s["calls_over_1_min"]["value"] == sum(i["duration"] > 60 for i in todays)
    assert s["answer_rate"]["value"] == round(sum(i["result"] == "ANSWERED" for i in todays) / len(todays), 3)
    assert sum(b["calls"]["value"] for b in data["breakdown"]) == len(todays)
    assert set(s) == {"total_calls", "talk_time_seconds", "calls_over_1_min", "answer_rate"}
    user = data["breakdown"][0]["user"]["id"]
    only = c.post("/v2/api/analytics/overview", {"date": {"from": day, "to": day}, "user_ids": [user]}).json()
    assert only["data"]["summary"]["total_calls"]["value"] == sum(i["user"]["id"] == user for i in todays)
    v2_error(c.post("/v2/api/analytics/overview", {}), 400, "MISSING_PARAMETER")
    v2_error(c.post("/v2/api/analytics/overview", {"date": {"from": day, "to": "2020-01-01"}}), 400,
             "INVALID_DATE_RANGE")


def test_analytics_outbound_for_one_day_matches_the_outbound_calls(c, api):
    calls = [i for i in api.truth("conversation_items") if i["type"] == "CALL" and i["direction"] == "OUTBOUND"]
    day = Counter(i["date"][:10] for i in calls).most_common(1)[0][0]
    todays = [i for i in calls if i["date"][:10] == day]
    r = c.post("/v2/api/analytics/outbound", {"date": {"from": day, "to": day}})
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert set(data) == {"date", "compare_date", "funnel", "time_series", "heatmap", "leaderboard", "time_spent", "last_updated"}
    assert data["date"] == {"from": day, "to": day} and ZULU.match(data["last_updated"])
    funnel = data["funnel"]
    assert set(funnel) == {"dials", "connected", "conversations", "conversions"}
    assert all(set(stage) == {"count", "rate"} and set(stage["count"]) == {"value", "previous", "change"} for stage in funnel.values())
    connected = [i for i in todays if i["result"] == "ANSWERED"]
    talks = [i for i in connected if i["duration"] > 60]
    assert funnel["dials"]["count"]["value"] == len(todays) and funnel["dials"]["rate"] == 1.0
    assert funnel["connected"]["count"]["value"] == len(connected)
    assert funnel["connected"]["rate"] == round(len(connected) / len(todays), 3)
    assert funnel["conversations"]["count"]["value"] == len(talks)
    assert funnel["conversions"]["count"]["value"] == 0  # no conversion tags asked for
    assert data["time_spent"]["total_conversation_time_seconds"]["value"] == sum(i["duration"] for i in talks)
    assert data["time_spent"]["avg_conversation_time_seconds"]["value"] == round(sum(i["duration"] for i in talks) / len(talks), 1)
    assert 4 <= data["time_spent"]["avg_ringing_time_seconds"]["value"] <= 27
    assert sum(e["connected"] for e in data["leaderboard"]) == len(connected)
    assert [e["connected"] for e in data["leaderboard"]] == sorted((e["connected"] for e in data["leaderboard"]), reverse=True)
    assert {e["user"]["id"] for e in data["leaderboard"]} == {i["user"]["id"] for i in todays}
    assert data["time_series"]["dials"] == [{"date": day, "value": len(todays)}]
    assert sum(cell["value"] for cell in data["heatmap"]["dials"]) == len(todays)
    # Yesterday is the default comparison.
    yesterday = (date.fromisoformat(day) - timedelta(days=1)).isoformat()
    assert data["compare_date"] == {"from": yesterday, "to": yesterday}
    assert funnel["dials"]["count"]["previous"] == sum(i["date"][:10] == yesterday for i in calls)

    tags = sorted({t for i in talks for t in (i["tags"] or [])})
    if tags:
        tagged = c.post("/v2/api/analytics/outbound", {"date": {"from": day, "to": day}, "tags": tags[:1]}).json()["data"]
        assert tagged["funnel"]["conversions"]["count"]["value"] == sum(tags[0] in (i["tags"] or []) for i in talks)
    week = c.post("/v2/api/analytics/outbound", {"date": {"from": day, "to": day}, "granularity": "WEEK"}).json()["data"]
    assert [p["value"] for p in week["time_series"]["dials"]] == [len(todays)]
    items = c.post("/v2/api/analytics/outbound", {"date": {"from": day, "to": day}, "extend": "items", "stage": "CONNECTED", "size": 2}).json()["data"]["items"]
    assert items["pagination"]["total_count"] == len(connected) and len(items["data"]) == min(2, len(connected))
    assert all(set(row) == {"id", "user", "allo_number", "allo_number_label", "contact_number", "stage", "voicemail", "duration", "date"} for row in items["data"])
    assert all(row["stage"] in ("CONNECTED", "CONVERSATION") and row["voicemail"] is False for row in items["data"])

    v2_error(c.post("/v2/api/analytics/outbound", {}), 400, "MISSING_PARAMETER")
    v2_error(c.post("/v2/api/analytics/outbound", {"date": {"from": day, "to": "2020-01-01"}}), 400, "INVALID_DATE_RANGE")
    v2_error(c.post("/v2/api/analytics/outbound", {"date": {"from": "2024-01-01", "to": "2025-06-01"}}), 400, "DATE_RANGE_TOO_WIDE")
    v2_error(c.post("/v2/api/analytics/outbound", {"date": {"from": day, "to": day}, "granularity": "HOUR"}), 400, "INVALID_GRANULARITY")
    v2_error(c.post("/v2/api/analytics/outbound", {"date": {"from": day, "to": day}, "extend": "transcript"}), 400, "UNSUPPORTED_EXTEND_VALUE")
    v2_error(c.post("/v2/api/analytics/outbound", {"date": {"from": day, "to": day}, "extend": "items"}), 400, "MISSING_PARAMETER")
    v2_error(c.post("/v2/api/analytics/outbound", {"date": {"from": day, "to": day}, "extend": "items", "stage": "DIAL", "size": 500}), 400, "INVALID_PAGE_SIZE")
    v2_error(c.post("/v2/api/analytics/outbound", {"date": {"from": day, "to": day}, "tags": "meeting_booked"}), 400, "INVALID_PARAMETER")
    v2_error(c.post("/v2/api/analytics/outbound", {"date": {"from": day, "to": day}, "user_ids": ["usr-x"], "allo_numbers": [US]}), 400, "INVALID_PARAMETER")


@pytest.mark.parametrize("stream", ["team_metrics_daily", "outbound_metrics_daily"])
def test_analytics_truth_has_a_team_row_and_user_rows_of_numbers_per_day(c, api, stream):
    calls = [i for i in api.truth("conversation_items") if i["type"] == "CALL"]
    day = Counter(i["date"][:10] for i in calls).most_common(1)[0][0]
    rows = api.truth(stream, first_day=day, last_day=day)
    path = "/v2/api/analytics/overview" if stream == "team_metrics_daily" else "/v2/api/analytics/outbound"
    data = c.post(path, {"date": {"from": day, "to": day}}).json()["data"]
    team, users = rows[0], rows[1:]
    assert (team["date"], team["scope"], team["user_id"], team["user"]) == (day, "team", "team", None)
    if stream == "team_metrics_daily":
        assert team["total_calls"] == data["summary"]["total_calls"]["value"]
        assert [(u["user_id"], u["calls"]) for u in users] == [(b["user"]["id"], b["calls"]["value"]) for b in data["breakdown"]]
    else:
        assert team["dials"] == data["funnel"]["dials"]["count"]["value"] and team["connected_rate"] == data["funnel"]["connected"]["rate"]
        assert team["avg_ringing_time_seconds"] == data["time_spent"]["avg_ringing_time_seconds"]["value"]
        assert [(u["user_id"], u["connected"]) for u in users] == [(e["user"]["id"], e["connected"]) for e in data["leaderboard"]]
    assert all(u["scope"] == "user" and u["user"]["id"] == u["user_id"] for u in users)
    assert not any(isinstance(v, dict) for r in rows for k, v in r.items() if k != "user")
    three = api.truth(stream, first_day=date.fromisoformat(day) - timedelta(days=2), last_day=day)
    assert sorted({r["date"] for r in three})[-1] == day and len({r["date"] for r in three}) == 3


# ---------------------------------------------------------------- rate limits and quota

def test_read_rate_limit_gives_429_with_retry_after(fresh, fc):
    fresh.set_knobs(enforce_rate_limits=True, read_per_second=3, write_per_second=2)
    statuses = [fc.get("/v2/api/tags") for _ in range(4)]
    assert [r.status_code for r in statuses] == [200, 200, 200, 429]
    assert [r.headers["X-RateLimit-Remaining"] for r in statuses[:3]] == ["2", "1", "0"]
    err = v2_error(statuses[3], 429, "RATE_LIMIT_EXCEEDED")
    assert err["retryable"] is True and err["type"] == "rate_limit_error" and err["retry_after_seconds"] >= 1
    assert int(statuses[3].headers["Retry-After"]) >= 1
    # Writes have their own budget; v1 paths use the v1 envelope.
    assert [fc.post("/v2/api/crm/deals/search").status_code for _ in range(3)] == [200, 200, 429]
    v1 = fc.get("/v1/api/numbers")
    assert v1.status_code == 429 and v1.json()["code"] == "RATE_LIMIT_EXCEEDED" and "Retry-After" in v1.headers
    time.sleep(1.05)
    assert fc.get("/v2/api/tags").status_code == 200
    # Keys have separate budgets.
    assert fc.get("/v2/api/me", key="conversations_only").status_code == 200


def test_rate_limits_can_be_switched_off(fresh, fc):
    fresh.set_knobs(enforce_rate_limits=False, read_per_second=2)
    assert {fc.get("/v2/api/tags").status_code for _ in range(10)} == {200}


def test_daily_quota(fresh, fc):
    fresh.set_knobs(daily_quota=3)
    assert [fc.get("/v2/api/tags").status_code for _ in range(3)] == [200, 200, 200]
    r = fc.get("/v2/api/tags")
    err = v2_error(r, 429, "API_KEY_QUOTA_EXCEEDED")
    assert err["retry_after_seconds"] >= 3600 and int(r.headers["Retry-After"]) >= 3600
    v1 = fc.get("/v1/api/numbers").json()
    assert v1["code"] == "API_KEY_QUOTA_EXCEEDED" and v1["details"][0]["field"] == "DAILY"
    assert re.fullmatch(r"limit=3;type=DAILY;reset_in=\d{4,}", v1["details"][0]["message"])
    assert fresh.stats()["quota"]["full"]["used"] == 3 and fresh.stats()["quota"]["full"]["limit"] == 3
    assert fc.get("/v2/api/tags", key="no_conversations").status_code == 200  # per key
    fresh.set_knobs(daily_quota=None)
    assert fc.get("/v2/api/tags").status_code == 200


# ---------------------------------------------------------------- faults

def test_fail_every_n_is_deterministic_and_spares_me(fresh, fc):
    fresh.set_knobs(fail_every_n=3, fail_status=503)
    codes = []
    for _ in range(6):
        codes.append(fc.get("/v2/api/tags").status_code)
        assert fc.get("/v2/api/me").status_code == 200
    assert codes == [200, 200, 503, 200, 200, 503]
    assert [fc.get("/v2/api/users").status_code for _ in range(2)] == [200, 200]
    err = v2_error(fc.get("/v2/api/tags"), 503, "INTERNAL_SERVER_ERROR")
    assert err["retryable"] is True and err["type"] == "server_error"


def test_rate_limit_storm(fresh, fc):
    fresh.set_knobs(rate_limit_storm=2)
    first, second, third = (fc.get("/v2/api/tags") for _ in range(3))
    for r in (first, second):
        v2_error(r, 429, "RATE_LIMIT_EXCEEDED")
        assert r.headers["Retry-After"] == "1"
    assert third.status_code == 200


def test_drop_closes_the_socket_without_a_response(fresh, fc):
    fresh.set_knobs(drop_every_n=2)
    assert fc.get("/v2/api/tags").status_code == 200
    with pytest.raises(requests.ConnectionError):
        requests.get(fresh.url + "/v2/api/tags", headers=fc.auth(), timeout=5)
    assert fresh.stats()["by_status"].get("dropped") == 1


def test_truncated_body_has_a_matching_content_length(fresh, fc):
    fresh.set_knobs(truncate_every_n=1)
    r = fc.get("/v2/api/tags")
    assert r.status_code == 200 and int(r.headers["Content-Length"]) == len(r.content)
    with pytest.raises(ValueError):
        json.loads(r.content)


def test_html_error_pages(fresh, fc):
    fresh.set_knobs(html_every_n=1)
    r = fc.get("/v2/api/tags")
    assert r.status_code == 502 and r.headers["Content-Type"].startswith("text/html") and "<html>" in r.text
    fresh.set_knobs(html_status=200)
    r = fc.get("/v2/api/tags")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")


def test_slow_responses_trip_client_timeouts(fresh, fc):
    fresh.set_knobs(slow_every_n=1, slow_seconds=0.6)
    with pytest.raises(requests.Timeout):
        requests.get(fresh.url + "/v2/api/tags", headers=fc.auth(), timeout=0.2)
    fresh.set_knobs(slow_every_n=None)
    assert fc.get("/v2/api/tags").status_code == 200


def test_fault_paths_restrict_faults(fresh, fc):
    fresh.set_knobs(fail_every_n=1, fault_paths=["/v2/api/tags"])
    assert fc.get("/v2/api/users").status_code == 200
    assert fc.get("/v2/api/tags").status_code == 500
    fresh.set_knobs(fault_paths=["/v2/api/me"])
    assert fc.get("/v2/api/me").status_code == 500


def test_fault_limit_stops_faults_after_that_many(fresh, fc):
    fresh.set_knobs(fail_every_n=1, fault_limit=2, fault_paths=["/v2/api/tags"])
    assert [fc.get("/v2/api/tags").status_code for _ in range(4)] == [500, 500, 200, 200]
    fresh.set_knobs(fault_limit=1)  # a knob change gives the limit back
    assert [fc.get("/v2/api/tags").status_code for _ in range(2)] == [500, 200]


def test_control_routes_are_never_faulted_nor_counted(fresh, fc):
    fresh.set_knobs(fail_every_n=1, rate_limit_storm=100)
    fresh.reset_stats()
    r = requests.get(fresh.url + "/_fake/truth/tags", timeout=5)
    assert r.status_code == 200 and r.json() == fresh.truth("tags")
    assert requests.post(fresh.url + "/_fake/stats/reset", timeout=5).json() == {"ok": True}
    assert requests.get(fresh.url + "/_fake/stats", timeout=5).json()["requests"] == 0


def test_ignore_since_filter_returns_the_whole_history(fresh, fc):
    since = fresh.truth("conversations")[5]["last_activity"]
    filtered = fc.get("/v2/api/conversations", allo_number=US, last_activity_since=since).json()
    fresh.set_knobs(ignore_since_filter=True)
    ignored = fc.get("/v2/api/conversations", allo_number=US, last_activity_since=since).json()
    assert ignored["pagination"]["total_count"] > filtered["pagination"]["total_count"]
    assert ignored["pagination"]["total_count"] == sum(t["allo_number"] == US for t in fresh.truth("conversations"))


def test_ignore_date_filter(fresh, fc):
    body = {"date": {"from": "2026-11-01", "to": "2026-11-01"}}
    narrow = fc.post("/v2/api/conversations/items/search", body).json()["pagination"]["total_count"]
    fresh.set_knobs(ignore_date_filter=True)
    wide = fc.post("/v2/api/conversations/items/search", body).json()["pagination"]["total_count"]
    assert wide == len(fresh.truth("conversation_items")) > narrow


def test_drift_during_paging_shifts_rows(fresh, fc):
    fresh.set_knobs(drift_during_paging=True, drift_items=4)
    before = len([t for t in fresh.truth("conversations") if t["allo_number"] == US])
    page1 = fc.get("/v2/api/conversations", allo_number=US, size=50).json()
    page2 = fc.get("/v2/api/conversations", allo_number=US, size=50, page=2).json()
    assert fresh.stats()["drift_items_added"] == 4
    assert page2["pagination"]["total_count"] >= page1["pagination"]["total_count"]
    after = [t for t in fresh.truth("conversations") if t["allo_number"] == US]
    assert len(after) >= before
    # Activity newer than anything page 1 showed landed on this number.
    assert after[0]["last_activity"] > page1["data"][0]["last_activity"]
    fc.get("/v2/api/conversations", allo_number=US, size=50, page=2)
    assert fresh.stats()["drift_items_added"] == 4  # only page 1 triggers drift


# ---------------------------------------------------------------- mutation and truth

def test_add_activity_is_strictly_newer_and_moves_conversations_up(fresh, fc):
    items_before = fresh.truth("conversation_items")
    newest = items_before[0]["date"]
    now_before = fresh.dataset.now
    out = fresh.add_activity(n=8)
    assert len(out["items"]) == 8 and out["conversations"]
    assert (fresh.dataset.now - now_before).total_seconds() >= 1
    items = {i["id"]: i for i in fresh.truth("conversation_items")}
    assert all(items[i]["date"] > newest for i in out["items"])
    assert all(items[i]["summary"] is None for i in out["items"] if items[i]["type"] == "CALL")
    assert len(items) == len(items_before) + 8
    convs = fresh.truth("conversations")
    for number in {a for a, _ in out["conversations"]}:
        touched = {ct for a, ct in out["conversations"] if a == number}
        top = [t["contact_number"] for t in convs if t["allo_number"] == number][: len(touched)]
        assert set(top) == touched
    got = fc.all_items(date={"from": out_day(fresh), "to": out_day(fresh)})
    assert set(out["items"]) <= {r["id"] for r in got}
    assert fresh.add_activity(n=0)["items"] == []


def out_day(api) -> str:
    return api.dataset.now.strftime("%Y-%m-%d")


def test_fill_pending_summaries_does_not_move_dates(fresh):
    convs = {(t["allo_number"], t["contact_number"]): t["last_activity"] for t in fresh.truth("conversations")}
    dates = {i["id"]: i["date"] for i in fresh.truth("conversation_items")}
    pending = {i["id"] for i in fresh.truth("conversation_items") if i["type"] == "CALL" and i["summary"] is None}
    filled = fresh.fill_pending_summaries()
    assert set(filled) == pending and filled
    items = fresh.truth("conversation_items")
    assert {i["id"]: i["date"] for i in items} == dates
    assert all(i["summary"] for i in items if i["type"] == "CALL")
    assert {(t["allo_number"], t["contact_number"]): t["last_activity"] for t in fresh.truth("conversations")} == convs
    assert fresh.fill_pending_summaries() == []


def test_delete_conversation(fresh, fc):
    victim = fresh.truth("conversations")[3]
    key = (victim["allo_number"], victim["contact_number"])
    n_items = len(fresh.truth("conversation_items"))
    removed = fresh.delete_conversation(*key)
    assert removed >= 1
    assert key not in {(t["allo_number"], t["contact_number"]) for t in fresh.truth("conversations")}
    assert len(fresh.truth("conversation_items")) == n_items - removed
    assert victim["contact_number"] not in {r["contact_number"] for r in fc.all_conversations(key[0])}
    with pytest.raises(KeyError):
        fresh.delete_conversation(*key)


def test_control_routes_over_http(fresh):
    u = fresh.url
    out = requests.post(u + "/_fake/activity", json={"n": 3}, timeout=5).json()
    assert len(out["items"]) == 3 and all(len(pair) == 2 for pair in out["conversations"])
    assert requests.post(u + "/_fake/summaries/fill", timeout=5).json()["items"]
    k = requests.post(u + "/_fake/knobs", json={"latency_ms": [1, 2], "fail_every_n": 9}, timeout=5).json()
    assert k["knobs"]["latency_ms"] == [1, 2] and fresh.knobs.fail_every_n == 9
    assert requests.post(u + "/_fake/knobs", json={"nope": 1}, timeout=5).status_code == 400
    victim = fresh.truth("conversations")[0]
    d = requests.post(u + "/_fake/conversations/delete",
                      json={"allo_number": victim["allo_number"], "contact_number": victim["contact_number"]},
                      timeout=5)
    assert d.status_code == 200 and d.json()["deleted_items"] >= 1
    assert requests.get(u + "/_fake/truth/nope", timeout=5).status_code == 404
    team = requests.get(u + "/_fake/truth/team_metrics_daily", timeout=5)
    assert team.status_code == 200 and team.json()[0]["user_id"] == "team"
    assert requests.get(u + "/_fake/stats", timeout=5).json()["requests"] == 0


def test_stats_log_and_reset(fresh, fc):
    fc.get("/v2/api/conversations", allo_number=US, size=100)
    fc.post("/v2/api/conversations/items/search", {"size": 7})
    fc.get("/v2/api/users", key="conversations_only")
    st = fresh.stats()
    assert st["requests"] == 3
    assert st["by_endpoint"] == {"GET /v2/api/conversations": 1, "POST /v2/api/conversations/items/search": 1,
                                 "GET /v2/api/users": 1}
    assert st["by_status"] == {"200": 2, "403": 1}
    first, second = st["log"][:2]
    assert first["query"] == {"allo_number": US, "size": "100"} and first["body"] is None
    assert second["body"] == {"size": 7} and second["status"] == 200 and second["method"] == "POST"
    assert {"method", "path", "query", "body", "status", "t"} <= set(first)
    fresh.reset_stats()
    assert fresh.stats()["requests"] == 0 and fresh.stats()["log"] == []


def test_datasets_are_deterministic():
    a, b, other = Dataset(seed=11), Dataset(seed=11), Dataset(seed=12)
    for stream in ("conversations", "conversation_items", "crm_people", "contacts", "calls", "webhooks"):
        assert a.truth(stream) == b.truth(stream)
    assert a.truth("conversation_items") != other.truth("conversation_items")
    assert a.add_activity(n=5) == b.add_activity(n=5)
    assert a.truth("conversations") == b.truth("conversations")


def test_scale_overrides_and_clock():
    d = Dataset(seed=1, scale=(60, 200, 30), now="2026-01-15T00:00:00Z")
    assert len(d.truth("conversations")) == 60 and len(d.truth("conversation_items")) == 200
    assert d.start.isoformat() == "2025-12-16T00:00:00+00:00"
    assert all("2025-12-16" <= i["date"][:10] <= "2026-01-14" for i in d.truth("conversation_items"))
    with pytest.raises(ValueError):
        Dataset(scale="huge")


# ---------------------------------------------------------------- a busy account

NEW = "+16285550400"  # a number of the vocabulary the small dataset does not use


def _v1_calls(cl: Client, number: str, page: int) -> dict:
    r = cl.get("/v1/api/calls", allo_number=number, size=100, page=page)
    assert r.status_code == 200, r.text
    return r.json()["data"]


def test_busy_scale_has_one_number_with_ten_pages_of_conversations_and_calls():
    ds = Dataset(seed=42, scale="busy")
    assert [a.number for a in ds.numbers] == [US]
    assert len(ds.truth("conversations")) >= 1000 and len(ds.truth("calls")) >= 1000
    with FakeAlloApi(dataset=ds, knobs=Knobs(enforce_rate_limits=False)) as busy:
        cl = Client(busy)
        conversations = cl.get("/v2/api/conversations", allo_number=US, size=100).json()["pagination"]
        assert conversations["total_pages"] >= 10 and conversations["total_count"] == len(ds.truth("conversations"))
        assert _v1_calls(cl, US, 0)["metadata"]["total_pages"] >= 10
        assert len(cl.all_conversations(US)) == len(ds.truth("conversations"))


def test_activity_per_answer_lands_right_before_each_list_answer(fresh, fc):
    with pytest.raises(ValueError):
        fresh.set_knobs(activity_number="+19999999999")
    fresh.reset_touched()
    fresh.set_knobs(activity_per_answer=2, activity_number=US)
    newest_before = fresh.truth("conversation_items")[0]["date"]
    page1 = fc.get("/v2/api/conversations", allo_number=US, size=50).json()
    # The activity landed before page 1 was computed: page 1 already shows it at the top.
    items = fresh.truth("conversation_items")
    assert page1["data"][0]["last_activity"] == items[0]["date"] > newest_before
    fc.get("/v2/api/conversations", allo_number=US, size=50, page=2)
    fc.post("/v2/api/conversations/items/search", {"size": 5})
    fc.get("/v1/api/calls", allo_number=FR, size=5)
    fc.get("/v1/api/contacts", size=5)
    fc.get("/v2/api/tags")  # not a list endpoint: nothing lands
    fc.get("/v2/api/numbers")
    stats = fresh.stats()
    assert stats["activity_events"] == 10
    by_path = {e["path"]: e for e in stats["log"]}
    assert all(by_path[p]["activity"] == 2 for p in ("/v2/api/conversations", "/v1/api/calls", "/v1/api/contacts",
                                                     "/v2/api/conversations/items/search"))
    assert "activity" not in by_path["/v2/api/tags"] and "activity" not in by_path["/v2/api/numbers"]
    touched = fresh.touched()
    assert len(touched["items"]) == 10 and touched["conversations"]
    assert {number for number, _ in touched["conversations"]} == {US}
    assert len(fresh.truth("conversation_items")) == len(items) + 8
    fresh.set_knobs(activity_per_answer=0)
    fc.get("/v2/api/conversations", allo_number=US)
    assert fresh.stats()["activity_events"] == 10
    fresh.set_knobs(activity_per_answer=1, busy_paths=["/v1/api/calls"])
    fc.get("/v2/api/conversations", allo_number=US)
    fc.get("/v1/api/calls", allo_number=US)
    assert fresh.stats()["activity_events"] == 11


@pytest.mark.parametrize("move_share", [0.0, 1.0, 0.6])
def test_activity_mixes_moves_of_existing_conversations_and_new_ones(fresh, move_share):
    existing = {(t["allo_number"], t["contact_number"]) for t in fresh.truth("conversations")}
    calls_before = {t["id"] for t in fresh.truth("calls")}
    fresh.reset_touched()
    out = fresh.add_activity(n=40, allo_number=GB, move_share=move_share)
    keys = {tuple(k) for k in out["conversations"]}
    moved, created = keys & existing, keys - existing
    if move_share == 0.0:
        assert not moved and len(created) == 40
    elif move_share == 1.0:
        assert moved and not created
    else:
        assert moved and created
    touched = fresh.touched()
    assert {tuple(k) for k in touched["conversations"]} == keys and touched["items"] == out["items"]
    # The new calls are the v1 calls that appeared; SMS are among the new items too.
    new_calls = {t["id"] for t in fresh.truth("calls")} - calls_before
    assert set(touched["calls"]) == set(out["calls"]) == new_calls and new_calls
    assert len(out["calls"]) < len(out["items"])
    assert touched["contacts"] and not touched["numbers"]
    assert fresh.reset_touched()["items"] == out["items"]
    assert fresh.touched() == {"conversations": [], "items": [], "calls": [], "contacts": [], "numbers": []}


def test_touched_and_new_numbers_over_http(fresh):
    u = fresh.url
    requests.post(u + "/_fake/touched/reset", timeout=5)
    out = requests.post(u + "/_fake/activity", json={"n": 3, "move_share": 0}, timeout=5).json()
    touched = requests.get(u + "/_fake/touched", timeout=5).json()
    assert touched["items"] == out["items"] and len(touched["conversations"]) == 3
    assert requests.post(u + "/_fake/touched/reset", timeout=5).json()["items"] == out["items"]
    assert requests.get(u + "/_fake/touched", timeout=5).json()["items"] == []
    added = requests.post(u + "/_fake/numbers", json={"number": NEW, "conversations": 12}, timeout=5)
    assert added.status_code == 200 and added.json()["numbers"] == [NEW] and len(added.json()["conversations"]) == 12
    assert requests.post(u + "/_fake/numbers", json={"number": NEW}, timeout=5).status_code == 400
    assert requests.post(u + "/_fake/numbers", json={"number": "555-0100"}, timeout=5).status_code == 400
    assert requests.post(u + "/_fake/numbers", json={}, timeout=5).status_code == 400
    knobs = requests.post(u + "/_fake/knobs", json={"activity_per_answer": 2, "answer_delay_ms": [0, 5]}, timeout=5)
    assert knobs.json()["knobs"]["answer_delay_ms"] == [0, 5] and fresh.knobs.activity_per_answer == 2
    for bad in ({"activity_per_answer": -1}, {"answer_delay_ms": [5, 1]}, {"activity_move_share": 2},
                {"activity_number": "+19999999999"}):
        assert requests.post(u + "/_fake/knobs", json=bad, timeout=5).status_code == 400, bad


def test_add_number_serves_a_new_number_with_its_own_past_history(fresh, fc):
    start, now = fresh.dataset.start_ts, fresh.dataset.now_ts
    before = {stream: fresh.truth(stream) for stream in ("conversations", "conversation_items", "calls")}
    fresh.reset_touched()
    out = fresh.add_number(NEW, conversations=150)
    assert [n["number"] for n in fc.get("/v2/api/numbers").json()["data"]][-1] == NEW
    assert NEW in {n["number"] for n in fc.get("/v1/api/numbers").json()["data"]}
    rows = fc.all_conversations(NEW)
    assert len(rows) == 150 and {r["contact_number"] for r in rows} == {c for _, c in out["conversations"]}
    items = fc.all_items(allo_number=NEW)
    assert len(items) == len(out["items"]) == 375 and {i["allo_number"] for i in items} == {NEW}
    calls, page = [], 0
    while True:
        data = _v1_calls(fc, NEW, page)
        calls += data["results"]
        page += 1
        if page >= data["metadata"]["total_pages"]:
            break
    assert {c["id"] for c in calls} == set(out["calls"]) and calls
    # History in the past, within the dataset's range and older than the last 2 days.
    for i in items:
        ts = time.mktime(time.strptime(i["date"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
        assert start <= ts <= now - 2 * 86400
    # Truth has the new number; nothing of the other numbers changed.
    truth = {stream: fresh.truth(stream) for stream in before}
    for stream, rows_before in before.items():
        assert [r for r in truth[stream] if r.get("allo_number") != NEW and NEW not in (r.get("from_number"), r.get("to_number"))] == rows_before
    assert len([r for r in truth["conversations"] if r["allo_number"] == NEW]) == 150
    assert fresh.touched()["numbers"] == [NEW] and len(fresh.touched()["items"]) == 375
    with pytest.raises(ValueError):
        fresh.add_number(NEW)
    # Deterministic per (seed, number).
    other = Dataset(seed=7, scale="small")
    assert other.add_number(NEW, conversations=150) == out


def test_answer_delay_lets_a_later_request_be_computed_and_answered_first(fresh):
    fresh.set_knobs(answer_delay_ms=(0, 400))
    fresh.reset_stats()
    cl = Client(fresh)

    def one(page: int) -> None:
        requests.get(fresh.url + "/v2/api/conversations", params={"allo_number": US, "size": 10, "page": page},
                     headers=cl.auth(), timeout=10)

    import threading
    threads = []
    for page in range(1, 11):
        t = threading.Thread(target=one, args=(page,))
        t.start()
        threads.append(t)
        time.sleep(0.03)  # sent in page order
    for t in threads:
        t.join(timeout=10)
    cl.get("/v2/api/tags")
    log = fresh.stats()["log"]
    pages = sorted((e for e in log if e["path"] == "/v2/api/conversations"), key=lambda e: e["t"])
    assert len(pages) == 10 and all(0 <= e["delay_ms"] <= 400 for e in pages)
    assert all(e["computed"] >= e["t"] + e["delay_ms"] / 1000 - 0.001 for e in pages)
    inverted = [(a["query"]["page"], b["query"]["page"]) for i, a in enumerate(pages) for b in pages[i + 1:]
                if b["computed"] < a["computed"]]
    assert inverted, "no later request was computed before an earlier one"
    assert "delay_ms" not in next(e for e in log if e["path"] == "/v2/api/tags")


def _read_pages(cl: Client, number: str, order: str, v1: bool) -> set:
    """Every page of one number's conversations (or v1 calls), strictly in order or last page first."""
    if v1:
        first = _v1_calls(cl, number, 0)
        pages = list(range(0, first["metadata"]["total_pages"]))
        fetch = lambda p: [r["id"] for r in (_v1_calls(cl, number, p)["results"] or [])]  # noqa: E731
    else:
        first = cl.get("/v2/api/conversations", allo_number=number, size=100).json()
        pages = list(range(1, first["pagination"]["total_pages"] + 1))
        fetch = lambda p: [r["contact_number"] for r in cl.get(  # noqa: E731
            "/v2/api/conversations", allo_number=number, size=100, page=p).json()["data"]]
    seen: set = set()
    if order == "strict":
        page = pages[0]
        while True:  # page after page, until a page is short (the list only grows)
            rows = fetch(page)
            seen.update(rows)
            if len(rows) < 100:
                return seen
            page += 1
    for page in reversed(pages):
        seen.update(fetch(page))
    return seen


@pytest.mark.parametrize("v1", [False, True], ids=["conversations", "v1_calls"])
def test_a_busy_list_loses_nothing_read_page_after_page_and_rows_read_out_of_order(v1):
    """The property the busy-account knobs exist for: rows that existed before a read and were not
    touched during it only move down the list, so a strict page-after-page reader sees all of them,
    while pages computed out of order lose the rows that crossed their boundary in between."""
    missing = {}
    for order in ("strict", "reversed"):
        with FakeAlloApi(dataset=Dataset(seed=42, scale="busy"), knobs=Knobs(enforce_rate_limits=False)) as busy:
            cl = Client(busy)
            stream = "calls" if v1 else "conversations"
            before = busy.truth(stream)
            busy.reset_touched()
            busy.set_knobs(activity_per_answer=3, activity_move_share=0.3)
            seen = _read_pages(cl, US, order, v1)
            busy.set_knobs(activity_per_answer=0)
            touched = busy.touched()
            if v1:
                untouched = [r["id"] for r in before if r["id"] not in set(touched["calls"])]
            else:
                keys = {tuple(k) for k in touched["conversations"]}
                untouched = [r["contact_number"] for r in before if (r["allo_number"], r["contact_number"]) not in keys]
            assert busy.stats()["activity_events"] >= 30 and len(untouched) >= 1000
            missing[order] = [r for r in untouched if r not in seen]
    assert missing["strict"] == [], f"{len(missing['strict'])} untouched rows missed reading page after page"
    assert len(missing["reversed"]) >= 10, "reading pages out of order lost nothing: the activity is too weak"


# ---------------------------------------------------------------- server robustness

def test_keep_alive_and_content_length(api):
    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=5)
    for _ in range(3):
        conn.request("GET", "/v2/api/tags", headers={"Authorization": DEFAULT_KEYS["full"]})
        resp = conn.getresponse()
        body = resp.read()
        assert resp.status == 200 and int(resp.getheader("Content-Length")) == len(body)
        assert resp.version == 11 and not resp.will_close
    conn.close()


def test_garbage_does_not_kill_the_server(api, c):
    with socket.create_connection(("127.0.0.1", api.port), timeout=5) as s:
        s.sendall(b"\x16\x03\x01 not http at all\r\n\r\n")
        s.recv(1024)
    with socket.create_connection(("127.0.0.1", api.port), timeout=5) as s:
        s.sendall(b"POST /v2/api/conversations/items/search HTTP/1.1\r\nHost: x\r\nContent-Length: zz\r\n\r\n")
        s.recv(1024)
    assert c.get("/v2/api/tags").status_code == 200


def test_latency_knob(fresh, fc):
    fresh.set_knobs(latency_ms=(120, 150))
    t = time.perf_counter()
    fc.get("/v2/api/tags")
    assert 0.11 < time.perf_counter() - t < 1.0


def test_cli_prints_one_json_line_and_stops_on_sigterm(tmp_path):
    cfg = tmp_path / "config.json"
    proc = subprocess.Popen([sys.executable, "-m", "integration_tests.fake_allo_api", "--port", "0", "--seed", "3",
                             "--no-enforce-rate-limits", "--daily-quota", "50", "--print-config", str(cfg)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = json.loads(proc.stdout.readline())
        assert set(line) == {"url", "keys"} and line["keys"] == DEFAULT_KEYS
        r = requests.get(line["url"] + "/v2/api/me", headers={"Authorization": "Api-Key " + DEFAULT_KEYS["full"]},
                         timeout=5)
        assert r.status_code == 200
        config = json.loads(cfg.read_text())
        assert config["api_key"] == DEFAULT_KEYS["full"] and config["api_url"] == line["url"]
        assert config["start_date"] == "2026-07-23T00:00:00Z"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


@pytest.mark.slow
def test_large_scale_generates_fast_and_serves_pages_fast():
    t = time.perf_counter()
    ds = Dataset(seed=42, scale="large")
    assert time.perf_counter() - t < 10
    assert len(ds.items_by_id) == 100_000 and len(ds.convs) == 20_000 and len(ds.numbers) >= 3
    with FakeAlloApi(dataset=ds, knobs=Knobs(enforce_rate_limits=False)) as big:
        cl = Client(big)
        t = time.perf_counter()
        for page in (1, 50, 400):
            r = cl.post("/v2/api/conversations/items/search", {"size": 100, "page": page})
            assert r.status_code == 200 and len(r.json()["data"]) == 100
            r = cl.get("/v2/api/conversations", allo_number=US, size=100, page=page % 40 + 1)
            assert r.status_code == 200 and len(r.json()["data"]) == 100
        assert time.perf_counter() - t < 2
