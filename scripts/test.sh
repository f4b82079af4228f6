#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the whole test suite. `.ci/run` calls this.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$ROOT/scripts/setup.sh"
cd "$ROOT"
exec python -m pytest "$@"
