#!/usr/bin/env python3
"""Generate the stream JSON schemas of source-allo from Allo's OpenAPI document.

Usage:
    python tools/generate_schemas.py path/to/allo-openapi.json [--out DIR] [--check]

Allo publishes its OpenAPI document at https://help.withallo.com/openapi.json.
The document is read only here: the generated schemas are committed under
``source_allo/schemas/`` and are what the connector and its tests use.

The generated schemas are deliberately permissive, because Allo's live data
drifts from its documentation and warehouse loads must not break on it:

* every ``$ref`` is inlined and ``allOf`` / ``oneOf`` / ``anyOf`` are merged;
* every property is nullable, except the primary-key and cursor fields of
  each stream, which are non-null strings and listed in ``required``;
* ``enum`` is dropped; the documented values are kept in the description;
* ``additionalProperties: true`` on every object;
* ``format`` is kept only for ``date-time`` and ``date`` (the only formats
  that change how a destination types a column); OpenAPI-only keywords
  (``nullable``, ``example``, ``format: double``...) and length or range
  constraints are dropped.

``--check`` compares the generated schemas with the files on disk and exits
with status 1 when they differ, without writing anything.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "source_allo" / "schemas"

DOCS_V2 = "https://help.withallo.com/en/v2/api-reference/"
DOCS_V1 = "https://help.withallo.com/en/api-reference/"

JSON_SCHEMA_DRAFT = "http://json-schema.org/draft-07/schema#"
KEPT_FORMATS = {"date-time", "date"}
# Integer fields whose name says they may carry a fraction (minutes, rates...).
FLOAT_LIKE_NAME = re.compile(r"(minutes|_rate|_ratio|_percent|_percentage)$")
DATE_EXAMPLE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DATETIME_EXAMPLE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")

# Fields every conversation item must declare, with the OpenAPI fragment used
# when a version of the document lacks one of them.
CONVERSATION_ITEM_FIELDS: Dict[str, Dict[str, Any]] = {
    "id": {"type": "string"},
    "type": {"type": "string", "enum": ["CALL", "SMS"]},
    "direction": {"type": "string", "enum": ["INBOUND", "OUTBOUND"]},
    "allo_number": {"type": "string"},
    "contact_number": {"type": "string"},
    "contacts": {"type": "array", "items": {"$ref": "#/components/schemas/Contact"}},
    "user": {"$ref": "#/components/schemas/UserRef"},
    "date": {"type": "string", "format": "date-time"},
    "duration": {"type": "integer"},
    "result": {"type": "string"},
    "recording_url": {"type": "string"},
    "summary": {"type": "string"},
    "tags": {"type": "array", "items": {"type": "string"}},
    "transcript": {"type": "array", "items": {"$ref": "#/components/schemas/TranscriptEntry"}},
    "content": {"type": "string"},
    "status": {"type": "string"},
    "message_type": {"type": "string"},
}
# Allo's reference pages document these fields in prose ("Field notes") rather
# than in the OpenAPI schema; used only where the schema has no description.
CONVERSATION_ITEM_NOTES: Dict[str, str] = {
    "id": "Item ID (`cll-*` for calls, `msg-*` for messages).",
    "allo_number": "Allo number (E.164) of the item (your line).",
    "contact_number": "Phone number (E.164) of the external party.",
    "contacts": "Matching address-book contacts; empty when the number is not in the address book.",
    "user": "Team member who handled the item.",
    "date": "When the call or message happened.",
    "duration": "Call duration in seconds. Null for SMS items.",
    "result": "Call outcome. Null for SMS items.",
    "recording_url": "Call recording URL. Null when recording is disabled, the call was not answered, or for SMS items.",
    "summary": "AI summary of the call (markdown). Null for SMS items, or for calls whose AI summary is not yet available.",
    "tags": "Tags of the call. Null for SMS items (tags only apply to calls).",
    "transcript": "Call transcript, only returned when requested with extend=transcript; null otherwise and for SMS items.",
    "content": "Message body. Null for call items.",
    "status": "Message delivery status. Null for call items.",
    "message_type": "Message channel.",
}
CONVERSATION_SUMMARY_NOTES: Dict[str, str] = {
    "contact_number": "Phone number (E.164) of the external party; part of the primary key with allo_number.",
    "contacts": "Matching address-book contacts; empty when the number is not in the address book.",
    "last_activity": "Time of the most recent call or message of the conversation (cursor field).",
}
UNDOCUMENTED_ITEM_FIELDS = ("extracted_data", "data_collected")
UNDOCUMENTED_DESCRIPTION = "Undocumented field seen on live call items"

# The analytics streams' team row: its user_id (Allo's user IDs start with `usr-`, so it never collides).
ANALYTICS_TEAM_ROW_ID = "team"
TEAM_METRIC_NOTES: Dict[str, str] = {
    "total_calls": "Calls of the team on the day",
    "calls": "Calls of the user on the day",
    "talk_time_seconds": "Talk time on the day, in seconds",
    "calls_over_1_min": "Calls longer than one minute on the day",
    "answer_rate": "Share of calls answered on the day, as a fraction (0.503 = 50.3%)",
}
# Allo's document names the outbound funnel (dials -> connected -> conversations -> conversions) without
# describing each stage.
OUTBOUND_STAGE_NOTES: Dict[str, str] = {
    "dials": "Outbound calls dialled on the day",
    "connected": "Dialled calls that connected on the day",
    "conversations": "Connected calls that became conversations on the day",
    "conversions": "Conversations that converted (carry a conversion tag) on the day",
}
OUTBOUND_TIME_NOTES: Dict[str, str] = {
    "avg_ringing_time_seconds": "Average ringing time of the day's dials, in seconds",
    "avg_conversation_time_seconds": "Average conversation time on the day, in seconds",
    "total_conversation_time_seconds": "Total conversation time on the day, in seconds",
}


class SchemaError(Exception):
    """The OpenAPI document does not have the shape this generator expects."""


# --------------------------------------------------------------------------
# Step 1: resolve $ref and merge allOf / oneOf / anyOf into plain OpenAPI.
# --------------------------------------------------------------------------


class Resolver:
    def __init__(self, document: Dict[str, Any]):
        self.document = document

    def component(self, name: str) -> Dict[str, Any]:
        try:
            return self.document["components"]["schemas"][name]
        except KeyError as exc:
            raise SchemaError(f"components.schemas.{name} is missing from the OpenAPI document") from exc

    def lookup(self, ref: str) -> Dict[str, Any]:
        if not ref.startswith("#/"):
            raise SchemaError(f"only local $ref values are supported, got {ref!r}")
        node: Any = self.document
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or part not in node:
                raise SchemaError(f"$ref {ref!r} does not resolve")
            node = node[part]
        return node

    def resolve(self, node: Any, stack: tuple = ()) -> Any:
        """Return a copy of ``node`` with no $ref, allOf, oneOf, anyOf or not."""
        if isinstance(node, list):
            return [self.resolve(item, stack) for item in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            ref = node["$ref"]
            if ref in stack:
                # A recursive structure: stop with an open object.
                return {"type": "object", "description": "Recursive structure (not expanded)."}
            target = self.resolve(self.lookup(ref), stack + (ref,))
            siblings = {k: v for k, v in node.items() if k != "$ref"}
            if siblings:
                target = merge_schemas([target, self.resolve(siblings, stack)])
            return target
        node = {k: self.resolve(v, stack) for k, v in node.items() if k != "not"}
        if "allOf" in node:
            parts = node.pop("allOf")
            node = merge_schemas(parts + [node])
        for keyword in ("oneOf", "anyOf"):
            if keyword in node:
                node = merge_schemas([node, union_schemas(node.pop(keyword))])
        return node


def merge_schemas(parts: List[Dict[str, Any]]) -> Dict[str, Any]:
    """allOf semantics, kept permissive: properties are united, the first
    description and type win, nullable if any part is nullable."""
    merged: Dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            if key == "properties":
                props = merged.setdefault("properties", {})
                for name, sub in value.items():
                    props[name] = merge_schemas([props[name], sub]) if name in props else sub
            elif key == "required":
                merged["required"] = sorted(set(merged.get("required", [])) | set(value))
            elif key == "nullable":
                merged["nullable"] = merged.get("nullable", False) or value
            elif key == "items" and "items" in merged:
                merged["items"] = merge_schemas([merged["items"], value])
            elif key not in merged:
                merged[key] = copy.deepcopy(value)
    if "properties" in merged and "type" not in merged:
        merged["type"] = "object"
    return merged


def union_schemas(options: List[Dict[str, Any]]) -> Dict[str, Any]:
    """oneOf / anyOf, flattened: objects are merged, other types are united."""
    types: List[str] = []
    nullable = False
    objects = []
    enums: List[Any] = []
    for option in options:
        nullable = nullable or option.get("nullable", False)
        option_types = option.get("type")
        for t in option_types if isinstance(option_types, list) else [option_types]:
            if t == "null":
                nullable = True
            elif t and t not in types:
                types.append(t)
        if option.get("type") == "object" or "properties" in option:
            objects.append(option)
        enums.extend(v for v in option.get("enum", []) if v not in enums)
    result: Dict[str, Any] = merge_schemas(objects) if objects else {}
    if len(types) == 1:
        result["type"] = types[0]
    elif types:
        result["type"] = types
    if enums:
        result["enum"] = enums
    if nullable:
        result["nullable"] = True
    return result


# --------------------------------------------------------------------------
# Step 2: convert resolved OpenAPI schemas into permissive JSON Schema.
# --------------------------------------------------------------------------


def known_values_text(values: List[Any]) -> str:
    return ", ".join(str(v) for v in values if v is not None)


def append_sentence(description: Optional[str], sentence: str) -> str:
    if not description:
        return sentence
    description = description.rstrip()
    if not description.endswith((".", "!", "?", ":")):
        description += "."
    return f"{description} {sentence}"


def json_types(node: Dict[str, Any], name: str) -> List[str]:
    raw = node.get("type")
    types = list(raw) if isinstance(raw, list) else ([raw] if raw else [])
    if not types:
        if "properties" in node or "additionalProperties" in node:
            types = ["object"]
        elif "items" in node:
            types = ["array"]
    types = [t for t in types if t != "null"]
    if "integer" in types and FLOAT_LIKE_NAME.search(name or ""):
        types = ["number" if t == "integer" else t for t in types]
    if "integer" in types and "number" in types:
        types.remove("integer")
    return list(dict.fromkeys(types))


def convert(node: Dict[str, Any], name: str = "", nullable: bool = True) -> Dict[str, Any]:
    """Convert one resolved OpenAPI schema node into JSON Schema draft 7."""
    out: Dict[str, Any] = {}
    description = node.get("description")

    enum_values = node.get("enum")
    if enum_values:
        description = append_sentence(description, f"Known values: {known_values_text(enum_values)}.")
    items = node.get("items")
    if isinstance(items, dict) and items.get("enum"):
        description = append_sentence(
            description, f"Known values of each element: {known_values_text(items['enum'])}."
        )
    if description:
        out["description"] = description

    types = json_types(node, name)
    if types:
        if nullable:
            out["type"] = ["null"] + types
        else:
            out["type"] = types[0] if len(types) == 1 else types

    if "string" in types:
        fmt = node.get("format")
        if fmt not in KEPT_FORMATS:
            fmt = guess_format(node.get("example"))
        if fmt in KEPT_FORMATS:
            out["format"] = fmt

    if "object" in types:
        out["additionalProperties"] = True
        properties = node.get("properties") or {}
        if properties:
            out["properties"] = {key: convert(value, key) for key, value in properties.items()}

    if "array" in types:
        item_schema = dict(items) if isinstance(items, dict) else {}
        # Element-level enums are documented on the array itself.
        item_schema.pop("enum", None)
        out["items"] = convert(item_schema, name)

    return out


def add_notes(properties: Dict[str, Any], notes: Dict[str, str]) -> None:
    """Give undocumented properties the description written in Allo's prose."""
    for name, note in notes.items():
        if name in properties and not properties[name].get("description"):
            properties[name]["description"] = note


