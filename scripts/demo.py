"""The main job on an embedded default: start the fake Allo API, sync every stream through PyAirbyte
into a local DuckDB file, then print what landed (rows per table).

    ./run.sh demo [--duckdb allo_demo.duckdb] [--scale small|large]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# PyAirbyte: no registry look-ups (the connector is local), no telemetry, files kept out of $HOME.
os.environ.setdefault("AIRBYTE_OFFLINE_MODE", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
_work = Path(tempfile.mkdtemp(prefix="allo-demo-"))
os.environ.setdefault("AIRBYTE_LOGGING_ROOT", str(_work / "logs"))
os.environ.setdefault("AIRBYTE_PROJECT_DIR", str(_work))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duckdb", default="allo_demo.duckdb", help="DuckDB file to write (default: %(default)s)")
    parser.add_argument("--scale", default="small", choices=["small", "large"], help="fake account size")
    args = parser.parse_args()

    import airbyte as ab  # imported late: it is slow and prints warnings on import

    from integration_tests.fake_allo_api import Dataset, FakeAlloApi

    db_path = Path(args.duckdb).resolve()
    executable = Path(sys.executable).with_name("source-allo")
    with FakeAlloApi(dataset=Dataset(seed=42, scale=args.scale)) as api:
        print(f"Fake Allo API serving on {api.url}")
        source = ab.get_source(
            "source-allo",
            config={"api_key": api.keys["full"], "api_url": api.url, "start_date": api.dataset.start.strftime("%Y-%m-%dT%H:%M:%SZ")},
            local_executable=str(executable),
        )
        source.check()
        source.select_all_streams()
        cache = ab.DuckDBCache(db_path=str(db_path), schema_name="allo")
        result = source.read(cache=cache)
        print(f"\nSynced into {db_path} (schema allo):")
        names = sorted(result.streams)

    with cache.get_sql_engine().connect() as connection:
        counts = {n: connection.exec_driver_sql(f'SELECT count(*) FROM allo."{n}"').fetchone()[0] for n in names}
    width = max(len(n) for n in names)
    total = 0
    for name in names:
        count = counts[name]
        total += count
        print(f"  {name:<{width}}  {count:>7} rows")
    print(f"  {'total':<{width}}  {total:>7} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
