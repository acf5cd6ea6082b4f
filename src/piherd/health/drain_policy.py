"""The watch state machine: observations in, Slurm actions and log events out (no I/O).

Rules it keeps:
- a node that is critical is drained with reason "piherd: <reasons>"; an unreachable
  one is first marked down, so Slurm requeues its jobs now, not after SlurmdTimeout;
- an unreachable node counts as critical only after `unreachable_after` failed probes
  in a row, and `slow_grace` seconds after the first of them, so one lost packet or a
  node slowed down by load drains nothing;
- a round in which the watcher could not reach the head either (`blind`: its own host
  starved of CPU, or its network down) says nothing about unreachable nodes: they keep
  their state and count, and nothing is drained for being unreachable in it;
- except a node that is gone: its probe failed and a second, fast probe found not even
  its kernel answering (no TCP connection to its SSH port: power cut, kernel hung,
  cable pulled). It is critical at once: that is what drains a dead node in seconds;
- a node drained by piherd is resumed after `resume_after` healthy rounds in a row;
- a node drained (or set down with a reason) by anyone else, i.e. a reason without the
  "piherd:" prefix, is never touched;
- with `cycle_after` (services.power.watch_cycle), a node unreachable for that many
  probes in a row is power-cycled once; again only after it has answered in between.
- a node drained by `piherd upgrade` ("piherd: upgrade...") is left to the upgrade: it may
  be rebooting, and the upgrade resumes it once it passes its own health gate.
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass, field

from piherd.health.slurm_state import SlurmNode, piherd_reason
from piherd.health.verdicts import Level, Verdict


@dataclass(frozen=True)
class Action:
    """A change to make: kind "drain" (with reason) or "resume" in Slurm, or "power-cycle"."""

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
    failing_since: float = 0.0  # time of the first of `failures`
    healthy_rounds: int = 0
    held: bool = False  # we already logged that an admin drain is left alone
    cycled: bool = False  # power-cycled in this unreachable spell


@dataclass
class WatchMachine:
    """Remembers each node between rounds; `step` is pure apart from that memory."""

    unreachable_after: int = 2
    resume_after: int = 2
    cycle_after: int = 0  # 0: never power-cycle
    slow_grace: float = 0.0  # seconds an unreachable node that is not gone is given
    memory: dict[str, _NodeMemory] = field(default_factory=dict)

    def step(
        self,
        now: float,
        verdicts: list[Verdict],
        slurm: dict[str, SlurmNode] | None,
        gone: Set[str] = frozenset(),
        *,
        blind: bool = False,
    ) -> tuple[list[Action], list[Event]]:
        """One round: the verdicts of this round's probes, Slurm's node states (None when
        Slurm could not be asked: then nothing is changed in Slurm) and the unreachable
        nodes a second probe confirmed gone; `blind`: the head did not answer this round."""
        actions: list[Action] = []
        events: list[Event] = []
        for verdict in verdicts:
            mem = self.memory.setdefault(verdict.node, _NodeMemory())
            unreachable = verdict.critical == ("unreachable",)
            if unreachable and blind:
                continue
            mem.failures = mem.failures + 1 if unreachable else 0
            if mem.failures == 1:
                mem.failing_since = now
            cycle = self._cycle(verdict.node, mem, now, events)
            if cycle is not None:
                actions.append(cycle)
            level = verdict.level
            if unreachable and verdict.node not in gone and not self._long_enough(mem, now):
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
                        + (f": {'; '.join(verdict.reasons)}" if level != Level.OK else "")
                        + (
                            self._why_unreachable(verdict.node, mem, now, gone)
                            if unreachable and level == Level.CRITICAL
                            else ""
                        ),
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

    def _cycle(self, node: str, mem: _NodeMemory, now: float, events: list[Event]) -> Action | None:
        if mem.failures == 0:
            mem.cycled = False
        if not self.cycle_after or mem.cycled or mem.failures < self.cycle_after:
            return None
        mem.cycled = True
        reason = f"piherd: unreachable for {mem.failures} probes"
        events.append(
            Event(now, node, "power-cycle", "critical", "critical", ("unreachable",), reason)
        )
        return Action("power-cycle", node, reason)

    @staticmethod
    def _why_unreachable(node: str, mem: _NodeMemory, now: float, gone: Set[str]) -> str:
        if node in gone:
            return " (no TCP answer either: gone)"
        return f" ({mem.failures} failed rounds in {now - mem.failing_since:.0f} s)"

    def _long_enough(self, mem: _NodeMemory, now: float) -> bool:
        """Whether a node that is unreachable but not gone has failed for long enough."""
        return mem.failures >= self.unreachable_after and now - mem.failing_since >= self.slow_grace

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