def guess_format(example: Any) -> Optional[str]:
    """A string documented without a format but with a date example."""
    if not isinstance(example, str):
        return None
    if DATE_EXAMPLE.match(example):
        return "date"
    if DATETIME_EXAMPLE.match(example):
        return "date-time"
    return None


# --------------------------------------------------------------------------
# Step 3: the streams.
# --------------------------------------------------------------------------


class Generator:
    def __init__(self, document: Dict[str, Any]):
        self.document = document
        self.resolver = Resolver(document)

    # -- helpers -----------------------------------------------------------

    def component(self, name: str) -> Dict[str, Any]:
        return self.resolver.resolve({"$ref": f"#/components/schemas/{name}"})

    def operation(self, method: str, path: str) -> Dict[str, Any]:
        try:
            return self.document["paths"][path][method.lower()]
        except KeyError as exc:
            raise SchemaError(f"{method} {path} is missing from the OpenAPI document") from exc

    def root(
        self,
        record: Dict[str, Any],
        *,
        method: str,
        path: str,
        page: str,
        what: str,
        keys: List[str],
    ) -> Dict[str, Any]:
        """Wrap a resolved OpenAPI record schema into a stream schema."""
        operation = self.operation(method, path)
        summary = operation.get("summary") or operation.get("operationId") or ""
        source = f"`{method} {path}`" + (f" ({summary})" if summary else "")
        description = f"{what} Source: Allo API {source}. API reference: {page}"

        converted = convert(record, nullable=False)
        properties = converted.get("properties", {})
        for key in keys:
            if key not in properties:
                raise SchemaError(f"{path}: key field {key!r} is not declared")
            prop = properties[key]
            types = prop.get("type")
            types = [t for t in (types if isinstance(types, list) else [types]) if t != "null"]
            if types != ["string"]:
                raise SchemaError(f"{path}: key field {key!r} is not a string ({prop.get('type')!r})")
            prop["type"] = "string"
        return {
            "$schema": JSON_SCHEMA_DRAFT,
            "description": description,
            "type": "object",
            "additionalProperties": True,
            "required": list(keys),
            "properties": properties,
        }

    def conversation_item(self) -> Dict[str, Any]:
        item = self.component("ConversationItem")
        properties = item.setdefault("properties", {})
        for name, fallback in CONVERSATION_ITEM_FIELDS.items():
            if name not in properties:
                properties[name] = self.resolver.resolve(fallback)
        add_notes(properties, CONVERSATION_ITEM_NOTES)
        for name in UNDOCUMENTED_ITEM_FIELDS:
            properties.setdefault(
                name,
                {"type": "object", "description": UNDOCUMENTED_DESCRIPTION},
            )
        return item

    def plain_list(self, component: str, path: str, page: str, what: str) -> Dict[str, Any]:
        return self.root(
            self.component(component), method="GET", path=path, page=page, what=what, keys=["id"]
        )

    # -- streams -----------------------------------------------------------

    def conversations(self) -> Dict[str, Any]:
        summary = self.component("ConversationSummary")
        add_notes(summary.get("properties", {}), CONVERSATION_SUMMARY_NOTES)
        properties = {
            "allo_number": {
                "type": "string",
                "description": (
                    "Allo number (E.164) whose conversations were listed. Added by the connector "
                    "from the request (the API does not return it at the top level); part of the "
                    "primary key with contact_number."
                ),
            }
        }
        properties.update(summary.get("properties", {}))
        properties["last_item"] = merge_schemas(
            [{"description": "Most recent call or SMS of the conversation."}, self.conversation_item()]
        )
        summary["properties"] = properties
        return self.root(
            summary,
            method="GET",
            path="/v2/api/conversations",
            page=DOCS_V2 + "conversations/list-conversations",
            what=(
                "One record per conversation, i.e. per (allo_number, contact_number), with its "
                "last activity and most recent item."
            ),
            keys=["allo_number", "contact_number", "last_activity"],
        )

    def conversation_items(self) -> Dict[str, Any]:
        return self.root(
            self.conversation_item(),
            method="POST",
            path="/v2/api/conversations/items/search",
            page=DOCS_V2 + "conversations/search-conversation-items",
            what="One record per call or SMS across all conversations.",
            keys=["id", "date"],
        )

    def phone_numbers(self) -> Dict[str, Any]:
        number = self.component("PhoneNumber")
        properties = {
            "id": {
                "type": "string",
                "description": (
                    "Stable key computed by the connector: the number (E.164), or "
                    "\"sender_id:<name>\" for a sender ID, whose number is null."
                ),
            }
        }
        properties.update(number.get("properties", {}))
        number["properties"] = properties
        return self.root(
            number,
            method="GET",
            path="/v2/api/numbers",
            page=DOCS_V2 + "phone-numbers/list-numbers",
            what="One record per phone number or sender ID of the team.",
            keys=["id"],
        )

    def webhooks(self) -> Dict[str, Any]:
        webhook = self.component("WebhookApiResponse")
        # The connector never emits the signing secret.
        webhook.get("properties", {}).pop("signing_secret", None)
        return self.root(
            webhook,
            method="GET",
            path="/v2/api/webhooks",
            page=DOCS_V2 + "webhooks/get-webhooks",
            what="One record per webhook endpoint (the signing secret is never emitted).",
            keys=["id"],
        )

    def webhook_event_types(self) -> Dict[str, Any]:
        return self.root(
            self.component("WebhookEventTypeApiResponse"),
            method="GET",
            path="/v2/api/webhooks/event_types",
            page=DOCS_V2 + "webhooks/list-event-types",
            what="One record per webhook event type.",
            keys=[],
        )

    def crm(self, component: str, path: str, page: str, what: str) -> Dict[str, Any]:
        return self.root(
            self.component(component),
            method="POST",
            path=path,
            page=DOCS_V2 + page,
            what=what,
            keys=["id"],
        )

    def contacts(self) -> Dict[str, Any]:
        return self.root(
            self.component("ContactWithEngagementApiResponse"),
            method="GET",
            path="/v1/api/contacts",
            page=DOCS_V1 + "contacts/search-contacts",
            what="One record per address-book contact, with its engagement level (legacy v1 API, element of data.results).",
            keys=["id"],
        )

    def contact_details(self) -> Dict[str, Any]:
        context = self.component("ContactContextApiResponse")
        context.setdefault("properties", {})["changed_at"] = {
            "type": "string",
            "format": "date-time",
            "description": (
                "Added by the connector, the cursor: the later of the contact's updated_at and last_activity_date "
                "in GET /v1/api/contacts when these details were read. Null when the list gives neither."
            ),
        }
        return self.root(
            context,
            method="GET",
            path="/v1/api/contact/{contact_id}",
            page=DOCS_V1 + "contacts/get-contact",
            what=(
                "One record per address-book contact with what only its own page returns: emails, CRM "
                "integration data, custom properties, engagement and recent activity (legacy v1 API, data, "
                "requested with extend=engagement,activity)."
            ),
            keys=["id"],
        )

    def calls(self) -> Dict[str, Any]:
        call = self.component("CallApiResponse")
        properties = {
            "allo_number": {
                "type": "string",
                "description": (
                    "Allo number (E.164) whose calls were requested. Added by the connector from the request."
                ),
            }
        }
        properties.update(call.get("properties", {}))
        call["properties"] = properties
        return self.root(
            call,
            method="GET",
            path="/v1/api/calls",
            page=DOCS_V1 + "calls/search-calls",
            what="One record per call, with AI-agent transcript rows and legacy result values (legacy v1 API, element of data.results).",
            keys=["id"],
        )

    # -- analytics: one request per day, one team row and one row per user, each metric a number --------

    def analytics_data(self, path: str) -> Dict[str, Any]:
        operation = self.operation("POST", path)
        response = self.resolver.resolve(
            operation["responses"]["200"]["content"]["application/json"]["schema"]
        )
        return response["properties"]["data"]["properties"]

    def metric_number(self, text: str) -> Dict[str, Any]:
        """A MetricValue ({value, previous, change}) as the number of its `value`: for a one-day request
        `previous` is the day before, a row of its own, so the comparison is not kept."""
        value = self.component("MetricValue").get("properties", {}).get("value") or {"type": "number"}
        return {"type": value.get("type", "number"), "description": text, "nullable": True}

    def analytics_record(
        self, path: str, user_source: str, figures: Dict[str, Dict[str, Any]]
    ) -> Dict[str, Any]:
        last_updated = self.analytics_data(path).get("last_updated", {"type": "string", "format": "date-time"})
        properties: Dict[str, Any] = {
            "date": {
                "type": "string",
                "format": "date",
                "description": "Day the metrics cover (the request's date.from and date.to are both this day).",
            },
            "scope": {
                "type": "string",
                "description": f"\"team\" for the team row, \"user\" for a user's row ({user_source}). Known values: team, user.",
            },
            "user_id": {
                "type": "string",
                "description": (
                    f"\"{ANALYTICS_TEAM_ROW_ID}\" on the team row; the user's ID (usr-...) on a user row. Never "
                    "null: it is part of the primary key (date, user_id)."
                ),
            },
            "user": merge_schemas(
                [
                    {"description": f"The user of a user row ({user_source}.user); null on the team row.", "nullable": True},
                    self.component("UserRef"),
                ]
            ),
        }
        properties.update(figures)
        properties["last_updated"] = dict(last_updated, nullable=True)
        return {"type": "object", "properties": properties}

    def team_metrics_daily(self) -> Dict[str, Any]:
        path = "/v2/api/analytics/overview"
        data = self.analytics_data(path)
        summary = data["summary"].get("properties", {})
        breakdown = data["breakdown"]["items"].get("properties", {})
        figures: Dict[str, Dict[str, Any]] = {}
        # The user rows' own fields (`calls`) right after the team's first (`total_calls`).
        names = list(summary)
        names[1:1] = [n for n in breakdown if n not in summary and n != "user"]
        for name in names:
            rows = []
            if name in summary:
                rows.append(f"team row: data.summary.{name}.value")
            if name in breakdown:
                rows.append(f"user rows: data.breakdown[].{name}.value")
            only = "; null on user rows" if name not in breakdown else ("; null on the team row" if name not in summary else "")
            figures[name] = self.metric_number(f"{TEAM_METRIC_NOTES.get(name, name)} ({', '.join(rows)}){only}.")
        return self.root(
            self.analytics_record(path, "data.breakdown[]", figures),
            method="POST",
            path=path,
            page=DOCS_V2 + "analytics/team-summary",
            what=(
                "Team metrics per day, each metric a number: one team row (scope \"team\", user_id \"team\", "
                "from data.summary) and one row per user (scope \"user\", from data.breakdown[]) for each day, "
                "requested one day at a time."
            ),
            keys=["date", "user_id", "scope"],
        )

    def outbound_metrics_daily(self) -> Dict[str, Any]:
        path = "/v2/api/analytics/outbound"
        data = self.analytics_data(path)
        leaderboard = data["leaderboard"]["items"].get("properties", {})
        figures: Dict[str, Dict[str, Any]] = {}
        for stage, stage_schema in data["funnel"].get("properties", {}).items():
            note = OUTBOUND_STAGE_NOTES.get(stage, f"Funnel stage {stage} on the day")
            if stage in leaderboard:
                figures[stage] = self.metric_number(
                    f"{note} (team row: data.funnel.{stage}.count.value; user rows: data.leaderboard[].{stage})."
                )
            else:
                figures[stage] = self.metric_number(f"{note} (team row: data.funnel.{stage}.count.value); null on user rows.")
            rate = stage_schema.get("properties", {}).get("rate")
            if rate is not None:
                figures[f"{stage}_rate"] = dict(
                    rate,
                    description=append_sentence(
                        rate.get("description"), f"Team row: data.funnel.{stage}.rate; null on user rows."
                    ),
                    nullable=True,
                )
        for name in data["time_spent"].get("properties", {}):
            figures[name] = self.metric_number(
                f"{OUTBOUND_TIME_NOTES.get(name, name)} (team row: data.time_spent.{name}.value); null on user rows."
            )
        for name, schema in leaderboard.items():
            if name != "user" and name not in figures:
                figures[name] = dict(schema, description=f"data.leaderboard[].{name} (user rows); null on the team row.", nullable=True)
        return self.root(
            self.analytics_record(path, "data.leaderboard[]", figures),
            method="POST",
            path=path,
            page=DOCS_V2 + "analytics/outbound",
            what=(
                "Outbound call metrics per day, each metric a number: one team row (scope \"team\", user_id \"team\": "
                "dial funnel from data.funnel, time spent from data.time_spent) and one row per user of "
                "data.leaderboard[] (scope \"user\") for each day, requested one day at a time."
            ),
            keys=["date", "user_id", "scope"],
        )

    def all(self) -> Dict[str, Dict[str, Any]]:
        return {
            "conversations": self.conversations(),
            "conversation_items": self.conversation_items(),
            "phone_numbers": self.phone_numbers(),
            "users": self.plain_list(
                "User", "/v2/api/users", DOCS_V2 + "users/list-users", "One record per team member."
            ),
            "tags": self.plain_list(
                "Tag", "/v2/api/tags", DOCS_V2 + "tags/list-tags", "One record per call tag."
            ),
            "summary_templates": self.plain_list(
                "SummaryTemplate",
                "/v2/api/summary_templates",
                DOCS_V2 + "summary-templates/list-summary-templates",
                "One record per AI summary template.",
            ),
            "webhooks": self.webhooks(),
            "webhook_event_types": self.webhook_event_types(),
            "crm_people": self.crm(
                "CrmPerson", "/v2/api/crm/people/search", "crm/search-people", "One record per CRM person."
            ),
            "crm_companies": self.crm(
                "CrmCompany", "/v2/api/crm/companies/search", "crm/search-companies", "One record per CRM company."
            ),
            "crm_deals": self.crm(
                "CrmDeal", "/v2/api/crm/deals/search", "crm/search-deals", "One record per CRM deal."
            ),
            "contacts": self.contacts(),
            "contact_details": self.contact_details(),
            "calls": self.calls(),
            "team_metrics_daily": self.team_metrics_daily(),
            "outbound_metrics_daily": self.outbound_metrics_daily(),
        }


def render(schema: Dict[str, Any]) -> str:
    if not schema.get("required"):
        schema.pop("required", None)
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("openapi", type=Path, help="path to Allo's OpenAPI document (JSON)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output directory (default: {DEFAULT_OUT})")
    parser.add_argument("--check", action="store_true", help="only report schemas that differ from the files on disk")
    args = parser.parse_args(argv)

    try:
        document = json.loads(args.openapi.read_text(encoding="utf-8"))
        schemas = Generator(document).all()
    except (OSError, ValueError, SchemaError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    stale = []
    for stream, schema in schemas.items():
        target = args.out / f"{stream}.json"
        text = render(schema)
        if args.check:
            if not target.exists() or target.read_text(encoding="utf-8") != text:
                stale.append(str(target))
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        print(f"wrote {target}")

    if args.check:
        for path in stale:
            print(f"out of date: {path}", file=sys.stderr)
        return 1 if stale else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
