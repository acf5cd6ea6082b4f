"""Slurm as piherd sees it: node states and the queue parsed from the head, drain/resume argv.

Everything here is pure: commands are argv lists (the transport quotes them), parsers
take the text `scontrol show node -o` and `squeue` print.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PIHERD_REASON_PREFIX = "piherd:"
# The reason of `piherd upgrade`'s drains ("piherd: upgrade", "piherd: upgrade failed: ...").
# `watch` leaves such a node alone: the upgrade resumes it when it passes its health gate.
UPGRADE_REASON = f"{PIHERD_REASON_PREFIX} upgrade"

NODES_ARGV: tuple[str, ...] = ("scontrol", "show", "node", "-o")
QUEUE_FIELDS = "%i|%T|%u|%M|%D|%N|%r|%j"
QUEUE_ARGV: tuple[str, ...] = ("squeue", "-h", "-o", QUEUE_FIELDS)

_KEY = re.compile(r"(?:^|(?<=\s))([A-Z][A-Za-z_]*)=")
_REASON_TAIL = re.compile(r"\s*\[([^@\]]*)@([^\]]*)\]\s*$")
_NODE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

# Slurm's base node states (the part of `State=` before the first "+").
BASE_STATES: tuple[str, ...] = (
    "allocated", "down", "error", "future", "idle", "mixed", "unknown",
)  # fmt: skip
# Slurm 22.05's node state flags as scontrol prints them (node_state_flag_string), lower
# case; "maintenance" is MAINT's spelling there. DRAIN is reported as `drained`/`draining`.
FLAG_STATES: tuple[str, ...] = (
    "cloud", "completing", "dynamic_future", "dynamic_norm", "fail", "invalid_reg",
    "maintenance", "not_responding", "perfctrs", "planned", "power_down", "power_drain",
    "power_up", "powered_down", "powering_down", "powering_up", "reboot_issued",
    "reboot_requested", "reserved", "resume", "undrain",
)  # fmt: skip
# The closed set of `state` label values of piherd_slurm_node_state: a flag newer than
# this list is exported as "other", so the label set never grows with what Slurm prints.
METRIC_STATES: tuple[str, ...] = (*BASE_STATES, "drained", "draining", *FLAG_STATES, "other")
# sinfo's one-character suffixes (sinfo(1), NODE STATE CODES), in case a state comes from it.
_SUFFIX_FLAGS = {
    "*": "NOT_RESPONDING", "~": "POWERED_DOWN", "#": "POWERING_UP", "%": "POWERING_DOWN",
    "!": "POWER_DOWN", "@": "REBOOT_REQUESTED", "^": "REBOOT_ISSUED", "-": "PLANNED",
    "$": "MAINTENANCE",
}  # fmt: skip


def _flag_label(flag: str) -> str:
    """A Slurm flag as a metric label value: lower case when known, else "other"."""
    label = flag.lower()
    if label == "maint":
        label = "maintenance"
    return label if label in FLAG_STATES else "other"


@dataclass(frozen=True)
class SlurmNode:
    """One node's Slurm state: base state (idle, allocated, down...), flags, reason."""

    name: str
    state: str  # lower case base state: idle, allocated, mixed, down, unknown, ...
    flags: frozenset[str] = frozenset()  # DRAIN, NOT_RESPONDING, COMPLETING, ...
    reason: str = ""
    reason_user: str = ""
    reason_time: str = ""

    @property
    def drain(self) -> bool:
        return "DRAIN" in self.flags

    @property
    def down(self) -> bool:
        return self.state == "down"

    @property
    def held(self) -> bool:
        """Out of service by someone's decision: drained, or set down with a reason by a
        person (Slurm's own "Not responding" is reported by user "slurm": not a decision)."""
        return self.drain or (self.down and bool(self.reason) and self.reason_user != "slurm")

    @property
    def drained_by_piherd(self) -> bool:
        """Drained or set down by piherd (its reason starts with "piherd:")."""
        return self.held and self.reason.startswith(PIHERD_REASON_PREFIX)

    @property
    def drained_for_upgrade(self) -> bool:
        """Drained by `piherd upgrade` (now, or by a run that was cut off or failed)."""
        return self.held and (
            self.reason == UPGRADE_REASON or self.reason.startswith(UPGRADE_REASON + " ")
        )

    @property
    def label(self) -> str:
        """What status and the dashboard show: sinfo's word for the state (drained,
        draining, down+drained, idle, allocated, ...), then every other flag in lower case
        (`idle+completing`, `idle+powered_down`), then `*` when the node does not respond."""
        drained = "down+drained" if self.down else self._drain_word
        text = drained if self.drain else self.state
        extra = sorted(self.flags - {"DRAIN", "NOT_RESPONDING"})
        text += "".join(f"+{_flag_label(flag)}" for flag in extra)
        return text + ("*" if "NOT_RESPONDING" in self.flags else "")

    @property
    def _drain_word(self) -> str:
        """sinfo's word for a DRAIN node: draining while jobs still run or complete."""
        busy = self.state in ("allocated", "mixed") or "COMPLETING" in self.flags
        return "draining" if busy and not self.down else "drained"

    @property
    def metric_states(self) -> frozenset[str]:
        """The values of METRIC_STATES that apply to this node. As in sinfo, a drained node
        is `drained` or `draining` instead of idle/allocated/mixed, so `idle` counts the
        nodes that can take a job; a DOWN+DRAIN node is both `down` and `drained`; every
        other flag adds its own value (`completing`, `not_responding`, ...)."""
        base = self.state if self.state in BASE_STATES else "unknown"
        applied = {base}
        if self.drain:
            applied = {"down", "drained"} if self.down else {self._drain_word}
        applied.update(_flag_label(flag) for flag in self.flags - {"DRAIN"})
        return frozenset(applied)


