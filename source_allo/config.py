"""Validation and normalisation of the user's config and of the incoming state.

Runs before any request: bad input gets a message that names the field and the fix, never a stack
trace and never a request sent with a half-valid config.
"""

from __future__ import annotations

import copy
import ipaddress
import logging
import re
from datetime import datetime, timezone
from typing import Any, List, Mapping, MutableMapping, Optional
from urllib.parse import urlsplit

from airbyte_cdk.models import FailureType
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

logger = logging.getLogger("airbyte")

E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_KEY_PREFIX = re.compile(r"^(api-key|bearer)\s+", re.IGNORECASE)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?$")

# Streams whose state is kept per Allo number.
PER_NUMBER_STREAMS = {"conversations": "last_activity"}


class ConfigError(AirbyteTracedException):
    def __init__(self, message: str):
        super().__init__(message=message, internal_message=message, failure_type=FailureType.config_error)


def normalize_config(config: Optional[Mapping[str, Any]]) -> Optional[dict]:
    """A validated copy of `config` with the key's prefix stripped and defaults made explicit."""
    if config is None:
        return None
    config = dict(config)

    key = config.get("api_key")
    if not isinstance(key, str) or not key.strip():
        raise ConfigError(
            "The API key (`api_key`) is empty. Paste the key created in Allo under Settings > API "
            "(https://web.withallo.com/settings/api)."
        )
    key = _KEY_PREFIX.sub("", key.strip()).strip()
    if key.lower() in ("api-key", "bearer"):
        key = ""
    if not key or any(c.isspace() for c in key):
        raise ConfigError(
            "The API key (`api_key`) is malformed: it must be one word such as `ak_live_...`, optionally "
            "preceded by `Api-Key `. Paste the key again from Allo's Settings > API page."
        )
    config["api_key"] = key

    config["api_url"] = _api_url(config.get("api_url"))

    start = config.get("start_date")
    if start in (None, ""):
        config.pop("start_date", None)
    else:
        config["start_date"] = _start_date(start)

    numbers = config.get("allo_numbers") or []
    if not isinstance(numbers, list):
        raise ConfigError("`allo_numbers` must be a list of phone numbers such as [\"+14155550100\"].")
    for number in numbers:
        if not isinstance(number, str) or not E164.match(number.strip()):
            raise ConfigError(
                f"`allo_numbers` contains {number!r}, which is not an E.164 phone number. Write it as a plus sign, "
                "country code and number with no spaces or dashes, e.g. +14155550100, or leave the list empty "
                "to sync every number."
            )
    config["allo_numbers"] = [n.strip() for n in numbers]

    config["include_transcripts"] = _boolean(config, "include_transcripts", False)
    config["lookback_window_days"] = _integer(config, "lookback_window_days", 1, 0, 30)
    config["conversation_items_window_days"] = _integer(config, "conversation_items_window_days", 30, 1, 366)
    config["num_workers"] = _integer(config, "num_workers", 4, 2, 8)
    config["request_timeout_seconds"] = _integer(config, "request_timeout_seconds", 60, 1, 600)
    return config


def _api_url(value: Any) -> str:
    if value in (None, ""):
        return "https://api.withallo.com"
    parts = urlsplit(str(value).strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError(
            f"`api_url` {value!r} is not an http(s) URL. Leave it empty to use https://api.withallo.com."
        )
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ConfigError(
            f"`api_url` {value!r} uses plain http:// with a non-local host, which would send the API key in clear. "
            "Use https://, or http:// only with localhost / 127.0.0.1 (a local test server)."
        )
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigError(f"`api_url` must be a base URL such as https://api.withallo.com, without query or credentials.")
    return f"{parts.scheme}://{parts.netloc}{parts.path}".rstrip("/")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _start_date(value: Any) -> str:
    text = str(value).strip()
    try:
        if _DATE.match(text):
            parsed = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=timezone.utc)
        elif _DATETIME.match(text):
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
            parsed = (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)
        else:
            raise ValueError
    except ValueError:
        raise ConfigError(
            f"`start_date` {value!r} is not a valid date. Use YYYY-MM-DD or YYYY-MM-DDTHH:mm:ssZ (UTC), "
            "e.g. 2025-01-01 or 2025-01-01T00:00:00Z, or leave it empty."
        ) from None
    if parsed > datetime.now(timezone.utc):
        raise ConfigError(f"`start_date` {value!r} is in the future. Use a past date, or leave it empty.")
    if parsed.year < 2000:
        raise ConfigError(f"`start_date` {value!r} is before 2000. Use the date your Allo history begins, or leave it empty.")
    return parsed.strftime("%Y-%m-%dT%H:%M:%SZ")


