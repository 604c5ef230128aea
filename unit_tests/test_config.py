"""The config and the saved state, before anything is requested from Allo.

* Config: the manifest's `spec.config_normalization_rules` (NormalizeAlloConfig, then ValidApiKey,
  ValidApiUrl and ValidStartDate through DpathValidators) and the spec's JSON schema. Bad input is
  refused with a config error that names the field.
* State: RepairAlloState, the state migration of every incremental stream. Unreadable parts are dropped
  with a warning naming the stream and the value (read again, never skipped).
"""

import copy
import json
import logging
from datetime import datetime

import pytest

from airbyte_cdk.models import AirbyteStateMessage, AirbyteStateMessageSerializer, FailureType
from airbyte_cdk.sources.declarative.models.declarative_component_schema import (
    CustomStateMigration as CustomStateMigrationModel,
)
from airbyte_cdk.sources.declarative.models.declarative_component_schema import Spec as SpecModel
from airbyte_cdk.sources.utils.schema_helpers import check_config_against_spec_or_exit
from airbyte_cdk.utils.airbyte_secrets_utils import filter_secrets
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_allo import build_source
from source_allo.components import (
    NormalizeAlloConfig,
    RepairAlloState,
    ValidAlloNumbers,
    ValidApiKey,
    ValidApiUrl,
    ValidStartDate,
    parse_instant,
)
from unit_tests.manifest_components import build, resolved_manifest, stream_definition, stream_names

KEY = "ak_live_unitconfig0123456789"


def _spec():
    return build(SpecModel, resolved_manifest()["spec"])


def _normalized(config):
    """The config as the source sees it: the manifest's transformations applied, then its validations."""
    spec = _spec()
    mutable = copy.deepcopy(config)
    spec.transform_config(mutable)
    spec.validate_config(mutable)
    return mutable


def _config_error(call):
    with pytest.raises(AirbyteTracedException) as raised:
        call()
    assert raised.value.failure_type == FailureType.config_error
    return raised.value.message


# ============================================================================ NormalizeAlloConfig


@pytest.mark.parametrize(
    "raw",
    [
        KEY,
        f"Api-Key {KEY}",
        f"api-key   {KEY}",
        f"API-KEY {KEY}",
        f"Bearer {KEY}",
        f"bearer {KEY}",
        f"BEARER\t{KEY}",
        f"  {KEY}\n",
        f"  Api-Key {KEY}  ",
    ],
)
def test_key_prefix_and_blanks_are_removed(raw):
    assert _normalized({"api_key": raw})["api_key"] == KEY


def test_a_prefix_word_inside_the_key_is_kept():
    config = {"api_key": "ak_live_bearer_token"}
    NormalizeAlloConfig().transform(config)
    assert config["api_key"] == "ak_live_bearer_token"


def test_the_bare_key_is_masked_in_logs():
    bare = "ak_live_maskme_4f1c9e"
    NormalizeAlloConfig().transform({"api_key": f"Bearer {bare}"})
    assert bare not in filter_secrets(f"request failed with key {bare}")


@pytest.mark.parametrize(
    "value, expected",
    [
        ("2025-01-01", "2025-01-01T00:00:00Z"),
        (" 2025-01-01 ", "2025-01-01T00:00:00Z"),
        ("2025-01-01T10:20:30Z", "2025-01-01T10:20:30Z"),
    ],
)
def test_start_date_becomes_a_timestamp(value, expected):
    assert _normalized({"api_key": KEY, "start_date": value})["start_date"] == expected


@pytest.mark.parametrize("value", ["", None])
def test_an_empty_start_date_is_removed(value):
    assert "start_date" not in _normalized({"api_key": KEY, "start_date": value})


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, "https://api.withallo.com"),
        ("", "https://api.withallo.com"),
        ("   ", "https://api.withallo.com"),
        ("https://api.withallo.com/", "https://api.withallo.com"),
        (" http://127.0.0.1:8080/ ", "http://127.0.0.1:8080"),
        ("http://localhost:9", "http://localhost:9"),
    ],
)
def test_api_url_default_and_trailing_slash(value, expected):
    assert _normalized({"api_key": KEY, "api_url": value})["api_url"] == expected


def test_a_missing_api_url_gets_the_default():
    assert _normalized({"api_key": KEY})["api_url"] == "https://api.withallo.com"


