"""A health round as plain data (for --json and the dashboard) and as short table cells."""

from __future__ import annotations

from typing import Any

from piherd.health.collect import Snapshot
from piherd.health.probe import NodeHealth
from piherd.health.verdicts import Verdict


def fmt_uptime(seconds: float | None) -> str:
    """86400 -> "1d 0h"; 4000 -> "1h 6m"; 59 -> "0m"."""
    if seconds is None:
        return "-"
    minutes = int(seconds // 60)
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {mins}m"
    return f"{mins}m"


def fmt_load(h: NodeHealth) -> str:
    return "-" if h.load is None else " ".join(f"{v:.2f}" for v in h.load)


def fmt_temp(h: NodeHealth) -> str:
    return "-" if h.temp_c is None else f"{h.temp_c:.1f} C"


def fmt_mem(h: NodeHealth) -> str:
    used = h.mem_used_pct
    if used is None or h.mem_total_kb is None:
        return "-"
    return f"{used:.0f}%/{h.mem_total_kb / 1048576:.1f}G"


def fmt_root(h: NodeHealth) -> str:
    if h.root_use_pct is None:
        return "-"
    return f"{h.root_use_pct:.0f}%" + (" RO" if h.root_ro else "")


def fmt_clock(h: NodeHealth) -> str:
    if h.clock_offset_s is None:
        return "-"
    return f"{h.clock_offset_s:+.2f}s"


def fmt_storage(h: NodeHealth) -> str:
    mounted = h.storage_mounted
    if mounted is None:
        return "-" if h.reachable else "?"
    return "yes" if mounted else "NO"


def fmt_slurm(h: NodeHealth) -> str:
    if h.slurm is None:
        return "-"
    return h.slurm.label + (f" ({h.slurm.reason})" if h.slurm.reason else "")


def node_dict(h: NodeHealth, verdict: Verdict, role: str) -> dict[str, Any]:
    """One node as JSON-ready data; units in the key names."""
    t = h.throttling
    return {
        "node": h.node,
        "role": role,
        "reachable": h.reachable,
        "error": h.error,
        "level": verdict.level.label,
        "critical": list(verdict.critical),
        "warnings": list(verdict.warnings),
        "uptime_s": h.uptime_s,
        "load": list(h.load) if h.load else None,
        "temperature_c": h.temp_c,
        "throttling": {
            "source": t.source,
            "mask": t.mask,
            "now": sorted(t.now),
            "since_boot": sorted(t.since_boot),
            "text": t.describe(),
        },
        "memory_total_kb": h.mem_total_kb,
        "memory_available_kb": h.mem_available_kb,
        "memory_used_pct": h.mem_used_pct,
        "root_use_pct": h.root_use_pct,
        "root_read_only": h.root_ro,
        "clock_offset_s": h.clock_offset_s,
        "clock_uncertainty_s": h.clock_uncertainty_s,
        "chrony_offset_s": h.chrony_offset_s,
        "chrony_synced": h.chrony_synced,
        "storage_mounted": h.storage_mounted,
        "services": dict(h.services),
        "reboot_needed": list(h.reboot_needed),
        "bootloader": h.bootloader,
        "slurm": None
        if h.slurm is None
        else {
            "state": h.slurm.label,
            "base_state": h.slurm.state,
            "flags": sorted(h.slurm.flags),
            "reason": h.slurm.reason,
            "reason_user": h.slurm.reason_user,
            "drained_by_piherd": h.slurm.drained_by_piherd,
        },
        "probe_s": round(h.elapsed, 4),
    }


def snapshot_dict(snap: Snapshot) -> dict[str, Any]:
    """The whole round as JSON-ready data."""
    return {
        "time": snap.time,
        "elapsed_s": round(snap.elapsed, 4),
        "slurm_error": snap.slurm_error,
        "nodes": [
            node_dict(h, snap.verdicts[h.node], snap.roles.get(h.node, "")) for h in snap.health
        ],
        "jobs": [
            {
                "job_id": j.job_id,
                "state": j.state,
                "user": j.user,
                "time": j.time,
                "nodes": j.nodes,
                "nodelist": j.nodelist,
                "reason": j.reason,
                "name": j.name,
            }
            for j in snap.jobs
        ],
    }
