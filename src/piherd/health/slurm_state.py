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
        """What sinfo would call it: drained, draining, down, idle, allocated, ... (* = no
        response)."""
        if self.drain:
            text = "draining" if self.state in ("allocated", "mixed") else "drained"
            if self.down:
                text = "down+drained"
        else:
            text = self.state
        return text + ("*" if "NOT_RESPONDING" in self.flags else "")


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
        if part.endswith("*"):
            flags.add("NOT_RESPONDING")
            part = part.rstrip("*")
        cleaned.append(part)
    flags.update(p.upper() for p in cleaned[1:])
    return cleaned[0].lower(), frozenset(flags)


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