def test_other_fields_are_left_alone():
    config = {"api_key": KEY, "allo_numbers": ["+14155550100"], "lookback_window_days": 3, "include_transcripts": True}
    assert _normalized(config) == {**config, "api_url": "https://api.withallo.com"}


def test_the_transformation_never_raises_on_odd_values():
    config = {"api_key": 12345, "api_url": 8080, "start_date": 20250101}
    NormalizeAlloConfig().transform(config)
    assert config == {"api_key": 12345, "api_url": 8080, "start_date": 20250101}


def test_the_source_runs_on_the_normalized_config(tmp_path):
    source = build_source(config={"api_key": f"Api-Key {KEY}", "start_date": "2025-03-04", "api_url": "http://127.0.0.1:8080/"})
    config = source.configure({}, str(tmp_path))
    assert (config["api_key"], config["start_date"], config["api_url"]) == (KEY, "2025-03-04T00:00:00Z", "http://127.0.0.1:8080")


# ============================================================================ validations


@pytest.mark.parametrize("raw", ["", "   ", "Api-Key ", "Bearer", "api-key"])
def test_an_empty_key_is_refused_naming_the_field_and_where_to_get_one(raw):
    message = _config_error(lambda: _normalized({"api_key": raw}))
    assert "`api_key`" in message and "empty" in message
    assert "Settings > API" in message


@pytest.mark.parametrize("raw", ["ak live abc", "Api-Key ak_live abc", "ak_live\tabc"])
def test_a_key_of_several_words_is_refused(raw):
    message = _config_error(lambda: _normalized({"api_key": raw}))
    assert "`api_key`" in message and "malformed" in message


@pytest.mark.parametrize("value", [None, 42, ""])
def test_valid_api_key_refuses_non_strings_and_empty(value):
    message = _config_error(lambda: ValidApiKey().validate(value))
    assert "`api_key`" in message


def test_valid_api_key_accepts_one_word():
    ValidApiKey().validate(KEY)


@pytest.mark.parametrize(
    "url, needle",
    [
        ("ftp://api.withallo.com", "not an http(s) URL"),
        ("api.withallo.com", "not an http(s) URL"),
        ("https://", "not an http(s) URL"),
        ("http://api.withallo.com", "plain http://"),
        ("http://10.0.0.5:8080", "plain http://"),
        ("http://127.0.0.1.example.com", "plain http://"),
        ("https://user:pw@api.withallo.com", "without query or credentials"),
        ("https://api.withallo.com?key=1", "without query or credentials"),
        ("https://api.withallo.com#x", "without query or credentials"),
    ],
)
def test_unsafe_or_malformed_api_url_is_refused(url, needle):
    message = _config_error(lambda: ValidApiUrl().validate(url))
    assert "`api_url`" in message and needle in message


@pytest.mark.parametrize(
    "url",
    ["https://api.withallo.com", "https://eu.api.withallo.com:8443", "http://127.0.0.1:8080", "http://localhost:9", "http://[::1]:8080", "http://127.0.0.2"],
)
def test_https_and_loopback_http_are_accepted(url):
    ValidApiUrl().validate(url)


def test_the_manifest_validates_api_url_after_normalising_it():
    message = _config_error(lambda: _normalized({"api_key": KEY, "api_url": "http://api.example.com/"}))
    assert "`api_url`" in message and "'http://api.example.com'" in message


@pytest.mark.parametrize(
    "value, needle",
    [
        ("2025-02-30", "not a valid date"),
        ("2025-13-01", "not a valid date"),
        ("yesterday", "not a valid date"),
        ("01/02/2025", "not a valid date"),
        ("2025-01-01 10:00", "not a valid date"),
        (20250101, "not a valid date"),
        ("2999-01-01", "in the future"),
        ("2999-01-01T00:00:00Z", "in the future"),
        ("1999-12-31", "before 2000"),
    ],
)
def test_impossible_start_date_is_refused(value, needle):
    message = _config_error(lambda: ValidStartDate().validate(value))
    assert "`start_date`" in message and needle in message


@pytest.mark.parametrize("value", ["2025-01-01", "2025-01-01T00:00:00Z", "2025-01-01T12:00:00+02:00", "2000-01-01T00:00:00Z"])
def test_real_past_start_dates_are_accepted(value):
    ValidStartDate().validate(value)


