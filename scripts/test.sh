#!/usr/bin/env bash
# The whole test run: set-up, lint, format, types, then both test tiers in one pytest run
# (hypothesis profile `ci`: every example; `make unit` uses the quick default).
# Integration tests (marker `sim`) need root; they fail loudly without it, never skip.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "== ruff check"; .venv/bin/ruff check src tests bench
echo "== ruff format --check"; .venv/bin/ruff format --check src tests bench
echo "== mypy"; .venv/bin/mypy
echo "== pytest"
set +e
.venv/bin/pytest --hypothesis-profile=ci --durations=40 "$@"  # thorough property tests (conftest.py); the 40 slowest listed
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure, not a pass." >&2
  exit 1
fi
exit "$status"
