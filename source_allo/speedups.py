"""Costs of airbyte-cdk that every sync pays for nothing, removed without changing any result.
Imported first by `source_allo/__init__.py`.

Start-up: serpyco-rs, which airbyte-cdk uses to (de)serialize Airbyte messages, builds a JSON schema of
every protocol class when `airbyte_cdk.models` is imported, and for the field descriptions in those
schemas it reads and parses the Python source of each protocol dataclass (`attributes_doc`): about
0.6 s of a 1.4 s start, on every sync. The descriptions play no part in (de)serializing, so they are
skipped. This has to happen before airbyte_cdk is imported; when something imported it earlier (a
test runner), only the start-up time differs.

Per record: see `install_fast_timestamp_parsing` and `install_cached_slice_hash`.
"""

from __future__ import annotations

try:
    import attributes_doc
except ImportError:  # a serpyco-rs release without it: nothing to skip
    attributes_doc = None


def _no_attribute_descriptions(cls: type) -> dict[str, str]:
    return {}


if attributes_doc is not None:
    attributes_doc.get_attributes_doc = _no_attribute_descriptions


_FAST_FORMATS = {"%Y-%m-%dT%H:%M:%SZ": 20, "%Y-%m-%dT%H:%M:%S": 19}


def install_fast_timestamp_parsing() -> None:
    """Every record of an incremental stream has its cursor value parsed three or four times by the
    CDK (record filter, per-partition cursor, state), each time with `datetime.strptime`: a quarter of
    the CPU of a conversations sync. Allo's timestamps are ISO 8601 (`2026-04-28T10:30:00Z`, or
    without the zone on CRM and v1 data), which `datetime.fromisoformat` parses fifty times faster.
    For exactly those two formats, and only strings of exactly their shape, parse them that way;
    anything else, and any value fromisoformat refuses, goes to the CDK's own parser, so results and
    errors are strptime's (unit_tests/test_speed.py compares them)."""
    from datetime import datetime, timezone

    from airbyte_cdk.sources.declarative.datetime.datetime_parser import DatetimeParser

    if getattr(DatetimeParser.parse, "_allo_fast_path", False):
        return
    strptime_parse = DatetimeParser.parse

    def parse(self: DatetimeParser, date: object, format: str) -> datetime:
        length = _FAST_FORMATS.get(format)
        if (
            length is not None
            and type(date) is str
            and len(date) == length
            and date.isascii()
            and date[4] == "-" and date[7] == "-" and date[10] == "T" and date[13] == ":" and date[16] == ":"
            and (length == 19 or date[19] == "Z")
            and date[:4].isdigit() and date[5:7].isdigit() and date[8:10].isdigit()
            and date[11:13].isdigit() and date[14:16].isdigit() and date[17:19].isdigit()
        ):
            try:
                return datetime.fromisoformat(date[:19]).replace(tzinfo=timezone.utc)
            except ValueError:
                pass  # e.g. month 13: let strptime raise its own error
        return strptime_parse(self, date, format)

    parse._allo_fast_path = True  # type: ignore[attr-defined]
    DatetimeParser.parse = parse  # type: ignore[method-assign]


def install_cached_slice_hash() -> None:
    """The CDK's cursor keys its bookkeeping by the record's StreamSlice, and hashing a StreamSlice
    serializes it to JSON and runs SHA-256 over it: twice per record, a sixth of the CPU of a
    conversation_items sync. A StreamSlice is immutable (its `__setitem__` raises), so its hash is
    computed once and kept on it."""
    from airbyte_cdk.sources.types import StreamSlice

    if getattr(StreamSlice.__hash__, "_allo_cached", False):
        return
    compute_hash = StreamSlice.__hash__

    def __hash__(self: StreamSlice) -> int:
        cached = self.__dict__.get("_allo_hash")
        if cached is None:
            cached = self.__dict__["_allo_hash"] = compute_hash(self)
        return cached

    __hash__._allo_cached = True  # type: ignore[attr-defined]
    StreamSlice.__hash__ = __hash__  # type: ignore[method-assign]
