"""Two syncs in one process (as PyAirbyte and the CDK's standard suite run them) behave like two processes:
nothing a first sync leaves behind (a cached list of numbers, a failure count, a warned-about stream)
changes what the second one reads. Compared with the `source-allo` command run as a subprocess on the same
data, with the state passed as the real `AirbyteStateMessage` objects."""

import json
from collections import Counter

from airbyte_cdk.models import AirbyteMessageSerializer, AirbyteStateMessageSerializer, ConfiguredAirbyteCatalogSerializer
from airbyte_cdk.test.entrypoint_wrapper import read

from integration_tests.conftest import config_for
from integration_tests.harness import catalog_for, run_source
from source_allo import build_source

STREAMS = ["conversations", "conversation_items", "calls", "phone_numbers"]


def in_process(config, catalog, state=None):
    configured = ConfiguredAirbyteCatalogSerializer.load(catalog)
    states = [AirbyteStateMessageSerializer.load(s) for s in state] if state else None
    output = read(build_source(config=config, catalog=configured, state=states), config, configured, states)
    messages = [AirbyteMessageSerializer.dump(m) for m in output.records + output.state_messages]
    assert not output.errors, [e.trace.error.message for e in output.errors]
    return messages


def records_of(messages):
    out = {}
    for m in messages:
        if m["type"] == "RECORD":
            out.setdefault(m["record"]["stream"], Counter())[json.dumps(m["record"]["data"], sort_keys=True)] += 1
    return out


def last_states(messages):
    latest = {}
    for m in messages:
        if m["type"] == "STATE" and m["state"].get("type") == "STREAM":
            latest[m["state"]["stream"]["stream_descriptor"]["name"]] = {"type": "STREAM", "stream": m["state"]["stream"]}
    return latest


def comparable(states):
    out = {}
    for name, message in states.items():
        state = dict(message["stream"]["stream_state"])
        state.pop("lookback_window", None)  # the seconds the sync took
        out[name] = state
    return out


def test_two_syncs_in_one_process_read_what_two_processes_read(fresh_api):
    config = config_for(fresh_api)
    catalog = catalog_for(STREAMS)

    first_sub = run_source("read", config, catalog)
    assert first_sub.returncode == 0, first_sub.errors()
    first_in = in_process(config, catalog)
    assert records_of(first_in) == records_of(first_sub.messages)
    assert comparable(last_states(first_in)) == comparable({s["stream"]["stream_descriptor"]["name"]: s for s in first_sub.last_state_per_stream()})

    # New activity, then the second sync of the same process, from the first one's state.
    added = fresh_api.add_activity(n=15)
    second_sub = run_source("read", config, catalog, state=first_sub.last_state_per_stream())
    second_in = in_process(config, catalog, state=list(last_states(first_in).values()))
    assert records_of(second_in) == records_of(second_sub.messages)
    assert comparable(last_states(second_in)) == comparable({s["stream"]["stream_descriptor"]["name"]: s for s in second_sub.last_state_per_stream()})
    new_ids = set(added["items"]) if isinstance(added, dict) and "items" in added else set()
    emitted = {json.loads(r)["id"] for r in records_of(second_in).get("conversation_items", {})}
    assert new_ids and new_ids <= emitted, "the second in-process sync missed new conversation items"
