"""source-allo through PyAirbyte, the way Python users run it: into DuckDB, queried with SQL, then an
incremental sync from PyAirbyte's saved state."""

import os
import sys
from pathlib import Path

import pytest

from integration_tests.conftest import config_for

STREAMS = ["conversations", "conversation_items", "calls", "users"]



def test_pyairbyte_reads_into_duckdb_and_syncs_incrementally(pyairbyte, fresh_api, tmp_path):
    ab = pyairbyte
    source = ab.get_source(
        "source-allo",
        config=config_for(fresh_api),
        local_executable=str(Path(sys.executable).with_name("source-allo")),
    )
    source.check()
    source.select_streams(STREAMS)
    cache = ab.DuckDBCache(db_path=str(tmp_path / "warehouse.duckdb"), schema_name="allo")
    source.read(cache=cache)

    def sql(query):
        # Closed after each query: an open DuckDB transaction would pin old rows and break the next sync.
        with cache.get_sql_engine().connect() as connection:
            return connection.exec_driver_sql(query).fetchall()

    # Calls per user, messages per number, conversations per number: equal to the API's truth.
    items = fresh_api.truth("conversation_items")
    want_calls_per_user = {}
    want_sms_per_number = {}
    for item in items:
        if item["type"] == "CALL" and item.get("user"):
            want_calls_per_user[item["user"]["id"]] = want_calls_per_user.get(item["user"]["id"], 0) + 1
        if item["type"] == "SMS":
            want_sms_per_number[item["allo_number"]] = want_sms_per_number.get(item["allo_number"], 0) + 1
    got_calls_per_user = dict(sql("SELECT json_extract_string(\"user\", '$.id'), count(*) FROM allo.conversation_items WHERE type = 'CALL' GROUP BY 1"))
    assert {k: v for k, v in got_calls_per_user.items() if k} == want_calls_per_user
    assert dict(sql("SELECT allo_number, count(*) FROM allo.conversation_items WHERE type = 'SMS' GROUP BY 1")) == want_sms_per_number
    want_conversations = {}
    for row in fresh_api.truth("conversations"):
        want_conversations[row["allo_number"]] = want_conversations.get(row["allo_number"], 0) + 1
    assert dict(sql("SELECT allo_number, count(*) FROM allo.conversations GROUP BY 1")) == want_conversations
    assert sql("SELECT count(*) FROM allo.users")[0][0] == len(fresh_api.truth("users"))

    # Incremental: PyAirbyte passes the saved state back; only the changes arrive.
    changed = fresh_api.add_activity(n=4)
    fresh_api.reset_stats()
    result = source.read(cache=cache)
    # calls and users are full-refresh streams: they are read whole every time.
    processed = result.processed_records - len(fresh_api.truth("calls")) - len(fresh_api.truth("users"))
    assert sql("SELECT count(*) FROM allo.conversation_items")[0][0] >= len(items) + len(changed["items"])
    new_ids = {r[0] for r in sql("SELECT id FROM allo.conversation_items")}
    assert set(changed["items"]) <= new_ids
    # Far fewer than a full sync: the lookback day and the changes, not the whole history.
    assert processed < (len(items) + len(fresh_api.truth("conversations"))) / 3, processed
    since = [e["query"].get("last_activity_since") for e in fresh_api.stats()["log"] if e["path"] == "/v2/api/conversations"]
    assert since and all(since), "the second sync did not send the saved state as last_activity_since"
