"""A rolling upgrade as data (pure): the batch size, the order (canary first, then batches,
the head last), each node's outcome, and what apt printed turned into "package old -> new"."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

_COUNT = re.compile(r"[1-9][0-9]{0,4}")
_PERCENT = re.compile(r"([1-9][0-9]?|100)%")
# apt-get's dpkg lines: "Unpacking piherd-demo (2) over (1) ..." (an upgrade) or
# "Unpacking piherd-demo (2) ..." (a package new on the node).
_UNPACKING = re.compile(r"Unpacking (\S+) \(([^)\s]+)\)(?: over \(([^)\s]+)\))?")
# `apt-get -s`: "Inst piherd-demo [1] (2 repo [all])" (old version in brackets when installed).
_SIMULATED = re.compile(r"Inst (\S+) (?:\[([^\]\s]+)\] )?\(([^\s)]+)")

# Outcome states, in the report.
UNTOUCHED = "untouched"  # never drained by this run (or drained, then resumed unchanged)
UPGRADED = "upgraded"  # upgraded, health gate passed, back in service
RESET = "reset"  # `piherd reset`: rebooted to its clean root, gate passed, back in service
FAILED = "failed"  # a step failed; the node says which and why
INTERRUPTED = "interrupted"  # Ctrl-C twice while its packages were being changed
PLANNED = "planned"  # --dry-run: what would happen


@dataclass(frozen=True)
class BatchSize:
    """How many nodes go at once after the canary: a count, or a percentage of the nodes."""

    count: int = 1
    percent: int = 0

    def of(self, total: int) -> int:
        """Nodes per batch for a rollout of `total` nodes (at least one)."""
        if self.percent:
            return max(1, math.ceil(total * self.percent / 100))
        return self.count

    def describe(self) -> str:
        return f"{self.percent}%" if self.percent else str(self.count)


def parse_batch(text: str) -> BatchSize:
    """ "4" -> 4 nodes a batch; "25%" -> a quarter of the nodes; ValueError otherwise."""
    text = text.strip()
    if _COUNT.fullmatch(text):
        return BatchSize(count=int(text))
    match = _PERCENT.fullmatch(text)
    if match:
        return BatchSize(percent=int(match.group(1)))
    raise ValueError(f"{text!r} is not a batch size: give a count (4) or a percentage (25%)")


def plan_batches(
    names: Sequence[str], *, canary: int, batch: BatchSize, last: Sequence[str] = ()
) -> list[list[str]]:
    """The rollout's batches, in order: the first `canary` nodes alone (one batch), then the
    others `batch` at a time, then `last` (the head: the controller goes after its workers).
    `canary` 0 means no canary batch."""
    if canary < 0:
        raise ValueError("the canary count cannot be negative")
    tail = [n for n in dict.fromkeys(last) if n in names]
    rest = [n for n in dict.fromkeys(names) if n not in tail]
    batches: list[list[str]] = []
    if canary and rest:
        batches.append(rest[:canary])
        rest = rest[canary:]
    size = batch.of(len(names))
    batches += [rest[i : i + size] for i in range(0, len(rest), size)]
    if tail:
        batches.append(tail)
    return batches


@dataclass
class NodeOutcome:
    """How one node's upgrade went; `times` holds when each step started (epoch seconds)."""

    node: str
    batch: int
    canary: bool = False
    state: str = UNTOUCHED
    reason: str = ""
    slurm: str = ""  # what the rollout did in Slurm: "drained", "kept: <admin's reason>", ""
    rebooted: bool = False
    packages: tuple[str, ...] = ()
    times: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "batch": self.batch,
            "canary": self.canary,
            "state": self.state,
            "reason": self.reason,
            "slurm": self.slurm,
            "rebooted": self.rebooted,
            "packages": list(self.packages),
            "times": dict(self.times),
        }


def upgraded_packages(apt_output: str) -> tuple[str, ...]:
    """ "piherd-demo 1 -> 2" (or "name (new) 2") for every package apt unpacked."""
    found = []
    for m in _UNPACKING.finditer(apt_output):
        name, new, old = m.group(1), m.group(2), m.group(3)
        found.append(f"{name} {old} -> {new}" if old else f"{name} (new) {new}")
    return tuple(dict.fromkeys(found))


def simulated_packages(apt_output: str) -> tuple[str, ...]:
    """The same for `apt-get -s` output (what an upgrade would do)."""
    found = []
    for m in _SIMULATED.finditer(apt_output):
        name, old, new = m.group(1), m.group(2), m.group(3)
        found.append(f"{name} {old} -> {new}" if old else f"{name} (new) {new}")
    return tuple(dict.fromkeys(found))


def apt_failure(output: str, limit: int = 3) -> str:
    """The lines of apt/dpkg output that say why it failed (dpkg errors first)."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    picked = [ln for ln in lines if ln.startswith(("dpkg: error", "E: "))]
    picked += [ln for ln in lines if "returned error exit status" in ln and ln not in picked]
    return " / ".join((picked or lines)[-limit:]) or "no output"


def has_rebooted(before: str, now: str, since_asked: float) -> bool:
    """Whether a node rebooted, from `debian.boot_marks()` read before the reboot was asked
    for and now, `since_asked` seconds later: a new boot id, or an uptime shorter than the
    time since the reboot was asked for. A container (LXC, nspawn, the sim's nodes) shares
    its host's boot id, but its uptime starts again; on a Pi both change."""
    old, new = before.split(), now.split()
    if not old or len(new) < 2:
        return False
    try:
        uptime = float(new[1])
    except ValueError:
        return False
    return new[0] != old[0] or uptime < since_asked
