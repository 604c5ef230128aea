"""`source-allo` with its request pacing lifted: the benchmark's CPU-only and memory cases.

The connector paces itself with the manifest's fixed `api_budget` (20 GET/s and 5 POST/s, minus a margin).
The CPU-only case measures what the framework costs per record, so it must not wait for that budget:
this runs the installed `source_allo.run` command unchanged, except that it reads a copy of the packaged
manifest whose `api_budget` limits are multiplied by 10,000 (the budget is still consulted on every
request, it just never holds one back). Nothing else in the manifest changes: the copy is the same text
with only the `limit:` numbers of the top-level `api_budget` block replaced, so the CDK parses it in the
same time.

A connector without a module-level `source_allo.run.MANIFEST_PATH` (the design before the manifest-only
connector, which paced itself from `GET /v2/api/me`) runs unchanged: the benchmark's fake API reports huge
limits in `/me` during these cases.

    <venv>/bin/python benchmarks/unpaced_source.py read --config C --catalog K [--state S]
"""

from __future__ import annotations

import os
import re
import sys
import tempfile

FACTOR = 10_000
_LIMIT = re.compile(r"(\blimit:\s*)(\d+)")


def lift_pacing(text: str) -> tuple[str, int]:
    """The manifest text with every `limit: N` of the top-level `api_budget:` block multiplied by FACTOR."""
    lines = text.splitlines(keepends=True)
    inside, count = False, 0
    for i, line in enumerate(lines):
        if line.startswith("api_budget:"):
            inside = True
            continue
        if inside and line.strip() and not line[0].isspace() and not line.startswith("#"):
            break   # the next top-level key
        if inside:
            lines[i], n = _LIMIT.subn(lambda m: f"{m.group(1)}{int(m.group(2)) * FACTOR}", line)
            count += n
    return "".join(lines), count


def main() -> None:
    from source_allo import run

    path = getattr(run, "MANIFEST_PATH", None)
    if path is not None:
        with open(path, encoding="utf-8") as handle:
            text, count = lift_pacing(handle.read())
        if count == 0:
            raise SystemExit(f"unpaced_source: no `limit:` found in the api_budget block of {path}")
        copy = tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="allo-unpaced-", delete=False, encoding="utf-8")
        with copy:
            copy.write(text)
        run.MANIFEST_PATH = copy.name
        print(f"unpaced_source: {count} api_budget limits x {FACTOR:,} ({copy.name})", file=sys.stderr)
        try:
            run.main()
        finally:
            os.unlink(copy.name)
        return
    run.main()


if __name__ == "__main__":
    main()
