"""Runs the installed `source-allo` command the way Airbyte does, and checks what it printed.

Shared by the integration, fault-injection and PyAirbyte tests. Nothing here reads outside the repo.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional

import jsonschema

REPO = Path(__file__).resolve().parent.parent
SCHEMAS = REPO / "source_allo" / "schemas"
SOURCE_ALLO = str(Path(sys.executable).with_name("source-allo"))

PRIMARY_KEYS: Dict[str, List[str]] = {
    "conversations": ["allo_number", "contact_number"],
    "conversation_items": ["id"],
    "phone_numbers": ["id"],
    "users": ["id"],
    "tags": ["id"],
    "summary_templates": ["id"],
    "webhooks": ["id"],
    "webhook_event_types": ["name"],
    "crm_people": ["id"],
    "crm_companies": ["id"],
    "crm_deals": ["id"],
    "contacts": ["id"],
    "contact_details": ["id"],
    "calls": ["id"],
    "team_metrics_daily": ["date", "user_id"],
    "outbound_metrics_daily": ["date", "user_id"],
}
CURSORS = {"conversations": "last_activity", "conversation_items": "date", "calls": "start_date", "crm_people": "updated_at", "crm_companies": "updated_at", "crm_deals": "updated_at", "contact_details": "changed_at", "team_metrics_daily": "date", "outbound_metrics_daily": "date"}


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    messages: List[dict] = field(default_factory=list)

    def of_type(self, kind: str) -> List[dict]:
        return [m for m in self.messages if m.get("type") == kind]

    def records(self, stream: Optional[str] = None) -> List[dict]:
        return [m["record"]["data"] for m in self.of_type("RECORD") if stream is None or m["record"]["stream"] == stream]

    def records_by_stream(self) -> Dict[str, List[dict]]:
        out: Dict[str, List[dict]] = {}
        for m in self.of_type("RECORD"):
            out.setdefault(m["record"]["stream"], []).append(m["record"]["data"])
        return out

    def states(self) -> List[dict]:
        return [m["state"] for m in self.of_type("STATE")]

    def last_state_per_stream(self) -> List[dict]:
        """What Airbyte would save and pass back as --state: the newest state message of each stream."""
        latest: Dict[str, dict] = {}
        for state in self.states():
            if state.get("type") == "STREAM":
                latest[state["stream"]["stream_descriptor"]["name"]] = {"type": "STREAM", "stream": state["stream"]}
        return list(latest.values())

    def logs(self, level: Optional[str] = None) -> List[str]:
        return [m["log"]["message"] for m in self.of_type("LOG") if level is None or m["log"]["level"] == level]

    def errors(self) -> List[dict]:
        return [m["trace"]["error"] for m in self.of_type("TRACE") if m["trace"].get("type") == "ERROR"]

    def connection_status(self) -> dict:
        statuses = self.of_type("CONNECTION_STATUS")
        assert len(statuses) == 1, f"expected one CONNECTION_STATUS, got {len(statuses)}: {self.stdout[-2000:]}"
        return statuses[0]["connectionStatus"]

    def assert_secret_absent(self, secret: str) -> None:
        for name, text in (("stdout", self.stdout), ("stderr", self.stderr)):
            assert secret not in text, f"the API key appears in {name}"


SOURCE_DECLARATIVE_MANIFEST = str(Path(sys.executable).with_name("source-declarative-manifest"))


def run_source(command: str, config: Optional[Mapping[str, Any]] = None, catalog: Optional[Mapping[str, Any]] = None,
               state: Optional[Iterable[Mapping[str, Any]]] = None, timeout: float = 300, env: Optional[Mapping[str, str]] = None,
               executable: str = SOURCE_ALLO) -> Run:
    """Runs `executable` (the installed `source-allo` command unless said otherwise) as Airbyte does."""
    with tempfile.TemporaryDirectory(prefix="source-allo-test-") as tmp:
        args = [executable, command]
        for flag, payload in (("--config", config), ("--catalog", catalog), ("--state", state)):
            if payload is not None:
                path = Path(tmp) / f"{flag[2:]}.json"
                path.write_text(json.dumps(payload if not isinstance(payload, Iterable) or isinstance(payload, Mapping) else list(payload)))
                args += [flag, str(path)]
        proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env)
    messages = []
    for line in proc.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                messages.append(json.loads(line))
            except ValueError:
                pass
    return Run(proc.returncode, proc.stdout, proc.stderr, messages)


def catalog_for(streams: Iterable[str], incremental: bool = True) -> dict:
    entries = []
    for name in streams:
        cursor = CURSORS.get(name)
        use_incremental = incremental and cursor is not None
        entries.append({
            "stream": {"name": name, "json_schema": load_schema(name), "supported_sync_modes": ["full_refresh", "incremental"] if cursor else ["full_refresh"],
                       "source_defined_cursor": bool(cursor), "default_cursor_field": [cursor] if cursor else [],
                       "source_defined_primary_key": [[k] for k in PRIMARY_KEYS[name]]},
            "sync_mode": "incremental" if use_incremental else "full_refresh",
            "destination_sync_mode": "append_dedup" if use_incremental else "overwrite",
            "cursor_field": [cursor] if use_incremental else [],
            "primary_key": [[k] for k in PRIMARY_KEYS[name]],
        })
    return {"streams": entries}


def load_schema(stream: str) -> dict:
    return json.loads((SCHEMAS / f"{stream}.json").read_text())


_FORMAT_CHECKER = jsonschema.FormatChecker(formats=())
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@_FORMAT_CHECKER.checks("date-time")
def _is_datetime(value: Any) -> bool:
    # Allo sends both zoned (v2) and zone-less (CRM, v1) timestamps; both are valid here.
    return not isinstance(value, str) or bool(_DATETIME.match(value))


@_FORMAT_CHECKER.checks("date")
def _is_date(value: Any) -> bool:
    return not isinstance(value, str) or bool(_DATE.match(value))


def assert_records_match_schema(stream: str, records: Iterable[Mapping[str, Any]]) -> int:
    validator = jsonschema.Draft7Validator(load_schema(stream), format_checker=_FORMAT_CHECKER)
    count = 0
    for record in records:
        errors = sorted(validator.iter_errors(record), key=lambda e: list(e.path))
        assert not errors, f"{stream} record {record.get('id') or record} does not match its schema: {errors[0].message} at {list(errors[0].path)}"
        count += 1
    return count


def key_of(stream: str, record: Mapping[str, Any]) -> tuple:
    if stream == "phone_numbers" and "id" not in record:
        # The API has no id; the connector keys a number by itself and a sender ID by its name.
        return (record.get("number") or f"sender_id:{record.get('name')}",)
    return tuple(record.get(k) for k in PRIMARY_KEYS[stream])


def assert_records_equal_truth(stream: str, records: List[Mapping[str, Any]], truth: List[Mapping[str, Any]]) -> None:
    """Every true row emitted (no missing), nothing else (no extra), each field as the API has it."""
    got = {key_of(stream, r): r for r in records}
    want = {key_of(stream, r): r for r in truth}
    missing = sorted(set(want) - set(got), key=str)
    extra = sorted(set(got) - set(want), key=str)
    assert not missing, f"{stream}: {len(missing)} record(s) missing, e.g. {missing[:3]}"
    assert not extra, f"{stream}: {len(extra)} unexpected record(s), e.g. {extra[:3]}"
    for key, expected in want.items():
        actual = got[key]
        differing = {k: (actual.get(k), v) for k, v in expected.items() if actual.get(k) != v}
        assert not differing, f"{stream} {key}: fields differ from the API (got, want): {differing}"