def _boolean(config: Mapping[str, Any], name: str, default: bool) -> bool:
    value = config.get(name, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ConfigError(f"`{name}` must be true or false, not {value!r}.")
    return value


def _integer(config: Mapping[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = config.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"`{name}` must be a whole number from {low} to {high}, not {value!r}.")
    return value


# --------------------------------------------------------------------------------------------- state


def sanitize_state(state: Optional[List[Any]]) -> Optional[List[Any]]:
    """Makes an incoming state safe to resume from, or refuses it with a clear error.

    * Per-number streams: the CDK would start a number it has no entry for (a number added since the
      last sync) at the *global* cursor, skipping that number's history. Dropping the global value
      makes such a number start at `start_date` instead.
    * An entry whose cursor is not a readable timestamp (hand-edited, from another version) is dropped
      with a warning: that number or stream is re-read from `start_date` (duplicates, never a gap).
    """
    if not state:
        return state
    if not isinstance(state, list):
        raise ConfigError("The state must be a JSON list of Airbyte state messages; start without state or fix the file.")
    cleaned = []
    for message in state:
        message = copy.deepcopy(message)
        stream = (message or {}).get("stream") if isinstance(message, dict) else None
        if not isinstance(stream, dict):
            cleaned.append(message)
            continue
        name = ((stream.get("stream_descriptor") or {}).get("name")) or ""
        stream_state = stream.get("stream_state")
        if name in PER_NUMBER_STREAMS and isinstance(stream_state, dict):
            stream["stream_state"] = _sanitize_per_number_state(name, PER_NUMBER_STREAMS[name], stream_state)
        elif isinstance(stream_state, dict):
            stream["stream_state"] = _sanitize_flat_state(name, stream_state)
        elif stream_state is not None:
            logger.warning(f"Ignoring the saved state of stream `{name}` (not an object): it is read again from start_date.")
            stream["stream_state"] = {}
        cleaned.append(message)
    return cleaned


def _sanitize_per_number_state(name: str, cursor_field: str, stream_state: Mapping[str, Any]) -> dict:
    if "states" not in stream_state:
        if cursor_field in stream_state and not _is_timestamp(stream_state[cursor_field]):
            logger.warning(f"Ignoring the saved state of `{name}`: {cursor_field} is not a timestamp. Every number is read again.")
            return {}
        return dict(stream_state)
    kept = []
    for entry in stream_state.get("states") or []:
        number = ((entry or {}).get("partition") or {}).get("allo_number") if isinstance(entry, dict) else None
        value = ((entry or {}).get("cursor") or {}).get(cursor_field) if isinstance(entry, dict) else None
        if isinstance(number, str) and _is_timestamp(value):
            kept.append({"partition": {"allo_number": number}, "cursor": {cursor_field: value}})
        else:
            logger.warning(
                f"Ignoring an unreadable saved state entry of `{name}` ({entry!r}): that number is read again from start_date."
            )
    result = {"use_global_cursor": False, "states": kept}
    if isinstance(stream_state.get("lookback_window"), int):
        result["lookback_window"] = stream_state["lookback_window"]
    return result


def _sanitize_flat_state(name: str, stream_state: Mapping[str, Any]) -> dict:
    result = dict(stream_state)
    for key, value in stream_state.items():
        if key in ("date", "updated_at", "last_activity") and not _is_timestamp(value):
            logger.warning(f"Ignoring the saved state of `{name}`: {key}={value!r} is not a date. The stream is read again from start_date.")
            return {}
    return result


def _is_timestamp(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    text = value.strip()
    if _DATE.match(text):
        try:
            datetime.strptime(text, "%Y-%m-%d")
            return True
        except ValueError:
            return False
    if _DATETIME.match(text):
        try:
            datetime.fromisoformat(text.replace("Z", "+00:00"))
            return True
        except ValueError:
            return False
    return False
