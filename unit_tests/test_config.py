"""Config and state validation: bad input is refused before any request, with a message naming the field."""

import pytest

from source_allo.config import ConfigError, normalize_config, sanitize_state


def _config(**overrides):
    return {"api_key": "ak_live_abc", **overrides}


@pytest.mark.parametrize("raw", ["ak_live_abc", "Api-Key ak_live_abc", "api-key   ak_live_abc", "  ak_live_abc\n", "Bearer ak_live_abc"])
def test_api_key_is_accepted_with_or_without_prefix(raw):
    assert normalize_config({"api_key": raw})["api_key"] == "ak_live_abc"


@pytest.mark.parametrize("raw", ["", "   ", "Api-Key ", "ak live abc"])
def test_empty_or_malformed_key_is_refused(raw):
    with pytest.raises(ConfigError) as error:
        normalize_config({"api_key": raw})
    assert "api_key" in error.value.message
    assert "Settings > API" in error.value.message


def test_missing_key_is_refused():
    with pytest.raises(ConfigError, match="api_key"):
        normalize_config({})


@pytest.mark.parametrize("value,expected", [("2025-01-01", "2025-01-01T00:00:00Z"), ("2025-01-01T10:20:30Z", "2025-01-01T10:20:30Z"), ("2025-01-01T12:00:00+02:00", "2025-01-01T10:00:00Z")])
def test_start_date_is_normalised_to_utc(value, expected):
    assert normalize_config(_config(start_date=value))["start_date"] == expected


@pytest.mark.parametrize("value", ["2025-02-30", "2025-13-01", "yesterday", "01/02/2025", "2999-01-01", "1970-01-01"])
def test_impossible_start_date_is_refused(value):
    with pytest.raises(ConfigError) as error:
        normalize_config(_config(start_date=value))
    assert "start_date" in error.value.message


@pytest.mark.parametrize("number", ["+1 415 555 0100", "14155550100", "+1-415-555-0100", "+0123456789", ""])
def test_malformed_e164_number_is_refused(number):
    with pytest.raises(ConfigError) as error:
        normalize_config(_config(allo_numbers=[number]))
    assert "allo_numbers" in error.value.message and "E.164" in error.value.message


def test_valid_numbers_are_kept():
    assert normalize_config(_config(allo_numbers=["+14155550100", "+33612345678"]))["allo_numbers"] == ["+14155550100", "+33612345678"]


@pytest.mark.parametrize("url", ["ftp://api.withallo.com", "api.withallo.com", "http://api.withallo.com", "http://10.0.0.5:8080", "https://user:pw@api.withallo.com"])
def test_unsafe_or_unknown_api_url_is_refused(url):
    with pytest.raises(ConfigError, match="api_url"):
        normalize_config(_config(api_url=url))


@pytest.mark.parametrize("url,expected", [("http://127.0.0.1:8080/", "http://127.0.0.1:8080"), ("http://localhost:9", "http://localhost:9"), ("https://api.withallo.com", "https://api.withallo.com"), (None, "https://api.withallo.com")])
def test_https_and_loopback_http_are_accepted(url, expected):
    assert normalize_config(_config(api_url=url))["api_url"] == expected


@pytest.mark.parametrize("field,value", [("lookback_window_days", -1), ("lookback_window_days", 31), ("lookback_window_days", "2"), ("include_transcripts", "yes"), ("conversation_items_window_days", 0)])
def test_out_of_range_options_are_refused(field, value):
    with pytest.raises(ConfigError, match=field):
        normalize_config(_config(**{field: value}))


def _message(name, stream_state):
    return {"type": "STREAM", "stream": {"stream_descriptor": {"name": name}, "stream_state": stream_state}}


def test_per_number_state_drops_global_cursor_so_new_numbers_start_at_start_date():
    state = [_message("conversations", {
        "use_global_cursor": False,
        "states": [{"partition": {"allo_number": "+14155550100"}, "cursor": {"last_activity": "2026-11-01T00:00:00Z"}}],
        "state": {"last_activity": "2026-11-01T00:00:00Z"},
        "lookback_window": 12,
    })]
    cleaned = sanitize_state(state)[0]["stream"]["stream_state"]
    assert "state" not in cleaned
    assert cleaned["states"] == state[0]["stream"]["stream_state"]["states"]


def test_unreadable_per_number_entries_are_dropped_not_trusted():
    state = [_message("conversations", {"states": [
        {"partition": {"allo_number": "+14155550100"}, "cursor": {"last_activity": 12345}},
        {"partition": {"allo_number": "+14155550101"}, "cursor": {"last_activity": "not a date"}},
        {"partition": {"allo_number": "+14155550102"}, "cursor": {"last_activity": "2026-11-01T00:00:00Z"}},
    ]})]
    cleaned = sanitize_state(state)[0]["stream"]["stream_state"]
    assert [s["partition"]["allo_number"] for s in cleaned["states"]] == ["+14155550102"]


def test_flat_state_with_wrong_type_falls_back_to_a_full_read():
    cleaned = sanitize_state([_message("conversation_items", {"date": ["2026-01-01"]})])
    assert cleaned[0]["stream"]["stream_state"] == {}


def test_good_flat_state_is_kept():
    cleaned = sanitize_state([_message("conversation_items", {"date": "2026-01-01"})])
    assert cleaned[0]["stream"]["stream_state"] == {"date": "2026-01-01"}
