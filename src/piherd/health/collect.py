"""One health round over the transport: probe nodes in parallel, ask Slurm once, judge.

Each node costs one round trip over its pooled (reused) connection; Slurm's view of
every node comes from one `scontrol show node -o` on the head. A probe that does not
connect within the pool's connect timeout (counted from when its handshake starts: a
cold round of many nodes waits for the pool's handshake slots) or answer within `timeout`
marks the node unreachable, and its connection is dropped so the next round reconnects
instead of waiting on a dead socket.

With `confirm_timeout` (the watch sets it), every node whose probe failed gets a second,
fast probe at once: a plain TCP connection to its SSH port. A node that only is slow
(load, a hung sshd) still has a kernel that accepts it within milliseconds; one that lost
power, hung or lost its cable does not. Those are `Snapshot.gone`, and the watch drains
them in the same round instead of waiting for another failed round.
"""

from __future__ import annotations

import asyncio
import errno
import select
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from piherd.health.probe import NodeHealth, parse_probe, probe_argv, unreachable, with_clock_offsets
from piherd.health.slurm_state import (
    NODES_ARGV,
    QUEUE_ARGV,
    Job,
    SlurmNode,
    parse_nodes,
    parse_queue,
)
from piherd.health.verdicts import Level, Verdict, evaluate
from piherd.model import Cluster
from piherd.runner.fanout import each_node
from piherd.services.slurm import SlurmSettings
from piherd.transport.base import Transport, TransportError
from piherd.transport.pool import ConnectionPool


@dataclass(frozen=True)
class Snapshot:
    """Everything one round learned: per-node health and verdicts, Slurm nodes and queue."""

    time: float
    health: tuple[NodeHealth, ...]
    verdicts: dict[str, Verdict]
    slurm: dict[str, SlurmNode] | None  # None: Slurm could not be asked
    slurm_error: str | None = None
    jobs: tuple[Job, ...] = ()
    elapsed: float = 0.0
    roles: dict[str, str] = field(default_factory=dict)
    gone: frozenset[str] = frozenset()  # probe failed, and no TCP connection either
    head_reachable: bool = True  # False: even the head did not answer this round

    def level(self, node: str) -> Level:
        verdict = self.verdicts.get(node)
        return verdict.level if verdict else Level.OK


@dataclass(frozen=True)
class ProbeInputs:
    """What one node's probe asks about: the shared mount point and the services' units."""

    mount: str = ""
    units: tuple[str, ...] = ()


def probe_inputs(cluster: Cluster) -> dict[str, ProbeInputs]:
    """node -> what its probe checks, as the cluster's services declare it."""
    inputs = {}
    for node in cluster.nodes:
        services = list(cluster.services.enabled())
        mounts = [m for s in services if (m := s.storage_mount(cluster, node))]
        units = [u for s in services for u in s.health_units(cluster, node)]
        inputs[node.name] = ProbeInputs(mounts[0] if mounts else "", tuple(dict.fromkeys(units)))
    return inputs


# Asking Slurm (and telling it) is no liveness check: scontrol on a loaded head may take
# seconds, and a short probe timeout must not make a round act without Slurm's state.
SLURM_TIMEOUT = 10.0


