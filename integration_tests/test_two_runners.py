"""One connector, two runners: Airbyte's own `source-declarative-manifest` runner, given `manifest.yaml` and
`components.py` the way Airbyte's platform injects them, gives the same sync as the `source-allo` command.

Both run as subprocesses against the same fake Allo API, on the same data: the catalog from `discover`, a
full read and an incremental read from the full read's state must give the same records and the same final
state. `spec` differs by design: the generic runner answers with its own spec (the connector's spec is in
the injected manifest), which the test asserts too.
"""

import hashlib
import json
import os
from collections import Counter

import pytest
import yaml

from integration_tests.conftest import config_for
from integration_tests.harness import (
    PRIMARY_KEYS,
    REPO,
    SOURCE_DECLARATIVE_MANIFEST,
    assert_records_match_schema,
    catalog_for,
    run_source,
)

pytestmark = pytest.mark.slow

MANIFEST = REPO / "source_allo" / "manifest.yaml"
COMPONENTS = REPO / "source_allo" / "components.py"


def injected(config: dict) -> dict:
    """The config as Airbyte's platform hands it to the runner of a manifest-only connector."""
    code = COMPONENTS.read_text(encoding="utf-8")
    return {
        **config,
        "__injected_declarative_manifest": yaml.safe_load(MANIFEST.read_text(encoding="utf-8")),
        "__injected_components_py": code,
        "__injected_components_py_checksums": {"md5": hashlib.md5(code.encode()).hexdigest()},
    }


def runner_env() -> dict:
    return {**os.environ, "AIRBYTE_ENABLE_UNSAFE_CODE": "true"}


def canonical_records(run) -> dict:
    """Records per stream as a multiset of canonical JSON texts (the two runners may interleave streams
    differently)."""
    out = {}
    for stream, records in run.records_by_stream().items():
        out[stream] = Counter(json.dumps(record, sort_keys=True) for record in records)
    return out


def final_states(run) -> dict:
    """The last state of each stream, without the CDK's `lookback_window` (the seconds the sync took)."""
    states = {}
    for message in run.last_state_per_stream():
        state = dict(message["stream"]["stream_state"])
        state.pop("lookback_window", None)
        states[message["stream"]["stream_descriptor"]["name"]] = state
    return states


def both(command, config, **kwargs):
    mine = run_source(command, config=config, **kwargs)
    theirs = run_source(command, config=injected(config), executable=SOURCE_DECLARATIVE_MANIFEST, env=runner_env(), **kwargs)
    for run in (mine, theirs):
        run.assert_secret_absent(config["api_key"])
    return mine, theirs


def test_both_runners_give_the_same_sync(fresh_api):
    config = config_for(fresh_api)

    # spec: the generic runner answers with its own spec; source-allo with the connector's.
    mine = run_source("spec")
    theirs = run_source("spec", executable=SOURCE_DECLARATIVE_MANIFEST, env=runner_env())
    assert mine.returncode == 0 and theirs.returncode == 0
    my_spec = mine.of_type("SPEC")[0]["spec"]["connectionSpecification"]
    assert my_spec["properties"]["api_key"]["airbyte_secret"] is True
    assert "__injected_declarative_manifest" in json.dumps(theirs.of_type("SPEC")[0]["spec"])

    mine, theirs = both("check", config)
    assert mine.connection_status()["status"] == "SUCCEEDED", mine.stdout[-2000:]
    assert theirs.connection_status()["status"] == "SUCCEEDED", theirs.stdout[-2000:]

    mine, theirs = both("discover", config)
    my_catalog, their_catalog = (run.of_type("CATALOG")[0]["catalog"] for run in (mine, theirs))
    assert my_catalog == their_catalog
    assert sorted(s["name"] for s in my_catalog["streams"]) == sorted(PRIMARY_KEYS)

    catalog = catalog_for(PRIMARY_KEYS)
    mine, theirs = both("read", config, catalog=catalog)
    assert mine.returncode == 0 and theirs.returncode == 0, (mine.stderr[-2000:], theirs.stdout[-2000:])
    assert not mine.errors() and not theirs.errors()
    assert canonical_records(mine) == canonical_records(theirs)
    assert final_states(mine) == final_states(theirs)
    for stream, records in mine.records_by_stream().items():
        assert_records_match_schema(stream, records)
    assert sum(len(v) for v in mine.records_by_stream().values()) > 1000

    # New activity and late summaries, then an incremental read from the full read's state.
    fresh_api.add_activity(n=12)
    fresh_api.fill_pending_summaries()
    state = mine.last_state_per_stream()
    mine_2, theirs_2 = both("read", config, catalog=catalog, state=state)
    assert mine_2.returncode == 0 and theirs_2.returncode == 0
    assert canonical_records(mine_2) == canonical_records(theirs_2)
    assert final_states(mine_2) == final_states(theirs_2)
    new_items = {r["id"] for r in mine_2.records("conversation_items")}
    assert new_items, "the incremental read emitted no conversation item after new activity"
