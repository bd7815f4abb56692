#!/usr/bin/env bash
# Sets up, then runs the main job: every mode side by side on the bundled maze harness
# and its corpus (exec, fork, snapshot with each backend this machine supports).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec forkserver bench "$@"