def test_the_manifest_refuses_a_future_start_date_given_as_a_date():
    message = _config_error(lambda: _normalized({"api_key": KEY, "start_date": "2999-01-01"}))
    assert "`start_date`" in message and "2999-01-01T00:00:00Z" in message


def test_a_config_without_start_date_is_valid():
    assert _normalized({"api_key": KEY}) == {"api_key": KEY, "api_url": "https://api.withallo.com"}


@pytest.mark.parametrize(
    "value, expected",
    [
        ("2026-05-01T10:00:00Z", "2026-05-01T10:00:00+00:00"),
        ("2026-05-01T10:00:00.123Z", "2026-05-01T10:00:00.123000+00:00"),
        ("2026-05-01T12:00:00+02:00", "2026-05-01T10:00:00+00:00"),
        ("2026-05-01T10:00:00", "2026-05-01T10:00:00+00:00"),
        ("2026-05-01", "2026-05-01T00:00:00+00:00"),
    ],
)
def test_parse_instant_reads_allo_timestamps_as_utc(value, expected):
    parsed = parse_instant(value)
    assert parsed is not None and parsed.tzinfo is not None
    assert parsed == datetime.fromisoformat(expected)


@pytest.mark.parametrize("value", [None, 12345, "", "yesterday", "2026-02-30", "2026-05-01T25:00:00Z", ["2026-05-01"]])
def test_parse_instant_refuses_what_is_not_a_timestamp(value):
    assert parse_instant(value) is None


# ============================================================================ spec schema


@pytest.fixture(scope="module")
def spec():
    return build_source().spec(logging.getLogger("airbyte"))


def test_spec_fields(spec):
    properties = spec.connectionSpecification["properties"]
    assert set(properties) == {
        "api_key", "start_date", "allo_numbers", "include_transcripts", "lookback_window_days", "api_url",
        "fail_on_missing_scope", "conversation_items_window_days",
    }
    assert "request_timeout_seconds" not in properties
    assert spec.connectionSpecification["required"] == ["api_key"]
    assert properties["api_key"]["airbyte_secret"] is True
    hidden = properties["fail_on_missing_scope"]
    assert hidden["airbyte_hidden"] is True and hidden["default"] is False and hidden["type"] == "boolean"


@pytest.mark.parametrize("number", ["+1 415 555 0100", "14155550100", "+1-415-555-0100", "+0123456789", "", "+1234", 14155550100, None])
def test_a_malformed_e164_number_is_refused_naming_it(number):
    message = _config_error(lambda: _normalized({"api_key": KEY, "allo_numbers": ["+14155550100", number]}))
    assert "`allo_numbers`" in message and repr(number) in message and "E.164" in message


@pytest.mark.parametrize("value", ["+14155550100", {"number": "+14155550100"}, 14155550100])
def test_allo_numbers_that_is_not_a_list_is_refused(value):
    message = _config_error(lambda: ValidAlloNumbers().validate(value))
    assert "`allo_numbers` must be a list" in message


@pytest.mark.parametrize("numbers", [["+14155550100", "+33612345678", "+442071230300"], [], None])
def test_valid_numbers_are_accepted(numbers):
    ValidAlloNumbers().validate(numbers)
    assert _normalized({"api_key": KEY, "allo_numbers": numbers})["allo_numbers"] == numbers


@pytest.mark.parametrize(
    "field, value",
    [
        ("lookback_window_days", -1),
        ("lookback_window_days", 31),
        ("lookback_window_days", "2"),
        ("include_transcripts", "yes"),
        ("conversation_items_window_days", 0),
        ("conversation_items_window_days", 367),
        ("fail_on_missing_scope", "true"),
    ],
)
def test_out_of_range_options_are_refused(spec, field, value):
    _config_error(lambda: check_config_against_spec_or_exit({"api_key": KEY, field: value}, spec))


def test_a_key_is_required(spec):
    message = _config_error(lambda: check_config_against_spec_or_exit({"start_date": "2025-01-01"}, spec))
    assert "api_key" in message


@pytest.mark.parametrize("value", ["2025-01-01", "2025-01-01T00:00:00Z"])
def test_the_spec_accepts_both_start_date_forms(spec, value):
    check_config_against_spec_or_exit({"api_key": KEY, "start_date": value}, spec)


# ============================================================================ RepairAlloState