@dataclass(frozen=True)
class Job:
    """One job in the Slurm queue."""

    job_id: str
    state: str
    user: str
    time: str
    nodes: int
    nodelist: str
    reason: str
    name: str


def split_fields(line: str) -> dict[str, str]:
    """Split one `scontrol -o` line into {Key: value}; values may contain spaces."""
    matches = list(_KEY.finditer(line))
    fields: dict[str, str] = {}
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(line)
        fields.setdefault(m.group(1), line[m.end() : end].strip())
    return fields


def parse_state(text: str) -> tuple[str, frozenset[str]]:
    """ "IDLE+DRAIN" -> ("idle", {"DRAIN"}); "DOWN*" -> ("down", {"NOT_RESPONDING"})."""
    parts = [p for p in text.strip().split("+") if p]
    if not parts:
        return "unknown", frozenset()
    flags = set()
    cleaned = []
    for part in parts:
        while part and part[-1] in _SUFFIX_FLAGS:
            flags.add(_SUFFIX_FLAGS[part[-1]])
            part = part[:-1]
        cleaned.append(part)
    flags.update(p.upper() for p in cleaned[1:] if p)
    return (cleaned[0].lower() or "unknown"), frozenset(flags)


def parse_nodes(text: str) -> dict[str, SlurmNode]:
    """Parse `scontrol show node -o` into {node name: SlurmNode}."""
    nodes: dict[str, SlurmNode] = {}
    for line in text.splitlines():
        if not line.startswith("NodeName="):
            continue
        f = split_fields(line)
        state, flags = parse_state(f.get("State", ""))
        reason, user, when = f.get("Reason", ""), "", ""
        if reason in ("(null)", "none"):
            reason = ""
        tail = _REASON_TAIL.search(reason)
        if tail:
            user, when = tail.group(1), tail.group(2)
            reason = reason[: tail.start()].strip()
        name = f["NodeName"]
        nodes[name] = SlurmNode(name, state, flags, reason, user, when)
    return nodes


def parse_queue(text: str) -> list[Job]:
    """Parse `squeue -h -o QUEUE_FIELDS` (the job name comes last: it may contain '|')."""
    jobs = []
    for line in text.splitlines():
        parts = line.split("|", 7)
        if len(parts) != 8:
            continue
        job_id, state, user, time, count, nodelist, reason, name = parts
        jobs.append(
            Job(
                job_id.strip(),
                state.strip(),
                user.strip(),
                time.strip(),
                int(count) if count.strip().isdigit() else 0,
                nodelist.strip(),
                reason.strip(),
                name.strip(),
            )
        )
    return jobs


def _check_name(node: str) -> str:
    if not _NODE_NAME.fullmatch(node):
        raise ValueError(f"bad node name {node!r}")
    return node


def drain_argv(node: str, reason: str) -> list[str]:
    """`scontrol update` that drains `node` with `reason` (one line, no newlines)."""
    reason = " ".join(reason.split())
    if not reason:
        raise ValueError("a drain needs a reason")
    return [
        "scontrol",
        "update",
        f"NodeName={_check_name(node)}",
        "State=DRAIN",
        f"Reason={reason}",
    ]


def down_argv(node: str, reason: str) -> list[str]:
    """`scontrol update` that marks `node` down: Slurm requeues (--requeue) or ends its jobs."""
    argv = drain_argv(node, reason)
    argv[3] = "State=DOWN"
    return argv


def resume_argv(node: str) -> list[str]:
    """`scontrol update` that returns a drained or down `node` to service."""
    return ["scontrol", "update", f"NodeName={_check_name(node)}", "State=RESUME"]


def requeue_argv(job_id: str) -> list[str]:
    """`scontrol requeue` of one job (a batch job starts again from its beginning)."""
    if not job_id.isdigit():
        raise ValueError(f"bad job id {job_id!r}")
    return ["scontrol", "requeue", job_id]


def node_jobs_argv(node: str) -> list[str]:
    """`squeue` listing the jobs that hold `node` now (running, completing, suspended)."""
    return ["squeue", "-h", "-w", _check_name(node), "-o", QUEUE_FIELDS]


def node_argv(node: str) -> list[str]:
    """`scontrol show node -o` of one node."""
    return [*NODES_ARGV, _check_name(node)]


def piherd_reason(reasons: list[str] | tuple[str, ...]) -> str:
    """The Slurm reason piherd writes: "piherd: under-voltage; temperature 82.0 C >= 80"."""
    return f"{PIHERD_REASON_PREFIX} " + "; ".join(reasons)
