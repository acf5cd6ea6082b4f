#!/usr/bin/env bash
# Install everything piherd needs on a fresh Debian 12 machine: apt packages and .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "setup.sh installs Debian packages: run it as root (or with sudo)." >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
packages=$(grep -v '^#' scripts/apt-packages.txt | grep -v '^$' | tr '\n' ' ')
missing=$(dpkg-query -W -f='${Package} ${Status}\n' $packages 2>/dev/null | grep -v 'install ok installed' | cut -d' ' -f1 || true)
missing="$missing $(for p in $packages; do dpkg-query -W "$p" >/dev/null 2>&1 || echo "$p"; done)"
if [ -n "$(echo "$missing" | tr -d ' ')" ]; then
  echo "setup: installing Debian packages:$missing"
  apt-get update -qq
  # policy-rc.d keeps packages from starting their services on this machine (apt-cacher-ng, ssh):
  # piherd starts exactly what it needs, bound to its own bridge.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get install -y -qq --no-install-recommends $missing > /tmp/piherd-apt.log 2>&1 \
    || { tail -20 /tmp/piherd-apt.log >&2; exit 1; }
fi
if [ ! -x .venv/bin/piherd ] || [ pyproject.toml -nt .venv/.installed ] \
    || [ scripts/constraints.txt -nt .venv/.installed ]; then
  echo "setup: creating the Python environment in .venv"
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -c scripts/constraints.txt -e '.[dev]'
  touch .venv/.installed
fi
echo "setup: done"
