"""The one shell script that gathers all of a node's facts in one round trip.

Each fact is a section of the script's output, headed by a marker line that the parser
splits on. Managed paths and unit names are passed as positional arguments ("$@"),
never interpolated into the script text, so no path can change what the script does.
"""

from __future__ import annotations

from collections.abc import Sequence

from piherd.facts.record import RECORD_PATH

MARKER = "@@piherd-fact:"
# Units an interrupted `up` changed inputs of but did not restart yet (runner/apply.py).
PENDING_RESTARTS = "/var/lib/piherd/pending-restarts"
UNITS_SEPARATOR = "--piherd-units--"

SCRIPT = r"""
rec=$1; shift  # the node's record of what piherd created ("" to read none)
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
sec record; if [ -n "$rec" ]; then cat -- "$rec" 2>/dev/null; fi
sec files
stat_path() {
  if [ -L "$1" ] || [ -f "$1" ]; then
    h=$(sha256sum < "$1" | cut -d' ' -f1)
    printf 'file\t%s\t%s\t%s\n' "$(stat -L -c '%a %U %G' -- "$1")" "$h" "$1"
  elif [ -d "$1" ]; then
    printf 'dir\t%s\t-\t%s\n' "$(stat -c '%a %U %G' -- "$1")" "$1"
  else
    printf 'absent\t-\t-\t%s\n' "$1"
  fi
}
units=""
for p in "$@"; do
  if [ -n "$units" ]; then units="$units $p"; continue; fi
  if [ "$p" = "--piherd-units--" ]; then units=" "; continue; fi
  stat_path "$p"
done
# What the record lists (ops/removals.py decides what goes): its paths and its units.
if [ -n "$rec" ] && [ -r "$rec" ]; then
  tab=$(printf '\t')
  while IFS="$tab" read -r kind flags p; do
    case "$kind" in file|dir) stat_path "$p" ;; esac
    if [ "$kind" = feeds ]; then  # the units a recorded file feeds: running or not?
      set -f; saved=$IFS; IFS=,
      for n in $flags; do
        case "$n" in ""|-*|*[!A-Za-z0-9@:._\\-]*) ;; *) units="$units $n" ;; esac
      done
      IFS=$saved; set +f
    fi
    case "$kind:$p" in  # a unit file's unit too: it is stopped before its file goes
      file:/etc/systemd/system/*/*) n="" ;;
      file:/etc/systemd/system/*) n="${p##*/}" ;;
      unit:*) n="$p" ;;
      *) n="" ;;
    esac
    case "$n" in ""|-*|*[!A-Za-z0-9@:._\\-]*) ;; *) units="$units $n" ;; esac
  done < "$rec"
fi
sec units
if [ -n "${units# }" ]; then
  set -f
  systemctl show --no-pager \
    -p Id,LoadState,ActiveState,UnitFileState,ActiveEnterTimestampMonotonic,MainPID \
    -- $units 2>/dev/null
  set +f
fi
sec end
"""


def facts_argv(
    paths: Sequence[str], units: Sequence[str], record_path: str = RECORD_PATH
) -> list[str]:
    """The argv that runs SCRIPT with the managed paths and unit names as arguments.

    `record_path`: where the node keeps its record (facts/record.py); "" reads none.
    """
    for unit in units:
        # Unit names are split on spaces by the script; systemd never allows them anyway.
        if not unit or any(c.isspace() for c in unit) or unit.startswith("-"):
            raise ValueError(f"bad unit name {unit!r}")
    return ["sh", "-c", SCRIPT, "piherd-facts", record_path, *paths, UNITS_SEPARATOR, *units]