def _repair(stream_name="conversations", cursor_field="last_activity", per_partition=True):
    return RepairAlloState(config={}, parameters={}, stream_name=stream_name, cursor_field=cursor_field, per_partition=per_partition)


def _entry(number, cursor, field="last_activity"):
    # As the CDK writes a per-number entry: its parent-stream partitions carry an empty `parent_slice`.
    return {"partition": {"allo_number": number, "parent_slice": {}}, "cursor": {field: cursor}}


def _warnings(caplog):
    return [record.getMessage() for record in caplog.records if record.name == "airbyte" and record.levelno == logging.WARNING]


@pytest.fixture(autouse=True)
def _capture_airbyte_warnings(caplog):
    caplog.set_level(logging.INFO, logger="airbyte")


def test_per_partition_docstring_example(caplog):
    before = {
        "use_global_cursor": False,
        "state": {"last_activity": "2026-05-01T10:00:00Z"},
        "states": [
            {"partition": {"allo_number": "+14155550100"}, "cursor": {"last_activity": "2026-05-01T10:00:00Z"}},
            {"partition": {"allo_number": "+14155550101"}, "cursor": {"last_activity": "yesterday"}},
            {"partition": {"allo_number": "+14155550102"}},
        ],
        "lookback_window": 86400,
    }
    original = copy.deepcopy(before)
    after = _repair().migrate(before)
    assert after == {
        "use_global_cursor": False,
        "states": [{"partition": {"allo_number": "+14155550100", "parent_slice": {}}, "cursor": {"last_activity": "2026-05-01T10:00:00Z"}}],
        "lookback_window": 86400,
    }
    assert before == original, "the migration must not change the state it was given"
    warnings = _warnings(caplog)
    assert len(warnings) == 2
    assert "`conversations`" in warnings[0] and "'yesterday'" in warnings[0] and "+14155550101" in warnings[0]
    assert "`conversations`" in warnings[1] and "+14155550102" in warnings[1] and "no `last_activity` cursor" in warnings[1]


def test_flat_docstring_examples(caplog):
    repair = _repair("crm_people", "updated_at", per_partition=False)
    assert repair.migrate({"updated_at": "not a date"}) == {}
    (warning,) = _warnings(caplog)
    assert "`crm_people`" in warning and "'not a date'" in warning and "`updated_at`" in warning
    assert repair.migrate({"updated_at": "2026-05-01T10:00:00Z"}) == {"updated_at": "2026-05-01T10:00:00Z"}
    assert len(_warnings(caplog)) == 1


@pytest.mark.parametrize("value", ["not a date", 12345, None, ["2026-05-01"], {"date": "2026-05-01"}, "2026-02-30", ""])
def test_an_unreadable_flat_cursor_is_dropped_with_a_warning(caplog, value):
    assert _repair("team_metrics_daily", "date", per_partition=False).migrate({"date": value}) == {}
    (warning,) = _warnings(caplog)
    assert "`team_metrics_daily`" in warning and repr(value) in warning


@pytest.mark.parametrize("value", [12345, "not a date", None, "2026-13-01"])
def test_an_unreadable_partition_cursor_is_dropped_naming_stream_number_and_value(caplog, value):
    state = {"states": [_entry("+14155550100", value), _entry("+14155550101", "2026-05-01T10:00:00Z")]}
    after = _repair().migrate(state)
    assert after["states"] == [_entry("+14155550101", "2026-05-01T10:00:00Z")]
    (warning,) = _warnings(caplog)
    assert "`conversations`" in warning and "+14155550100" in warning and repr(value) in warning
    assert "read again from start_date" in warning


@pytest.mark.parametrize("states", [{"+14155550100": "2026-05-01T10:00:00Z"}, "2026-05-01", 7, None])
def test_states_that_is_not_a_list_drops_the_stream_state(caplog, states):
    assert _repair().migrate({"states": states, "state": {"last_activity": "2026-05-01T10:00:00Z"}}) == {}
    (warning,) = _warnings(caplog)
    assert "`conversations`" in warning and "`states` is not a list" in warning
    assert json.dumps(states)[:20] in warning


