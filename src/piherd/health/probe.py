"""The health probe: one fixed read-only script per node, and a pure parser to NodeHealth.

The script prints one section per signal, each headed by a marker line; the facts
parsers (facts/parse.py) split the sections and read the meminfo lines. Nothing is
interpolated into the script: the inputs, the shared-storage mount point and the units
whose state is reported (each service's Service.health_units), travel as positional
arguments ("$1", then "$@"), so no value can change what the script does.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from piherd.facts.parse import parse_meminfo, section_lines, split_sections
from piherd.health.slurm_state import SlurmNode

MARKER = "@@piherd-health:"

# Few processes per probe (builtins where the shell can read a file itself): the same
# script runs on hundreds of nodes at once, and on a Pi every fork costs.
SCRIPT = r"""
sec() { printf '\n@@piherd-health:%s@@\n' "$1"; }
line() { l=""; read -r l < "$1"; [ -n "$l" ] && printf '%s\n' "$l"; } 2>/dev/null
sec clock; date +%s.%N
sec uptime; line /proc/uptime
sec loadavg; line /proc/loadavg
sec temp; line /sys/class/thermal/thermal_zone0/temp
sec throttled
if command -v vcgencmd >/dev/null 2>&1; then
  printf 'vcgencmd %s\n' "$(vcgencmd get_throttled 2>/dev/null)"
else
  found=""
  for h in /sys/class/hwmon/hwmon*; do
    n=""; read -r n 2>/dev/null < "$h/name"
    if [ "$n" = rpi_volt ]; then
      a=""; read -r a 2>/dev/null < "$h/in0_lcrit_alarm"
      printf 'hwmon %s\n' "$a"; found=1; break
    fi
  done
  [ -n "$found" ] || echo n/a
fi
sec df; df -P -k / 2>/dev/null
sec chrony; ! command -v chronyc >/dev/null || chronyc -c tracking 2>/dev/null
sec reboot; [ -e /run/reboot-required ] && echo required
r=""; read -r r < /proc/sys/kernel/osrelease; printf 'running %s\n' "$r"
for k in /lib/modules/*; do [ -d "$k" ] && printf 'installed %s\n' "${k##*/}"; done
sec bootloader; line /run/piherd/bootloader
# Touch the shared mount point so an automount (x-systemd.automount) comes up; bounded.
[ -z "$1" ] || timeout 3 stat -c %i "$1/." >/dev/null 2>&1
# One awk for memory and mounts, not the shell's `read`, which takes a byte per system
# call: /proc/mounts holds tens of lines on a Pi, but 1,034 on a machine running 1,024
# sim nodes (their namespaces are mounts), where `read` cost 12 ms of CPU per probe more.
awk -v m="$1" '
  FILENAME == "/proc/meminfo" {
    if ($1 == "MemTotal:" || $1 == "MemAvailable:") mem = mem $1 " " $2 " kB\n"
    next
  }
  $2 == "/" { root = $4 }
  m != "" && $2 == m { fs = fs $3 "\n" }
  END {
    print "\n@@piherd-health:meminfo@@"; printf "%s", mem
    print "\n@@piherd-health:rootfs@@"; print root
    print "\n@@piherd-health:storage@@"; if (m == "") print "-"; else printf "%s", fs
  }' /proc/meminfo /proc/mounts
