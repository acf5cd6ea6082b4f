"""The `piherd watch` loop: health rounds at a fixed rate, the state machine, Slurm actions.

Rounds start every `interval` seconds (not `interval` after the previous one ended). A
node that loses power is drained within about interval + probe timeout + confirm timeout
seconds when the collector confirms failures (the node is `gone`: see health/collect.py),
else within about unreachable_after x interval + probe timeout (and `slow_grace`). Every
event goes to a JSON-lines log and a human log.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from piherd.health.collect import SLURM_TIMEOUT, HealthCollector, Snapshot
from piherd.health.drain_policy import Action, Event, WatchMachine
from piherd.health.slurm_state import down_argv, drain_argv, resume_argv
from piherd.power.control import PowerRun, PowerSetupError


def human_line(event: Event, cluster: str = "") -> str:
    """One line of the human log: UTC time, cluster (when named), node, what happened."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(event.time))
    where = f"{cluster} {event.node}" if cluster else event.node
    return f"{stamp} {where} {event.kind}: {event.message}"


@dataclass
class WatchLog:
    """Appends events to DIR/watch.jsonl and DIR/watch.log (created on first write).

    With `cluster`, every line names it (several clusters may log to one place).
    """

    directory: Path | None
    echo: Callable[[str], None] | None = None
    cluster: str = ""

    def write(self, event: Event) -> None:
        line = human_line(event, self.cluster)
        if self.echo is not None:
            self.echo(line)
        if self.directory is None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / "watch.jsonl").open("a", encoding="utf-8") as f:
            record = event.as_dict()
            if self.cluster:
                record["cluster"] = self.cluster
            f.write(json.dumps(record, sort_keys=True) + "\n")
        with (self.directory / "watch.log").open("a", encoding="utf-8") as f:
            f.write(line + "\n")


async def apply_action(
    collector: HealthCollector, action: Action, *, dry_run: bool, now: float
) -> Event | None:
    """Drain or resume through scontrol on the head, or power-cycle the node through its
    power controller; an Event when it failed or was skipped."""
    if action.kind == "power-cycle":
        return await _power_cycle(collector, action, dry_run=dry_run, now=now)
    commands: list[list[str]] = []
    if action.kind == "drain":
        if action.down:
            commands.append(down_argv(action.node, action.reason))
        commands.append(drain_argv(action.node, action.reason))
    else:
        commands.append(resume_argv(action.node))
    if dry_run:
        text = " && ".join(shlex.join(argv) for argv in commands)
        return Event(now, action.node, "dry-run", "", "", (), f"would run: {text}")
    for argv in commands:
        error, _, _ = await collector.run_on(
            collector.cluster.head.name,
            argv,
            sudo=True,
            timeout=SLURM_TIMEOUT,
        )
        if error is not None:
            return Event(
                now, action.node, "error", "", "", (error,), f"{action.kind} failed: {error}"
            )
    return None


async def _power_cycle(
    collector: HealthCollector, action: Action, *, dry_run: bool, now: float
) -> Event | None:
    if dry_run:
        return Event(now, action.node, "dry-run", "", "", (), "would power-cycle it")
    try:
        run = PowerRun(collector.cluster, [action.node], reason=action.reason)
        outcomes = await run.run("cycle")
    except PowerSetupError as exc:
        return Event(now, action.node, "error", "", "", (str(exc),), f"power-cycle: {exc}")
    failed = [o.error for o in outcomes if not o.ok]
    if failed:
        return Event(
            now, action.node, "error", "", "", tuple(failed), f"power-cycle failed: {failed[0]}"
        )
    return None


async def watch_rounds(
    collector: HealthCollector,
    names: Sequence[str],
    *,
    interval: float,
    log: WatchLog,
    once: bool = False,
    dry_run: bool = False,
    unreachable_after: int = 2,
    resume_after: int = 2,
    cycle_after: int = 0,
    slow_grace: float = 0.0,
    on_round: Callable[[Snapshot], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Watch `names` through `collector` until `stop` is set (or one round with `once`)."""
    cluster = collector.cluster
    machine = WatchMachine(
        unreachable_after=unreachable_after,
        resume_after=resume_after,
        cycle_after=cycle_after,
        slow_grace=slow_grace,
    )
    next_start = time.monotonic()
    while True:
        snap = await collector.round(names)
        if snap.slurm is None and snap.slurm_error:
            log.write(Event(snap.time, cluster.head.name, "error", "", "", (), snap.slurm_error))
        verdicts = [snap.verdicts[h.node] for h in snap.health]
        actions, events = machine.step(
            snap.time, verdicts, snap.slurm, snap.gone, blind=not snap.head_reachable
        )
        for event in events:
            log.write(event)
        for action in actions:
            failure = await apply_action(collector, action, dry_run=dry_run, now=snap.time)
            if failure is not None:
                log.write(failure)
        if on_round is not None:
            on_round(snap)
        if once:
            return
        next_start += interval
        delay = max(0.0, next_start - time.monotonic())
        if delay == 0.0:
            next_start = time.monotonic()
        if stop is None:
            await asyncio.sleep(delay)
            continue
        try:
            async with asyncio.timeout(delay):
                await stop.wait()
            return
        except TimeoutError:
            pass
