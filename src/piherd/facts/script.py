"""The one shell script that gathers all of a node's facts in one round trip.

Each fact is a section of the script's output, headed by a marker line that the parser
splits on. Managed paths and unit names are passed as positional arguments ("$@"),
never interpolated into the script text, so no path can change what the script does.
"""

from __future__ import annotations

from collections.abc import Sequence

MARKER = "@@piherd-fact:"
# Units an interrupted `up` changed inputs of but did not restart yet (runner/apply.py).
PENDING_RESTARTS = "/var/lib/piherd/pending-restarts"
UNITS_SEPARATOR = "--piherd-units--"

SCRIPT = r"""
sec() { printf '\n@@piherd-fact:%s@@\n' "$1"; }
sec os_release; cat /etc/os-release 2>/dev/null
sec machine; uname -m
sec arch; dpkg --print-architecture 2>/dev/null
sec cpus; nproc 2>/dev/null
sec meminfo; grep '^MemTotal:' /proc/meminfo
sec model; if [ -r /proc/device-tree/model ]; then tr -d '\000' < /proc/device-tree/model; fi
sec netstack
for u in NetworkManager dhcpcd systemd-networkd; do
  printf '%s %s\n' "$u" "$(systemctl is-active "$u" 2>/dev/null)"
done
sec hostname; hostname
sec login_ids; printf '%s %s\n' "${SUDO_UID:-$(id -u)}" "${SUDO_GID:-$(id -g)}"
sec addresses; ip -4 -o addr show 2>/dev/null
sec packages; dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' 2>/dev/null
sec apt_lists; ls /var/lib/apt/lists/ 2>/dev/null | grep -c '_Packages' || true
sec pending_restarts; cat /var/lib/piherd/pending-restarts 2>/dev/null
sec host_keys; cat /etc/ssh/ssh_host_*_key.pub 2>/dev/null
sec files
units=""
for p in "$@"; do
  if [ -n "$units" ]; then units="$units $p"; continue; fi
  if [ "$p" = "--piherd-units--" ]; then units=" "; continue; fi
  if [ -L "$p" ] || [ -f "$p" ]; then
    h=$(sha256sum < "$p" | cut -d' ' -f1)
    printf 'file\t%s\t%s\t%s\n' "$(stat -L -c '%a %U %G' -- "$p")" "$h" "$p"
  elif [ -d "$p" ]; then
    printf 'dir\t%s\t-\t%s\n' "$(stat -c '%a %U %G' -- "$p")" "$p"
  else
    printf 'absent\t-\t-\t%s\n' "$p"
  fi
done
sec units
if [ -n "$units" ]; then
  systemctl show --no-pager \
    -p Id,LoadState,ActiveState,UnitFileState,ActiveEnterTimestampMonotonic,MainPID \
    -- $units 2>/dev/null
fi
sec end
"""


def facts_argv(paths: Sequence[str], units: Sequence[str]) -> list[str]:
    """The argv that runs SCRIPT with the managed paths and unit names as arguments."""
    for unit in units:
        # Unit names are split on spaces by the script; systemd never allows them anyway.
        if not unit or any(c.isspace() for c in unit) or unit.startswith("-"):
            raise ValueError(f"bad unit name {unit!r}")
    return ["sh", "-c", SCRIPT, "piherd-facts", *paths, UNITS_SEPARATOR, *units]