@pytest.mark.parametrize(
    "entry, problem",
    [
        ({"partition": {"allo_number": "+14155550100"}}, "has no `last_activity` cursor"),
        ({"partition": {"allo_number": "+14155550100"}, "cursor": {}}, "has no `last_activity` cursor"),
        ({"partition": {"allo_number": "+14155550100"}, "cursor": "2026-05-01T10:00:00Z"}, "has no `last_activity` cursor"),
        ({"partition": {"allo_number": "+14155550100"}, "cursor": {"date": "2026-05-01"}}, "has no `last_activity` cursor"),
        ({"cursor": {"last_activity": "2026-05-01T10:00:00Z"}}, "has no `allo_number` partition"),
        ({"partition": {}, "cursor": {"last_activity": "2026-05-01T10:00:00Z"}}, "has no `allo_number` partition"),
        ({"partition": {"allo_number": ""}, "cursor": {"last_activity": "2026-05-01T10:00:00Z"}}, "has no `allo_number` partition"),
        ({"partition": {"allo_number": 14155550100}, "cursor": {"last_activity": "2026-05-01T10:00:00Z"}}, "has no `allo_number` partition"),
        ({"partition": {"id": "+14155550100"}, "cursor": {"last_activity": "2026-05-01T10:00:00Z"}}, "has no `allo_number` partition"),
        ("+14155550100", "is not an object"),
        (None, "is not an object"),
    ],
)
def test_entries_without_cursor_or_partition_are_dropped(caplog, entry, problem):
    good = _entry("+33612345678", "2026-05-02T00:00:00Z")
    after = _repair().migrate({"states": [entry, good]})
    assert after == {"use_global_cursor": False, "states": [good]}
    (warning,) = _warnings(caplog)
    assert "`conversations`" in warning and problem in warning


def test_the_partition_and_cursor_of_a_kept_entry_hold_only_the_cursor_field():
    entry = {"partition": {"allo_number": "+14155550100"}, "cursor": {"last_activity": "2026-05-01T10:00:00Z", "junk": 1}}
    assert _repair().migrate({"states": [entry]})["states"] == [_entry("+14155550100", "2026-05-01T10:00:00Z")]


def test_a_state_the_cdk_wrote_is_kept_as_written():
    # The shape of the last STATE message of `conversations` in a real sync against the fake API.
    written = {
        "use_global_cursor": False,
        "states": [
            {"partition": {"allo_number": "+14155550100", "parent_slice": {}}, "cursor": {"last_activity": "2026-11-19T21:17:18Z"}},
            {"partition": {"allo_number": "+33187650200", "parent_slice": {}}, "cursor": {"last_activity": "2026-11-20T09:09:44Z"}},
        ],
        "state": {"last_activity": "2026-11-20T09:09:44Z"},
        "lookback_window": 1,
        "parent_state": {},
    }
    after = _repair().migrate(copy.deepcopy(written))
    assert after["states"] == written["states"]


@pytest.mark.parametrize(
    "state",
    [
        {"cursor": "2026-05-01", "page": 3},  # another connector's keys
        {"last_activity_at": "2026-05-01T10:00:00Z"},
        {"updated": "2026-05-01T10:00:00Z", "shard": 2},
    ],
)
def test_another_connectors_state_is_dropped_per_partition(caplog, state):
    assert _repair().migrate(state) == {}
    (warning,) = _warnings(caplog)
    assert "`conversations`" in warning and "no `last_activity` cursor" in warning


def test_another_connectors_state_is_dropped_on_a_flat_stream(caplog):
    assert _repair("crm_deals", "updated_at", per_partition=False).migrate({"cursor": "abc", "page": 3}) == {}
    (warning,) = _warnings(caplog)
    assert "`crm_deals`" in warning and '"cursor": "abc"' in warning


@pytest.mark.parametrize("per_partition", [True, False])
@pytest.mark.parametrize("state", [["2026-05-01"], "2026-05-01T10:00:00Z", 20260501, True])
def test_a_state_that_is_not_an_object_is_dropped(caplog, per_partition, state):
    assert _repair(per_partition=per_partition).migrate(state) == {}
    (warning,) = _warnings(caplog)
    assert "`conversations`" in warning and "not an object" in warning and json.dumps(state) in warning


