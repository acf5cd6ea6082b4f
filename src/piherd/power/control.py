"""Power actions over node sets: staggered ons, side-by-side offs, the log, --wait.

Power-ons are staggered (services.power.stagger_s between two, the boot current of a
stack of Pis adds up); offs and status queries run side by side. Every on, off and
cycle is logged with who and why (power/journal.py). With `wait`, each node powered on
is waited for until its sshd accepts piherd's login (services.power.wait_timeout_s).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from piherd.model import Cluster
from piherd.power.base import DriverContext, PowerError
from piherd.power.drivers import driver
from piherd.power.journal import default_log_path, record, who
from piherd.power.settings import PowerSettings, Target, targets
from piherd.transport.base import TransportError
from piherd.transport.pool import ConnectionPool

ACTIONS = ("on", "off", "cycle", "status")
PARALLEL = 16  # offs and status queries at a time
WAIT_POLL_S = 2.0

Progress = Callable[["PowerOutcome"], None]


class PowerSetupError(ValueError):
    """Power control cannot work for the nodes asked (service off, a node without controller)."""


@dataclass(frozen=True)
class PowerOutcome:
    """What one action did to one node."""

    node: str
    action: str
    ok: bool
    driver: str
    state: str = ""  # status: on / off / unknown; after --wait: "up"
    error: str = ""
    at: float = 0.0  # when the command was sent (seconds since the epoch)

    def as_dict(self) -> dict[str, object]:
        return {
            "node": self.node,
            "action": self.action,
            "ok": self.ok,
            "driver": self.driver,
            "state": self.state,
            "error": self.error,
            "at": round(self.at, 3),
        }


def power_targets(cluster: Cluster, names: Sequence[str]) -> dict[str, Target]:
    """Each node with its controller; PowerSetupError when power control cannot reach one."""
    settings = cluster.services.find(PowerSettings)
    if settings is None or not settings.enabled:
        raise PowerSetupError(
            "power control is off: add [services.power] with enabled = true and a "
            "[[services.power.controllers]] entry for these nodes"
        )
    try:
        return targets(cluster, settings, list(names))
    except KeyError as exc:
        raise PowerSetupError(
            f"{exc.args[0]} has no power controller: add it to the nodes of a "
            "[[services.power.controllers]] entry"
        ) from None


async def _ssh_run(cluster: Cluster, node: str, argv: Sequence[str]) -> tuple[int | None, str, str]:
    async with ConnectionPool(cluster, connect_timeout=10.0) as pool:
        try:
            transport = await pool.get(node)
        except TransportError as exc:
            return None, "", exc.reason
        result = await transport.run(argv, sudo=True, timeout=30.0)
        return result.rc, result.stdout, result.error or result.stderr


def driver_context(cluster: Cluster, settings: PowerSettings) -> DriverContext:
    """What the drivers get for `cluster`: its secrets, SSH settings, subnet broadcast."""

    async def run_on_node(node: str, argv: Sequence[str]) -> tuple[int | None, str, str]:
        return await _ssh_run(cluster, node, argv)

    return DriverContext(
        secrets_dir=Path(cluster.secrets_dir),
        timeout=settings.command_timeout_s,
        run_on_node=run_on_node,
        ssh_config=cluster.ssh_config,
        known_hosts=cluster.known_hosts,
        ssh_identity=cluster.ssh_identity,
        broadcast=str(cluster.network.subnet.broadcast_address),
        ssh_port=cluster.ssh_port,
    )


class PowerRun:
    """One `piherd power` invocation: its targets, settings, log and progress callback."""

    def __init__(
        self,
        cluster: Cluster,
        names: Sequence[str],
        *,
        reason: str = "",
        log_path: Path | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.cluster = cluster
        self.targets = power_targets(cluster, names)
        self.settings = cluster.services.get(PowerSettings)
        self.ctx = driver_context(cluster, self.settings)
        self.reason = reason or "(no reason given)"
        self.log_path = log_path or default_log_path()
        self.progress = progress
        self.user = who()
        # One request at a time per controller (a switch, a BMC, a ClusterHAT's Pi):
        # small ones answer a second request while busy with an error, or not at all.
        self._busy: dict[tuple[str, str], asyncio.Lock] = {}

    def _done(self, outcome: PowerOutcome) -> PowerOutcome:
        if outcome.action != "status":
            entry = {**outcome.as_dict(), "user": self.user, "reason": self.reason}
            entry["host"] = self.targets[outcome.node].host
            record(self.log_path, entry)
        if self.progress is not None:
            self.progress(outcome)
        return outcome

    async def _one(self, node: str, action: str) -> PowerOutcome:
        target = self.targets[node]
        kind = target.controller.driver
        busy = self._busy.setdefault((kind, target.host), asyncio.Lock())
        async with busy:
            return await self._switch(target, node, action)

    async def _switch(self, target: Target, node: str, action: str) -> PowerOutcome:
        kind = target.controller.driver
        at = time.time()
        try:
            impl = driver(kind)
            if action == "on":
                await impl.on(target, self.ctx)
            elif action == "off":
                await impl.off(target, self.ctx)
            else:
                state = await impl.status(target, self.ctx)
                return self._done(PowerOutcome(node, action, True, kind, state, at=at))
        except PowerError as exc:
            return self._done(PowerOutcome(node, action, False, kind, error=str(exc), at=at))
        return self._done(PowerOutcome(node, action, True, kind, action, at=at))

    async def _side_by_side(self, action: str, nodes: Sequence[str]) -> list[PowerOutcome]:
        limit = asyncio.Semaphore(PARALLEL)

        async def one(node: str) -> PowerOutcome:
            async with limit:
                return await self._one(node, action)

        return list(await asyncio.gather(*(one(n) for n in nodes)))

    async def _staggered_on(self, nodes: Sequence[str]) -> list[PowerOutcome]:
        outcomes = []
        for position, node in enumerate(nodes):
            if position:
                await asyncio.sleep(self.settings.stagger_s)
            outcomes.append(await self._one(node, "on"))
        return outcomes

    async def run(self, action: str, *, wait: bool = False) -> list[PowerOutcome]:
        """Do `action` on every target, in the nodes' order; one outcome per node and step."""
        if action not in ACTIONS:
            raise ValueError(f"unknown power action {action!r}")
        nodes = list(self.targets)
        if action in ("off", "status"):
            return await self._side_by_side(action, nodes)
        outcomes: list[PowerOutcome] = []
        if action == "cycle":
            offs = await self._side_by_side("off", nodes)
            outcomes += offs
            nodes = [o.node for o in offs if o.ok]
            if nodes:
                await asyncio.sleep(self.settings.cycle_off_s)
        ons = await self._staggered_on(nodes)
        outcomes += ons
        if wait:
            up = [o.node for o in ons if o.ok]
            outcomes += await self._wait_all(up)
        return outcomes

    async def _wait_all(self, nodes: Sequence[str]) -> list[PowerOutcome]:
        deadline = time.monotonic() + self.settings.wait_timeout_s
        async with ConnectionPool(self.cluster, connect_timeout=5.0) as pool:
            return list(await asyncio.gather(*(self._wait(pool, n, deadline) for n in nodes)))

    async def _wait(self, pool: ConnectionPool, node: str, deadline: float) -> PowerOutcome:
        """Until the node's sshd accepts piherd's login and runs `true`, or the deadline."""
        kind = self.targets[node].controller.driver
        last = "no answer yet"
        while True:
            try:
                transport = await pool.get(node)
                result = await transport.run(["true"], timeout=5.0)
                if result.ok:
                    outcome = PowerOutcome(node, "wait", True, kind, "up", at=time.time())
                    return self._done_wait(outcome)
                last = result.error or f"exit {result.rc}"
            except TransportError as exc:
                last = exc.reason
            await pool.forget(node)
            if time.monotonic() + WAIT_POLL_S > deadline:
                error = f"SSH did not answer within {self.settings.wait_timeout_s:g} s ({last})"
                return self._done_wait(PowerOutcome(node, "wait", False, kind, error=error))
            await asyncio.sleep(WAIT_POLL_S)

    def _done_wait(self, outcome: PowerOutcome) -> PowerOutcome:
        if self.progress is not None:
            self.progress(outcome)
        return outcome
