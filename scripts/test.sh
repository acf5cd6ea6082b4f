#!/usr/bin/env bash
# The whole test run: set-up, lint, format, types, then both test tiers
# (hypothesis profile `ci`: every example; `make unit` uses the quick default).
# Integration tests (marker `sim`) need root; they fail loudly without it, never skip.
#
# With no arguments, the VM tests (marker `vm`: QEMU under software emulation, bound by
# CPU) run in a second pytest beside the rest, at a lower CPU priority: the container
# tests mostly wait on daemons and leave a core idle. Both must pass. With arguments,
# one pytest runs what they select.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "== ruff check"; .venv/bin/ruff check src tests bench
echo "== ruff format --check"; .venv/bin/ruff format --check src tests bench
echo "== mypy"; .venv/bin/mypy

# pytest's own status, where 5 (nothing collected) is a failure, not a pass.
checked() {
  local status=$1
  if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests: that is a failure, not a pass." >&2
    return 1
  fi
  return "$status"
}

if [ "$#" -gt 0 ]; then
  echo "== pytest $*"
  set +e
  .venv/bin/pytest --hypothesis-profile=ci --durations=40 "$@"
  status=$?
  set -e
  checked "$status"
  exit $?
fi

vm_log=$(mktemp -t piherd-vm-tests.XXXXXX)
trap 'rm -f "$vm_log"' EXIT
echo "== pytest -m vm (in the background, nice 10; its output follows the main run's)"
nice -n 10 .venv/bin/pytest -m vm -p no:cacheprovider --durations=10 >"$vm_log" 2>&1 &
vm_pid=$!
echo "== pytest -m 'not vm'"
set +e
# thorough property tests (conftest.py); the 40 slowest listed
.venv/bin/pytest -m "not vm" --hypothesis-profile=ci --durations=40
status=$?
wait "$vm_pid"
vm_status=$?
set -e
echo "== pytest -m vm: output"
cat "$vm_log"
checked "$status" && checked "$vm_status"