@pytest.mark.parametrize(
    "states, global_cursor, kept",
    [
        ([], {"last_activity": "2026-05-01T10:00:00Z"}, True),
        ([_entry("+14155550100", "garbage")], {"last_activity": "2026-05-01T10:00:00Z"}, True),
        ([_entry("+14155550100", "2026-04-01T00:00:00Z")], {"last_activity": "2026-05-01T10:00:00Z"}, False),
        ([], {"last_activity": "garbage"}, False),
        ([], {"date": "2026-05-01"}, False),
        ([], "2026-05-01T10:00:00Z", False),
    ],
)
def test_the_global_cursor_is_kept_only_when_no_number_has_its_own(states, global_cursor, kept):
    after = _repair().migrate({"use_global_cursor": False, "states": states, "state": global_cursor})
    if kept:
        assert after["state"] == {"last_activity": global_cursor["last_activity"]}
    else:
        assert "state" not in after


def test_a_state_with_only_the_global_cursor_keeps_it():
    state = {"state": {"last_activity": "2026-05-01T10:00:00Z"}}
    assert _repair().migrate(state) == {"use_global_cursor": False, "states": [], "state": {"last_activity": "2026-05-01T10:00:00Z"}}


def test_an_older_flat_state_of_a_per_number_stream_becomes_the_global_cursor(caplog):
    # conversation_items' state in the previous release: {"date": "2026-05-01"}.
    after = _repair("conversation_items", "date").migrate({"date": "2026-05-01"})
    assert after == {"use_global_cursor": False, "states": [], "state": {"date": "2026-05-01"}}
    assert _warnings(caplog) == []


def test_an_older_flat_state_that_is_unreadable_is_dropped(caplog):
    assert _repair("conversation_items", "date").migrate({"date": "last week"}) == {}
    (warning,) = _warnings(caplog)
    assert "`conversation_items`" in warning and "'last week'" in warning


@pytest.mark.parametrize("lookback, kept", [(86400, True), (0, True), (1, True), (-5, False), (True, False), ("86400", False), (1.5, False), (None, False)])
def test_lookback_window_is_kept_when_it_is_a_count_of_seconds(lookback, kept):
    after = _repair().migrate({"states": [_entry("+14155550100", "2026-05-01T10:00:00Z")], "lookback_window": lookback})
    assert after.get("lookback_window", "dropped") == (lookback if kept else "dropped")


def test_per_partition_is_read_from_a_string():
    assert _repair(per_partition="true").per_partition is True
    assert _repair(per_partition="False").per_partition is False


def test_an_empty_state_is_not_migrated():
    assert _repair().should_migrate({}) is False
    assert _repair().should_migrate(None) is False
    assert _repair().should_migrate({"states": []}) is True


def _repair_details():
    return RepairAlloState(config={}, parameters={}, stream_name="contact_details", cursor_field="changed_at",
                           parent_stream="contact_list")


def test_substream_docstring_example(caplog):
    # contact_details: only the parent's cursor is kept; the substream's own cursor is dropped, without a warning.
    before = {"use_global_cursor": True, "state": {"changed_at": "2026-05-01T10:00:00"}, "lookback_window": 12,
              "parent_state": {"contact_list": {"changed_at": "2026-05-01T10:00:00"}}}
    assert _repair_details().migrate(before) == {
        "use_global_cursor": True, "states": [], "parent_state": {"contact_list": {"changed_at": "2026-05-01T10:00:00"}}}
    assert _warnings(caplog) == []


def test_a_substream_cursor_saved_ahead_of_its_parent_is_not_kept():
    # A child cursor in 2099 would leave every partition the parent hands over without a slice to read.
    state = {"use_global_cursor": False, "state": {"changed_at": "2099-01-01T00:00:00"},
             "states": [{"partition": {"contact_id": "cnt_1", "parent_slice": {}}, "cursor": {"changed_at": "2099-01-01T00:00:00"}}],
             "parent_state": {"contact_list": {"changed_at": "2026-05-01T10:00:00Z"}}}
    assert _repair_details().migrate(state) == {
        "use_global_cursor": True, "states": [], "parent_state": {"contact_list": {"changed_at": "2026-05-01T10:00:00Z"}}}


