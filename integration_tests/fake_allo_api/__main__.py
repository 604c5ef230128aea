"""Run the fake Allo API from the command line.

    python -m integration_tests.fake_allo_api --seed 42 --scale small --latency-ms 100-150

Prints one JSON line ``{"url": ..., "keys": {...}}`` on stdout, then serves
until SIGTERM/SIGINT. ``--print-config PATH`` also writes a connector config
(creating its folder) before that line.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading

from .dataset import Dataset
from .faults import Knobs
from .server import FakeAlloApi


def _scale(values: list[str]):
    if len(values) == 1 and values[0] in ("small", "large", "busy"):
        return values[0]
    try:
        nums = [int(v) for v in values]
    except ValueError:
        raise argparse.ArgumentTypeError("--scale takes small, large, busy, or CONVERSATIONS [ITEMS [DAYS]]") from None
    if len(nums) == 1:
        return nums[0]
    if len(nums) in (2, 3):
        return tuple(nums)
    raise argparse.ArgumentTypeError("--scale takes at most 3 integers")


def _latency(value: str) -> tuple[int, int]:
    lo, _, hi = value.partition("-")
    try:
        return int(lo), int(hi or lo)
    except ValueError:
        raise argparse.ArgumentTypeError("--latency-ms takes LOW-HIGH or N (milliseconds)") from None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m integration_tests.fake_allo_api", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--scale", nargs="+", default=["small"], metavar="SCALE",
                    help="small | large | busy | CONVERSATIONS [ITEMS [DAYS]]")
    ap.add_argument("--now", default=None, help="dataset clock, ISO 8601 (default 2026-11-20T12:00:00Z)")
    ap.add_argument("--latency-ms", type=_latency, default=None, help="per-request jitter, e.g. 100-150")
    ap.add_argument("--enforce-rate-limits", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--daily-quota", type=int, default=None)
    ap.add_argument("--activity-per-answer", type=int, default=0,
                    help="busy account: calls/SMS landing right before each list answer")
    ap.add_argument("--answer-delay-ms", type=_latency, default=None,
                    help="busy account: random extra delay per list answer, e.g. 0-250 (answers out of order)")
    ap.add_argument("--print-config", metavar="PATH", help="write a connector config JSON for the full key")
    ap.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = ap.parse_args(argv)

    try:
        scale = _scale(args.scale)
    except argparse.ArgumentTypeError as exc:
        ap.error(str(exc))
    dataset = Dataset(seed=args.seed, scale=scale, now=args.now)
    knobs = Knobs(latency_ms=args.latency_ms, enforce_rate_limits=args.enforce_rate_limits,
                  daily_quota=args.daily_quota, activity_per_answer=args.activity_per_answer,
                  answer_delay_ms=args.answer_delay_ms)
    api = FakeAlloApi(dataset=dataset, knobs=knobs, host=args.host, port=args.port, verbose=args.verbose).start()

    if args.print_config:
        config = {"api_key": api.keys["full"], "api_url": api.url,
                  "start_date": dataset.start.strftime("%Y-%m-%dT%H:%M:%SZ")}
        # Creates the folder (secrets/ on a fresh clone); the file appears whole, once the server listens,
        # so a script can wait for it before using the config.
        path = os.path.abspath(args.print_config)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + ".tmp", "w", encoding="utf-8") as fh:
            json.dump(config, fh, indent=2)
            fh.write("\n")
        os.replace(path + ".tmp", path)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    sys.stdout.write(json.dumps({"url": api.url, "keys": api.keys}) + "\n")
    sys.stdout.flush()
    while not stop.wait(0.5):
        pass
    api.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
