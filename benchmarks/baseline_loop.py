"""The plain loop the connector is compared with: `requests` + `orjson`, no framework.

Reads the same pages as `source-allo read` (same endpoint, page size 100; conversation_items per Allo
number in the same 30-day date windows, the numbers listed first with `GET /v1/api/numbers`, or with
`--items-per-window` in windows over all numbers as the connector did before reading per number;
conversations one partition per Allo number) and prints the same RECORD lines to stdout:

    {"type":"RECORD","record":{"stream":"conversation_items","data":{...},"emitted_at":1732470000000}}

No retries, no rate limiting, no state, no schema, no logging: this is the floor of what reading these
pages costs in Python. Used by `benchmarks/run_benchmark.py` against the fake API with no latency and no
rate limits (the CPU-only case).

    .venv/bin/python benchmarks/baseline_loop.py --url http://127.0.0.1:PORT --api-key KEY \
        --stream conversation_items --start-date 2025-11-20
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date, datetime, timedelta, timezone

import orjson
import requests

PAGE_SIZE = 100


def _emit(out, stream: str, rows: list) -> None:
    now = int(time.time() * 1000)
    write = out.write
    for row in rows:
        write(orjson.dumps({"type": "RECORD", "record": {"stream": stream, "data": row, "emitted_at": now}}))
        write(b"\n")


def _windows(start: date, end: date, days: int):
    """[from, to] pairs, both inclusive, as the connector's DatetimeBasedCursor slices them (step, P1D)."""
    lo = start
    while lo <= end:
        hi = min(lo + timedelta(days=days - 1), end)
        yield lo, hi
        lo = hi + timedelta(days=1)


def list_numbers(session: requests.Session, url: str) -> list:
    """The Allo numbers, as the connector lists them (GET /v1/api/numbers; sender IDs have no number)."""
    response = session.get(f"{url}/v1/api/numbers")
    response.raise_for_status()
    return [row["number"] for row in orjson.loads(response.content).get("data") or [] if row.get("number")]


def read_items(session: requests.Session, url: str, out, start: date, end: date, window_days: int,
               per_number: bool = True) -> int:
    count = 0
    partitions = [(number, lo, hi) for number in list_numbers(session, url) for lo, hi in _windows(start, end, window_days)] \
        if per_number else [(None, lo, hi) for lo, hi in _windows(start, end, window_days)]
    for number, lo, hi in partitions:
        page = 1
        while True:
            body = {"sort": "DATE_ASC", "type": "ALL", "date": {"from": lo.isoformat(), "to": hi.isoformat()},
                    "page": page, "size": PAGE_SIZE}
            if number is not None:
                body["allo_number"] = number
            response = session.post(f"{url}/v2/api/conversations/items/search", data=orjson.dumps(body),
                                    headers={"Content-Type": "application/json"})
            response.raise_for_status()
            payload = orjson.loads(response.content)
            rows = payload.get("data") or []
            _emit(out, "conversation_items", rows)
            count += len(rows)
            if not rows or not (payload.get("pagination") or {}).get("has_more"):
                break
            page += 1
    return count


def read_conversations(session: requests.Session, url: str, out, since: str | None) -> int:
    count = 0
    for number in list_numbers(session, url):
        page = 1
        while True:
            params = {"allo_number": number, "page": page, "size": PAGE_SIZE}
            if since:
                params["last_activity_since"] = since
            response = session.get(f"{url}/v2/api/conversations", params=params)
            response.raise_for_status()
            payload = orjson.loads(response.content)
            rows = payload.get("data") or []
            for row in rows:
                row["allo_number"] = number
            _emit(out, "conversations", rows)
            count += len(rows)
            if not rows or not (payload.get("pagination") or {}).get("has_more"):
                break
            page += 1
    return count


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True, help="API base URL, e.g. http://127.0.0.1:8080")
    ap.add_argument("--api-key", required=True)
    ap.add_argument("--stream", choices=["conversation_items", "conversations"], default="conversation_items")
    ap.add_argument("--start-date", required=True, help="YYYY-MM-DD (conversation_items) or ISO 8601 (conversations)")
    ap.add_argument("--end-date", default=None, help="YYYY-MM-DD, default tomorrow (UTC), as the connector")
    ap.add_argument("--window-days", type=int, default=30, help="conversation_items window length (connector default 30)")
    ap.add_argument("--items-per-window", action="store_true",
                    help="conversation_items in date windows over all numbers (default: per Allo number, as the connector)")
    args = ap.parse_args(argv)

    session = requests.Session()
    session.headers["Authorization"] = f"Api-Key {args.api_key}"
    url = args.url.rstrip("/")
    out = sys.stdout.buffer
    if args.stream == "conversation_items":
        start = date.fromisoformat(args.start_date[:10])
        end = (date.fromisoformat(args.end_date) if args.end_date
               else datetime.now(timezone.utc).date() + timedelta(days=1))
        count = read_items(session, url, out, start, end, args.window_days, per_number=not args.items_per_window)
    else:
        count = read_conversations(session, url, out, args.start_date)
    out.flush()
    print(f"baseline_loop: {count} records", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
