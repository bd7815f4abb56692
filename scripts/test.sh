#!/usr/bin/env bash
# Sets up, then runs the test suite (unit, native, CLI, fork, snapshot, bench).
set -euo pipefail
cd "$(dirname "$0")/.."
FORKSERVER_EXTRAS=test,ray ./scripts/setup.sh
exec "${PYTHON:-python3}" -m pytest -q --durations=15 "$@"