shift
sec services; [ "$#" -eq 0 ] || systemctl is-active -- "$@" 2>/dev/null
sec end
"""
# The units reported when the caller names none (the cluster's services name their own).
SERVICES: tuple[str, ...] = ("slurmd", "slurmctld", "munge", "chrony")

# Bits of `vcgencmd get_throttled` (see docs/health.md and the Raspberry Pi notes).
THROTTLE_FLAGS: tuple[tuple[int, str], ...] = (
    (0, "under-voltage"),
    (1, "arm-freq-capped"),
    (2, "throttled"),
    (3, "soft-temp-limit"),
)
SINCE_BOOT_SHIFT = 16


def probe_argv(storage_mount: str = "", units: Sequence[str] = SERVICES) -> list[str]:
    """The argv that runs SCRIPT; the mount and `units` are arguments, never interpolated."""
    if storage_mount and not storage_mount.startswith("/"):
        raise ValueError(f"storage mount must be an absolute path, not {storage_mount!r}")
    for unit in units:
        if not unit or unit.startswith("-") or any(c.isspace() or c < " " for c in unit):
            raise ValueError(f"bad unit name {unit!r}")
    return ["sh", "-c", SCRIPT, "piherd-health", storage_mount, *units]


@dataclass(frozen=True)
class Throttling:
    """Decoded throttling state; `source` says where it came from ("n/a": not a Pi)."""

    source: str  # "vcgencmd", "hwmon" or "n/a"
    mask: int | None = None
    now: frozenset[str] = frozenset()
    since_boot: frozenset[str] = frozenset()

    @property
    def known(self) -> bool:
        return self.source != "n/a"

    def describe(self) -> str:
        """Short text for a table cell: "ok", "n/a", or the flags now and since boot."""
        if not self.known:
            return "n/a"
        parts = [f for _, f in THROTTLE_FLAGS if f in self.now]
        parts += [
            f"{f} since boot"
            for _, f in THROTTLE_FLAGS
            if f in self.since_boot and f not in self.now
        ]
        return ", ".join(parts) if parts else "ok"


def decode_throttled(mask: int) -> Throttling:
    """Decode a `get_throttled` bit mask into flag names now and since boot."""
    now = frozenset(name for bit, name in THROTTLE_FLAGS if mask & (1 << bit))
    since = frozenset(
        name for bit, name in THROTTLE_FLAGS if mask & (1 << (bit + SINCE_BOOT_SHIFT))
    )
    return Throttling("vcgencmd", mask, now, since)


@dataclass(frozen=True)
class NodeHealth:
    """One node's health as probed; None fields were not available on the node."""

    node: str
    reachable: bool
    error: str | None = None
    elapsed: float = 0.0
    node_time: float | None = None  # the node's clock (epoch seconds) during the probe
    clock_offset_s: float | None = None  # node clock minus head clock
    clock_uncertainty_s: float = 0.0  # half the round trips that measured the offset
    chrony_offset_s: float | None = None  # chrony's own estimate vs its source
    chrony_synced: bool | None = None
    uptime_s: float | None = None
    load: tuple[float, float, float] | None = None
    temp_c: float | None = None
    throttling: Throttling = field(default_factory=lambda: Throttling("n/a"))
    mem_total_kb: int | None = None
    mem_available_kb: int | None = None
    root_use_pct: float | None = None
    root_ro: bool | None = None
    storage_fstype: str | None = None  # None: storage not checked; "": not mounted
    services: dict[str, str] = field(default_factory=dict)
    slurm: SlurmNode | None = None
    reboot_needed: tuple[str, ...] = ()  # why a reboot is owed (empty: none, or not known)
    bootloader: str | None = None  # services.bootloader's last word on the EEPROM, if any

    @property
    def mem_used_pct(self) -> float | None:
        if not self.mem_total_kb or self.mem_available_kb is None:
            return None
        return 100.0 * (self.mem_total_kb - self.mem_available_kb) / self.mem_total_kb

    @property
    def storage_mounted(self) -> bool | None:
        """True when mounted (not just an automount trap), None when not checked."""
        if self.storage_fstype is None:
            return None
        return self.storage_fstype not in ("", "autofs")

    def with_slurm(self, slurm: SlurmNode | None) -> NodeHealth:
        return replace(self, slurm=slurm)


def unreachable(node: str, error: str, elapsed: float = 0.0) -> NodeHealth:
    """The health of a node that could not be probed."""
    return NodeHealth(node=node, reachable=False, error=error, elapsed=elapsed)


def probe_sections(stdout: str) -> dict[str, list[str]]:
    """The probe script's output as {section: its non-blank lines}."""
    return {name: section_lines(text) for name, text in split_sections(stdout, MARKER).items()}


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _first(sections: dict[str, list[str]], name: str) -> str:
    lines = sections.get(name, [])
    return lines[0] if lines else ""


def parse_throttled(lines: list[str]) -> Throttling:
    """Parse the throttled section: "vcgencmd throttled=0x50005", "hwmon 1" or "n/a"."""
    line = lines[0] if lines else "n/a"
    kind, _, value = line.partition(" ")
    if kind == "vcgencmd" and "=" in value:
        try:
            return decode_throttled(int(value.split("=", 1)[1].strip(), 0))
        except ValueError:
            return Throttling("n/a")
    if kind == "hwmon" and value.strip() in ("0", "1"):
        alarm = value.strip() == "1"
        return Throttling(
            "hwmon", int(alarm), frozenset({"under-voltage"} if alarm else ()), frozenset()
        )
    return Throttling("n/a")


def parse_chrony(line: str) -> tuple[float | None, bool | None]:
    """(offset seconds, synchronised) from `chronyc -c tracking`; (None, None) if absent."""
    fields = line.split(",")
    if len(fields) < 14:
        return None, None
    offset = _float(fields[4])
    return offset, fields[13].strip() != "Not synchronised"


def _kernel_key(release: str) -> tuple[tuple[int, ...], str]:
    """Sort key of a kernel release: its numbers in order ("6.1.0-28-amd64" < "-29-")."""
    return tuple(int(n) for n in re.findall(r"\d+", release)), release


