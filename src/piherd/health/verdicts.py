"""Health rules: thresholds from cluster.toml turn a NodeHealth into ok / warn / critical."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from piherd.health.probe import NodeHealth
from piherd.model.cluster import HealthRules


class Level(IntEnum):
    """How healthy a node is; ordered so max() gives the worst."""

    OK = 0
    WARN = 1
    CRITICAL = 2

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Verdict:
    """A node's level and the reasons for it (critical reasons first)."""

    node: str
    level: Level
    critical: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def reasons(self) -> tuple[str, ...]:
        return self.critical + self.warnings


def _num(value: float) -> str:
    return f"{value:g}"


def evaluate(health: NodeHealth, rules: HealthRules, *, compute: bool = True) -> Verdict:
    """Apply `rules` to one node's health. `compute`: the node should run slurmd."""
    if not health.reachable:
        return Verdict(health.node, Level.CRITICAL, ("unreachable",))
    crit: list[str] = []
    warn: list[str] = []
    t = health.throttling
    if "under-voltage" in t.now:
        crit.append("under-voltage")
    elif "under-voltage" in t.since_boot:
        warn.append("under-voltage since boot")
    for flag in ("throttled", "arm-freq-capped", "soft-temp-limit"):
        if flag in t.now:
            warn.append(flag)
    if health.temp_c is not None:
        if health.temp_c >= rules.temp_crit_c:
            crit.append(f"temperature {health.temp_c:.1f} C >= {_num(rules.temp_crit_c)}")
        elif health.temp_c >= rules.temp_warn_c:
            warn.append(f"temperature {health.temp_c:.1f} C >= {_num(rules.temp_warn_c)}")
    if health.root_ro:
        crit.append("root filesystem read-only")
    if health.root_use_pct is not None:
        if health.root_use_pct >= rules.disk_crit_pct:
            crit.append(f"disk {health.root_use_pct:g}% >= {_num(rules.disk_crit_pct)}")
        elif health.root_use_pct >= rules.disk_warn_pct:
            warn.append(f"disk {health.root_use_pct:g}% >= {_num(rules.disk_warn_pct)}")
    limit = rules.clock_offset_crit_s
    offset = health.clock_offset_s
    # Only judge what the measurement is sure of: the offset minus its uncertainty.
    if offset is not None and abs(offset) - health.clock_uncertainty_s > limit:
        crit.append(f"clock offset {health.clock_offset_s:+.2f} s > {_num(limit)}")
    if health.chrony_offset_s is not None and abs(health.chrony_offset_s) > limit:
        crit.append(f"chrony offset {health.chrony_offset_s:+.2f} s > {_num(limit)}")
    if health.chrony_synced is False:
        warn.append("clock not synchronised")
    warn.extend(f"reboot needed: {why}" for why in health.reboot_needed)
    # "ok" and "no-eeprom" (nothing to set) are facts, not faults: --json shows them.
    if health.bootloader and not health.bootloader.startswith(("ok", "no-eeprom")):
        warn.append(f"bootloader {health.bootloader}")
    if health.storage_mounted is False:
        crit.append("shared storage not mounted")
    # "unknown": no systemd to ask (a container or a light sim node); nothing to judge.
    if compute and health.services.get("slurmd", "unknown") not in (
        "active",
        "activating",
        "unknown",
    ):
        warn.append(f"slurmd {health.services['slurmd']}")
    if crit:
        level = Level.CRITICAL
    elif warn:
        level = Level.WARN
    else:
        level = Level.OK
    return Verdict(health.node, level, tuple(crit), tuple(warn))
