#!/usr/bin/env bash
# Sets up everything a fresh machine needs, idempotently: the virtualenv with the package and its
# test extras, and a Pulumi CLI (from PATH, or built from Go modules into .tools/bin).
# Source it (`. scripts/setup.sh`) to get PATH and the Pulumi environment in the current shell.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  say "creating virtualenv .venv"
  "$PYTHON" -m venv .venv
fi
# Reinstall only when the dependency list changed (stamp = hash of pyproject.toml).
stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  say "installing pulumi-cloudtasks and its test dependencies into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[test]"
  rm -f .venv/.installed-* && touch "$stamp"
fi

say "making sure a Pulumi CLI is available"
bash tools/build-pulumi.sh >&2

export PATH="$ROOT/.tools/bin:$ROOT/.venv/bin:$PATH"
export VIRTUAL_ENV="$ROOT/.venv"
# Local file backend inside the repo; never Pulumi Cloud.
export PULUMI_BACKEND_URL="file://$ROOT/.pulumi-state"
export PULUMI_CONFIG_PASSPHRASE="${PULUMI_CONFIG_PASSPHRASE:-pulumi-cloudtasks-local}"
export PULUMI_SKIP_UPDATE_CHECK=true
export PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK=true
export PYTHONWARNINGS="${PYTHONWARNINGS:-ignore::FutureWarning}"
mkdir -p "$ROOT/.pulumi-state"
