"""The main job on an embedded default: start the fake Allo API, sync every stream through PyAirbyte
into a local DuckDB file, then print what landed (rows per table), an example query and where the
logs are.

    ./run.sh demo [--duckdb allo_demo.duckdb] [--logs allo_demo_logs] [--scale small|large]

Leaves behind only the DuckDB file and the logs folder (git-ignored, replaced on every run);
PyAirbyte's work files go to a temporary folder that is removed at the end.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# PyAirbyte reads these when it is imported: no registry look-ups (the connector is local), no telemetry.
os.environ.setdefault("AIRBYTE_OFFLINE_MODE", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")

EXAMPLE_QUERY = (
    "SELECT allo_number, type, direction, count(*) AS items "
    "FROM allo.conversation_items GROUP BY ALL ORDER BY ALL"
)
LOGS_MARKER = "# Logs of ./run.sh demo (scripts/demo.py), replaced on every run.\n"


def _shown(path: Path) -> str:
    """The path as a user types it from the current directory (relative when inside it)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _fresh_logs_dir(path: Path) -> None:
    """Empty a logs folder this script made before, and git-ignore it; a folder it did not make is only added to."""
    marker = path / ".gitignore"
    if marker.is_file() and marker.read_text(encoding="utf-8").startswith(LOGS_MARKER):
        shutil.rmtree(path)
    if not path.exists() or not any(path.iterdir()):
        path.mkdir(parents=True, exist_ok=True)
        marker.write_text(LOGS_MARKER + "*\n", encoding="utf-8")


def _print_logs(logs: Path, out=sys.stdout) -> None:
    files = sorted(p for p in logs.rglob("*.log") if p.is_file())
    print(f"\nLogs (PyAirbyte's, and the connector's in source-allo/): {_shown(logs)}/", file=out)
    for path in files:
        print(f"  {_shown(path)}", file=out)


def _table(rows: list[tuple], headers: list[str]) -> list[str]:
    cells = [headers] + [[str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duckdb", default="allo_demo.duckdb", help="DuckDB file to write (default: %(default)s)")
    parser.add_argument("--logs", default=None,
                        help="folder for PyAirbyte's and the connector's logs (default: the DuckDB file's name + _logs)")
    parser.add_argument("--scale", default="small", choices=["small", "large"], help="fake account size")
    args = parser.parse_args()

    db_path = Path(args.duckdb).resolve()
    logs = Path(args.logs).resolve() if args.logs else db_path.with_name(db_path.stem + "_logs")
    _fresh_logs_dir(logs)
    work = Path(tempfile.mkdtemp(prefix="allo-demo-"))
    # Read by PyAirbyte when it is imported: logs where they are kept, its work files in `work`.
    os.environ["AIRBYTE_LOGGING_ROOT"] = str(logs)
    os.environ["AIRBYTE_PROJECT_DIR"] = str(work)
    os.environ["AIRBYTE_TEMP_DIR"] = str(work)
    try:
        return _sync(db_path, args.scale, logs)
    except BaseException:
        _print_logs(logs, out=sys.stderr)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _sync(db_path: Path, scale: str, logs: Path) -> int:
    import airbyte as ab  # imported late: it is slow and prints warnings on import

    from integration_tests.fake_allo_api import Dataset, FakeAlloApi

    executable = Path(sys.executable).with_name("source-allo")
    with FakeAlloApi(dataset=Dataset(seed=42, scale=scale)) as api:
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
        names = sorted(result.streams)

    engine = cache.get_sql_engine()
    with engine.connect() as connection:
        counts = {n: connection.exec_driver_sql(f'SELECT count(*) FROM allo."{n}"').fetchone()[0] for n in names}
        example = connection.exec_driver_sql(EXAMPLE_QUERY)
        example_headers, example_rows = list(example.keys()), example.fetchall()
    engine.dispose()

    print(f"\nSynced into {_shown(db_path)} (schema allo):")
    width = max(len(n) for n in names)
    total = 0
    for name in names:
        count = counts[name]
        total += count
        print(f"  {name:<{width}}  {count:>7} rows")
    print(f"  {'total':<{width}}  {total:>7} rows")

    print(f"\nExample query: {EXAMPLE_QUERY}")
    for line in _table(example_rows, example_headers):
        print(f"  {line}")

    python = _shown(Path(sys.executable))
    code = f"import duckdb; db = duckdb.connect({_shown(db_path)!r}, read_only=True); db.sql({EXAMPLE_QUERY!r}).show()"
    code = f'"{code}"' if not set(code) & set('"$`\\!') else shlex.quote(code)
    print("\nOpen the file with the duckdb package of the venv (any SQL on the allo.* tables):")
    print(f"  {shlex.quote(python)} -c {code}")

    _print_logs(logs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