@pytest.mark.parametrize("state, needle", [
    ({"parent_state": {"contact_list": {"changed_at": "yesterday"}}}, "'yesterday'"),
    ({"parent_state": {"contact_list": {}}}, "no `changed_at` cursor of its parent `contact_list`"),
    ({"parent_state": {"contacts": {"changed_at": "2026-05-01T10:00:00"}}}, "no `changed_at` cursor"),
    ({"parent_state": ["2026-05-01T10:00:00"]}, "no `changed_at` cursor"),
    ({"use_global_cursor": True, "state": {"changed_at": "2026-05-01T10:00:00"}}, "no `changed_at` cursor"),
    ({"changed_at": "2026-05-01T10:00:00"}, "no `changed_at` cursor"),
])
def test_a_substream_state_without_a_readable_parent_cursor_is_read_again_in_full(caplog, state, needle):
    assert _repair_details().migrate(state) == {}
    (warning,) = _warnings(caplog)
    assert "`contact_details`" in warning and needle in warning and "read again in full" in warning


# ---------------------------------------------------------------------------- RepairAlloState in the manifest


INCREMENTAL_STREAMS = {
    # stream: (cursor field, read per Allo number)
    "conversations": ("last_activity", True),
    "conversation_items": ("date", True),
    "crm_people": ("updated_at", False),
    "crm_companies": ("updated_at", False),
    "crm_deals": ("updated_at", False),
    "team_metrics_daily": ("date", False),
    "contact_details": ("changed_at", False),
    "calls": ("start_date", True),
    "outbound_metrics_daily": ("date", False),
}


def test_every_incremental_stream_is_listed_here():
    incremental = [name for name in stream_names() if stream_definition(name).get("incremental_sync")]
    assert sorted(incremental) == sorted(INCREMENTAL_STREAMS)


@pytest.mark.parametrize("name", sorted(INCREMENTAL_STREAMS))
def test_every_incremental_stream_repairs_its_state_with_its_own_cursor(name):
    definition = stream_definition(name)
    (migration_definition,) = definition["state_migrations"]
    migration = build(CustomStateMigrationModel, migration_definition)
    assert isinstance(migration, RepairAlloState)
    cursor_field, per_number = INCREMENTAL_STREAMS[name]
    assert migration.stream_name == name
    assert migration.cursor_field == definition["incremental_sync"]["cursor_field"] == cursor_field
    assert migration.per_partition is per_number
    # contact_details is partitioned by contact, but only its parent's cursor (`parent_state`) is repaired.
    assert bool(definition["retriever"].get("partition_router")) is (per_number or bool(migration.parent_stream))
    if migration.parent_stream:
        (parent,) = definition["retriever"]["partition_router"]["parent_stream_configs"]
        assert parent["incremental_dependency"] is True
        assert migration.parent_stream == parent["stream"]["name"]
        assert parent["stream"]["incremental_sync"]["cursor_field"] == cursor_field
    if per_number:
        assert migration.partition_field == definition["retriever"]["partition_router"]["parent_stream_configs"][0]["partition_field"]


def _state_message(stream, stream_state):
    return AirbyteStateMessageSerializer.load({"type": "STREAM", "stream": {"stream_descriptor": {"name": stream}, "stream_state": stream_state}})


def test_the_source_applies_the_repair_to_the_state_it_is_given(caplog):
    state = [
        _state_message("conversations", {
            "use_global_cursor": False,
            "state": {"last_activity": "2026-05-01T10:00:00Z"},
            "states": [_entry("+14155550100", "2026-05-01T10:00:00Z"), _entry("+14155550101", "yesterday")],
            "lookback_window": 86400,
        }),
        _state_message("crm_people", {"updated_at": "garbage"}),
        _state_message("crm_deals", {"updated_at": "2026-04-01T00:00:00Z"}),
    ]
    assert all(isinstance(message, AirbyteStateMessage) for message in state)
    source = build_source(config={"api_key": KEY, "api_url": "http://127.0.0.1:9"}, state=state)
    cursors = {stream.name: stream.cursor.state for stream in source.streams({})}
    assert cursors["conversations"]["states"] == [_entry("+14155550100", "2026-05-01T10:00:00Z")]
    assert "state" not in cursors["conversations"]
    assert cursors["crm_people"] == {"updated_at": "2000-01-01T00:00:00Z"}  # the stream's start
    assert cursors["crm_deals"] == {"updated_at": "2026-04-01T00:00:00Z"}
    warnings = _warnings(caplog)
    assert any("`conversations`" in w and "'yesterday'" in w for w in warnings)
    assert any("`crm_people`" in w and "'garbage'" in w for w in warnings)
    assert not any("`crm_deals`" in w for w in warnings)
