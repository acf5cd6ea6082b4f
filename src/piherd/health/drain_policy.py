"""The watch state machine: observations in, Slurm actions and log events out (no I/O).

Rules it keeps:
- a node that is critical is drained with reason "piherd: <reasons>"; an unreachable
  one is first marked down, so Slurm requeues its jobs now, not after SlurmdTimeout;
- an unreachable node counts as critical only after `unreachable_after` failed probes
  in a row (short timeouts make that a few seconds), so one lost packet drains nothing;
- a node drained by piherd is resumed after `resume_after` healthy rounds in a row;
- a node drained (or set down with a reason) by anyone else, i.e. a reason without the
  "piherd:" prefix, is never touched;
- a node drained by `piherd upgrade` ("piherd: upgrade...") is left to the upgrade: it may
  be rebooting, and the upgrade resumes it once it passes its own health gate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from piherd.health.slurm_state import SlurmNode, piherd_reason
from piherd.health.verdicts import Level, Verdict


@dataclass(frozen=True)
class Action:
    """A change to make in Slurm: kind "drain" (with reason) or "resume"."""

    kind: str
    node: str
    reason: str = ""
    # Mark the node down first (a dead node: Slurm requeues its --requeue jobs at once
    # instead of after SlurmdTimeout), then drain it.
    down: bool = False


@dataclass(frozen=True)
class Event:
    """A line of the watch log: a level change or an action, with time and reason."""

    time: float
    node: str
    kind: str  # "level", "drain", "resume", "hold" (admin drain left alone)
    level: str
    previous: str
    reasons: tuple[str, ...]
    message: str

    def as_dict(self) -> dict[str, object]:
        return {
            "time": self.time,
            "node": self.node,
            "kind": self.kind,
            "level": self.level,
            "previous": self.previous,
            "reasons": list(self.reasons),
            "message": self.message,
        }


@dataclass
class _NodeMemory:
    level: Level | None = None
    failures: int = 0
    healthy_rounds: int = 0
    held: bool = False  # we already logged that an admin drain is left alone


@dataclass
class WatchMachine:
    """Remembers each node between rounds; `step` is pure apart from that memory."""

    unreachable_after: int = 2
    resume_after: int = 2
    memory: dict[str, _NodeMemory] = field(default_factory=dict)

    def step(
        self,
        now: float,
        verdicts: list[Verdict],
        slurm: dict[str, SlurmNode] | None,
    ) -> tuple[list[Action], list[Event]]:
        """One round: the verdicts of this round's probes and Slurm's node states
        (None when Slurm could not be asked: then nothing is changed in Slurm)."""
        actions: list[Action] = []
        events: list[Event] = []
        for verdict in verdicts:
            mem = self.memory.setdefault(verdict.node, _NodeMemory())
            unreachable = verdict.critical == ("unreachable",)
            mem.failures = mem.failures + 1 if unreachable else 0
            level = verdict.level
            if unreachable and mem.failures < self.unreachable_after:
                # Not yet confirmed: keep what was known. A node never seen answering has
                # no level yet (a powered-off node must not read "unknown -> ok"); a failed
                # probe is no healthy round either.
                if mem.level is None:
                    continue
                level = mem.level
                mem.healthy_rounds = 0
            elif level == Level.CRITICAL:
                mem.healthy_rounds = 0
            else:
                mem.healthy_rounds += 1
            if level != mem.level:
                previous = mem.level.label if mem.level is not None else "unknown"
                events.append(
                    Event(
                        now,
                        verdict.node,
                        "level",
                        level.label,
                        previous,
                        verdict.reasons if level != Level.OK else (),
                        f"{previous} -> {level.label}"
                        + (f": {'; '.join(verdict.reasons)}" if level != Level.OK else ""),
                    )
                )
                mem.level = level
            node = slurm.get(verdict.node) if slurm is not None else None
            if node is None:
                continue
            act = self._decide(verdict, level, mem, node, now, events)
            if act is not None:
                actions.append(act)
        return actions, events

    def _decide(
        self,
        verdict: Verdict,
        level: Level,
        mem: _NodeMemory,
        node: SlurmNode,
        now: float,
        events: list[Event],
    ) -> Action | None:
        if node.drained_for_upgrade or (node.held and not node.drained_by_piherd):
            if not mem.held:
                who = "piherd upgrade" if node.drained_for_upgrade else node.reason_user
                events.append(
                    Event(
                        now,
                        node.name,
                        "hold",
                        level.label,
                        level.label,
                        (node.reason,),
                        f"drained by {who or 'an admin'} ({node.reason!r}): left alone",
                    )
                )
                mem.held = True
            return None
        mem.held = False
        if level == Level.CRITICAL:
            reason = piherd_reason(verdict.critical)
            dead = verdict.critical == ("unreachable",)
            if node.drain and node.reason == reason and (node.down or not dead):
                return None
            events.append(
                Event(
                    now,
                    node.name,
                    "drain",
                    level.label,
                    node.label,
                    verdict.critical,
                    reason,
                )
            )
            return Action("drain", node.name, reason, down=dead and not node.down)
        if (
            node.drained_by_piherd
            and verdict.level != Level.CRITICAL
            and mem.healthy_rounds >= self.resume_after
        ):
            events.append(
                Event(
                    now,
                    node.name,
                    "resume",
                    level.label,
                    node.label,
                    verdict.reasons,
                    f"healthy again (was {node.reason!r})",
                )
            )
            return Action("resume", node.name)
        return None
