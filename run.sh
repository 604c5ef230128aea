#!/usr/bin/env bash
# Developer entry point. Needs only Python 3.11 (3.10-3.12; the image runs 3.13) and this repository.
#   ./run.sh demo      set up, start the fake Allo API, sync every stream into ./allo_demo.duckdb, print row counts
#   ./run.sh test      set up, run the whole test suite (unit, integration, standard, fault, PyAirbyte, container)
#   ./run.sh bench     set up, run the performance benchmark against the fake API (not part of the tests)
#   ./run.sh fake-api  set up, serve the fake Allo API on a free loopback port until Ctrl-C
set -euo pipefail
cd "$(dirname "$0")"

pick_python() {
  # Development stays on 3.11. The connector also runs on 3.13 (its image's
  # Python, see setup.py), but the venv holds the tests extra, whose PyAirbyte
  # needs Python < 3.13: so 3.10-3.12 here, 3.11 first unless PYTHON says otherwise.
  for candidate in "${PYTHON:-}" python3.11 python3.12 python3.10 python3; do
    if [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1 \
      && "$candidate" -c 'import sys; sys.exit(0 if (3, 10) <= sys.version_info[:2] < (3, 13) else 1)'; then
      echo "$candidate"; return
    fi
  done
  echo "Python 3.10-3.12 is required for the development venv (3.11 recommended; PyAirbyte in the tests needs < 3.13); set PYTHON=/path/to/python3.11" >&2
  exit 1
}

setup() {
  local stamp=.venv/.installed-$(cat setup.py | sha1sum | cut -c1-12)
  if [ ! -x .venv/bin/python ]; then
    "$(pick_python)" -m venv .venv
  fi
  if [ ! -f "$stamp" ]; then
    echo "Installing source-allo and its test dependencies into .venv ..." >&2
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e '.[tests]'
    rm -f .venv/.installed-*; touch "$stamp"
  fi
}

case "${1:-}" in
  demo)
    setup
    exec .venv/bin/python scripts/demo.py "${@:2}"
    ;;
  test)
    setup
    .venv/bin/python -m pytest "${@:2}"
    PYTHON="$PWD/.venv/bin/python" bash scripts/container_test.sh
    ;;
  bench)
    setup
    exec .venv/bin/python benchmarks/run_benchmark.py "${@:2}"
    ;;
  fake-api)
    setup
    exec .venv/bin/python -m integration_tests.fake_allo_api "${@:2}"
    ;;
  *)
    sed -n '2,6p' "$0"; exit 2
    ;;
esac