class HealthCollector:
    """Runs health rounds for one cluster over a ConnectionPool the caller owns."""

    def __init__(
        self,
        cluster: Cluster,
        pool: ConnectionPool,
        *,
        timeout: float = 5.0,
        confirm_timeout: float | None = None,
    ) -> None:
        self.cluster = cluster
        self.pool = pool
        self.timeout = timeout
        self.confirm_timeout = confirm_timeout
        # node -> (address, port) its SSH connection last answered on (the sim's full
        # nodes may answer at a DHCP lease, not at their cluster address).
        self._peers: dict[str, tuple[str, int]] = {}
        self._inputs = probe_inputs(cluster)
        self._slurm = cluster.services.is_on(SlurmSettings)
        self._closing: set[asyncio.Task[None]] = set()

    def _drop(self, name: str) -> None:
        # Closing a dead connection can itself wait; do it beside the round, not in it.
        task = asyncio.ensure_future(self.pool.forget(name))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def run_on(
        self, name: str, argv: Sequence[str], *, sudo: bool = False, timeout: float | None = None
    ) -> tuple[str | None, str, float]:
        """Run argv on a node: (error or None, stdout, elapsed); never raises for the node."""
        limit = timeout or self.timeout
        started = time.monotonic()
        try:
            transport: Transport = await self.pool.get(name)  # see probe()
            started = time.monotonic()
            async with asyncio.timeout(limit):
                result = await transport.run(argv, sudo=sudo, timeout=limit)
        except TransportError as exc:
            return exc.reason, "", time.monotonic() - started
        except TimeoutError:
            self._drop(name)
            return f"no answer within {limit:g}s", "", time.monotonic() - started
        elapsed = time.monotonic() - started
        if result.error is not None:
            self._drop(name)
            return result.error, "", elapsed
        if result.rc != 0:
            detail = result.stderr.strip().splitlines()
            return f"exit {result.rc}: {detail[-1] if detail else ''}".strip(), "", elapsed
        return None, result.stdout, elapsed

    async def probe(self, name: str) -> tuple[NodeHealth, float]:
        """One node's health and the wall-clock time its probe was sent."""
        asked = self._inputs.get(name, ProbeInputs())
        sent = time.time()
        started = time.monotonic()
        limit = self.timeout
        try:
            # Connecting has its own deadline, counted from when the pool starts this
            # node's handshake: a cold round of 1,024 nodes waits its turn for one of the
            # pool's handshake slots, and that wait must not count against the node.
            transport: Transport = await self.pool.get(name)
            self._remember_peer(name, transport)
            sent = time.time()
            started = time.monotonic()
            async with asyncio.timeout(limit):
                result = await transport.run(probe_argv(asked.mount, asked.units), timeout=limit)
        except TransportError as exc:
            return unreachable(name, exc.reason, time.monotonic() - started), sent
        except TimeoutError:
            self._drop(name)
            return unreachable(name, f"no answer within {limit:g}s", limit), sent
        elapsed = time.monotonic() - started
        if result.error is not None:
            self._drop(name)
            return unreachable(name, result.error, elapsed), sent
        return parse_probe(name, result.stdout, elapsed=elapsed, units=asked.units), sent

    def _remember_peer(self, name: str, transport: Transport) -> None:
        address = getattr(transport, "address", None)
        port = getattr(transport, "port", None)
        if isinstance(address, str) and isinstance(port, int):
            self._peers[name] = (address, port)

    async def kernel_answers(self, name: str) -> bool:
        """Whether `name` accepts a TCP connection to its SSH port within confirm_timeout.

        Only the TCP handshake, which the node's kernel answers however loaded its user
        space is; the connection is closed at once (sshd logs a connection without a
        banner exchange). "Connection refused" counts as an answer: the kernel is there.
        """
        node = self.cluster.node(name)
        address, port = self._peers.get(name, (str(node.address), self.cluster.ssh_port))
        loop = asyncio.get_running_loop()
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setblocking(False)
            try:
                async with asyncio.timeout(self.confirm_timeout or self.timeout):
                    await loop.sock_connect(sock, (address, port))
            except ConnectionRefusedError:
                return True
            except TimeoutError:
                # This process may have had no CPU past the deadline (a loaded machine):
                # ask the kernel whether the handshake completed meanwhile.
                _, done, _ = select.select([], [sock], [], 0)
                error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) if done else -1
                return error in (0, errno.ECONNREFUSED)
            except OSError:
                return False
        return True

    async def _gone(self, health: Sequence[NodeHealth]) -> frozenset[str]:
        """The unreachable nodes of `health` whose kernel does not answer either."""
        failed = [h.node for h in health if not h.reachable]
        if self.confirm_timeout is None or not failed:
            return frozenset()
        answers = await asyncio.gather(*(self.kernel_answers(n) for n in failed))
        return frozenset(n for n, up in zip(failed, answers, strict=True) if not up)

    async def slurm_nodes(self) -> tuple[dict[str, SlurmNode] | None, str | None]:
        if not self._slurm:
            return None, "Slurm is not enabled in cluster.toml"
        error, out, _ = await self.run_on(
            self.cluster.head.name, NODES_ARGV, timeout=max(self.timeout, SLURM_TIMEOUT)
        )
        if error is not None:
            return None, f"scontrol on {self.cluster.head.name}: {error}"
        return parse_nodes(out), None

    async def jobs(self) -> tuple[Job, ...]:
        if not self._slurm:
            return ()
        error, out, _ = await self.run_on(
            self.cluster.head.name, QUEUE_ARGV, timeout=max(self.timeout, SLURM_TIMEOUT)
        )
        return () if error is not None else tuple(parse_queue(out))

    async def round(self, names: Sequence[str], *, with_jobs: bool = False) -> Snapshot:
        """Probe `names` (the head too, as the clock reference) and ask Slurm, in parallel."""
        started = time.monotonic()
        head = self.cluster.head.name
        targets = list(dict.fromkeys([*names, head]))
        probes = asyncio.ensure_future(each_node(targets, self.probe))
        slurm_task = asyncio.ensure_future(self.slurm_nodes())
        jobs_task = asyncio.ensure_future(self.jobs()) if with_jobs else None
        try:
            probed = list((await probes).values())
            slurm, slurm_error = await slurm_task
            jobs = await jobs_task if jobs_task is not None else ()
        finally:
            for task in (probes, slurm_task, jobs_task):
                if task is not None and not task.done():
                    task.cancel()
        gone = await self._gone([h for h, _ in probed if h.node != head])
        head_reachable = next((h.reachable for h, _ in probed if h.node == head), True)
        sent_at = {h.node: sent for h, sent in probed}
        health = with_clock_offsets([h for h, _ in probed], sent_at, head)
        wanted = set(names)
        health = [
            h.with_slurm(slurm.get(h.node) if slurm else None) for h in health if h.node in wanted
        ]
        verdicts = {
            h.node: evaluate(h, self.cluster.health, compute=self._computes(h.node)) for h in health
        }
        return Snapshot(
            time=time.time(),
            health=tuple(health),
            verdicts=verdicts,
            slurm=slurm,
            slurm_error=slurm_error,
            jobs=jobs,
            elapsed=time.monotonic() - started,
            roles={n.name: n.role for n in self.cluster.nodes},
            gone=gone & wanted,
            head_reachable=head_reachable,
        )

    def _computes(self, name: str) -> bool:
        return self._slurm and self.cluster.node(name).compute

    async def close(self) -> None:
        """Wait for connections being dropped (bounded by the transport's own close)."""
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