def _flavour(release: str) -> str:
    """The kernel's build flavour, the part after its last dash: "amd64", "v8", "2712"."""
    return release.rsplit("-", 1)[-1] if "-" in release else ""


def parse_reboot(lines: Sequence[str]) -> tuple[str, ...]:
    """Why a reboot is owed, from the reboot section: packages asked for it
    (/run/reboot-required), or a newer kernel of the running kernel's flavour is installed
    (a Pi image holds kernels for several boards: only the same flavour counts). A node with
    no kernel of its flavour installed (a container) owes nothing for its kernel."""
    reasons: list[str] = []
    if "required" in lines:
        reasons.append("packages ask for it (/run/reboot-required)")
    running = next((ln.split(" ", 1)[1] for ln in lines if ln.startswith("running ")), "")
    installed = [ln.split(" ", 1)[1] for ln in lines if ln.startswith("installed ")]
    same = [k for k in installed if _flavour(k) == _flavour(running)]
    if running and same:
        newest = max(same, key=_kernel_key)
        if _kernel_key(newest) > _kernel_key(running) or running not in same:
            reasons.append(f"new kernel {newest} (running {running})")
    return tuple(reasons)


def parse_probe(
    node: str, stdout: str, *, elapsed: float = 0.0, units: Sequence[str] = SERVICES
) -> NodeHealth:
    """Turn the probe script's output into a NodeHealth (pure; tolerant of missing parts).

    `units` are those the probe was asked about, in order (probe_argv's).
    """
    s = probe_sections(stdout)
    if "end" not in s:
        return unreachable(node, "probe output incomplete", elapsed)
    uptime = _float(_first(s, "uptime").split(" ")[0]) if _first(s, "uptime") else None
    load_fields = _first(s, "loadavg").split()
    load: tuple[float, float, float] | None = None
    if len(load_fields) >= 3:
        values = [_float(v) for v in load_fields[:3]]
        if all(v is not None for v in values):
            load = (values[0] or 0.0, values[1] or 0.0, values[2] or 0.0)
    temp_raw = _float(_first(s, "temp"))
    mem = parse_meminfo("\n".join(s.get("meminfo", [])))
    df_lines = s.get("df", [])
    df = df_lines[-1].split() if df_lines else []  # the header, then the line for /
    root_use = _float(df[4].rstrip("%")) if len(df) >= 6 else None
    rootfs_opts = s["rootfs"][-1] if s.get("rootfs") else ""
    chrony_offset, chrony_synced = parse_chrony(_first(s, "chrony"))
    # One state per line, in the order asked; no lines when there is no systemd to ask.
    states = s.get("services", [])
    services = {name: states[i] if i < len(states) else "unknown" for i, name in enumerate(units)}
    storage: str | None = None
    if "storage" in s and s["storage"] != ["-"]:  # "-": this node was not asked to check
        storage = s["storage"][-1] if s["storage"] else ""
    return NodeHealth(
        node=node,
        reachable=True,
        elapsed=elapsed,
        node_time=_float(_first(s, "clock")),
        chrony_offset_s=chrony_offset,
        chrony_synced=chrony_synced,
        uptime_s=uptime,
        load=load,
        temp_c=None if temp_raw is None else temp_raw / 1000.0,
        throttling=parse_throttled(s.get("throttled", [])),
        mem_total_kb=mem.get("MemTotal"),
        mem_available_kb=mem.get("MemAvailable"),
        root_use_pct=root_use,
        root_ro=("ro" in rootfs_opts.split(",")) if rootfs_opts else None,
        storage_fstype=storage,
        services=services,
        reboot_needed=parse_reboot(s.get("reboot", [])),
        bootloader=_first(s, "bootloader") or None,
    )


def with_clock_offsets(
    results: list[NodeHealth], sent_at: dict[str, float], head: str
) -> list[NodeHealth]:
    """Set each node's clock offset against the head's clock.

    Each probe's node time is compared with the midpoint of the round trip on this
    machine; the difference to the head's own such offset is the node-vs-head offset,
    uncertain by half of both round trips.
    """
    local: dict[str, tuple[float, float]] = {}
    for h in results:
        if h.node_time is not None and h.node in sent_at:
            mid = sent_at[h.node] + h.elapsed / 2.0
            local[h.node] = (h.node_time - mid, h.elapsed / 2.0)
    if head not in local:
        return results
    head_offset, head_unc = local[head]
    out = []
    for h in results:
        if h.node in local:
            offset, unc = local[h.node]
            h = replace(h, clock_offset_s=offset - head_offset, clock_uncertainty_s=unc + head_unc)
        out.append(h)
    return out
