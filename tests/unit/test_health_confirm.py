"""The watch's second probe: a failed probe is confirmed by a TCP connection to the node.

Real sockets on loopback stand in for the nodes' kernels: one listening (a node that is
alive but whose SSH probe failed: load, a hung sshd), one whose accept queue is full so
its kernel drops the SYN (what a node that lost power looks like from outside: no
answer at all), and one closed port (refused: the kernel answers, sshd is gone).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

from piherd.health.collect import HealthCollector
from piherd.services import load
from piherd.transport.base import CommandResult
from piherd.transport.pool import ConnectionPool

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cluster.toml"


class LostTransport:
    """A connection that answers nothing: every command fails as a lost connection does."""

    def __init__(self, node: str, port: int) -> None:
        self.node, self.address, self.port = node, "127.0.0.1", port

    async def connect(self) -> None:
        return None

    async def run(self, argv: Sequence[str], **_: object) -> CommandResult:
        return CommandResult(self.node, None, error="connection lost")

    async def close(self) -> None:
        return None


@contextmanager
def kernels() -> Iterator[dict[str, int]]:
    """Ports on 127.0.0.1: "alive" listens, "silent" drops SYNs, "refused" is closed."""
    with ExitStack() as stack:
        alive = stack.enter_context(socket.socket())
        alive.bind(("127.0.0.1", 0))
        alive.listen(16)
        silent = stack.enter_context(socket.socket())
        silent.bind(("127.0.0.1", 0))
        silent.listen(0)
        for _ in range(3):  # fill its accept queue: the kernel drops further SYNs
            filler = stack.enter_context(socket.socket())
            filler.setblocking(False)
            filler.connect_ex(silent.getsockname())
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))
        refused = closed.getsockname()[1]
        closed.close()
        time.sleep(0.1)
        yield {"alive": alive.getsockname()[1], "silent": silent.getsockname()[1],
               "refused": refused}  # fmt: skip


def test_only_nodes_whose_kernel_is_silent_too_are_gone() -> None:
    cluster = load(EXAMPLE)
    workers = [n.name for n in cluster.workers][:3]
    with kernels() as ports:
        port_of = dict(zip(workers, ports.values(), strict=True))

        async def round_() -> tuple[frozenset[str], dict[str, bool]]:
            async with ConnectionPool(
                cluster, transport_factory=lambda n: LostTransport(n, port_of.get(n, 1))
            ) as pool:
                collector = HealthCollector(cluster, pool, timeout=2.0, confirm_timeout=0.5)
                snap = await collector.round(workers)
                unconfirmed = HealthCollector(cluster, pool, timeout=2.0)
                plain = await unconfirmed.round(workers)
                await collector.close()
                await unconfirmed.close()
            reachable = {h.node: h.reachable for h in snap.health}
            assert plain.gone == frozenset()  # no second probe unless asked for
            return snap.gone, reachable

        gone, reachable = asyncio.run(round_())
    assert reachable == dict.fromkeys(workers, False)  # every SSH probe failed
    silent = next(n for n, p in port_of.items() if p == ports["silent"])
    assert gone == {silent}


def test_a_starved_watcher_asks_the_kernel_before_calling_a_node_gone() -> None:
    """The watcher gets no CPU until after its deadline (a loaded machine: here the loop
    is blocked for 0.2 s against a 0.05 s limit): a node whose kernel completed the
    handshake meanwhile is alive, not gone; a silent one is still gone."""
    cluster = load(EXAMPLE)
    name = cluster.workers[0].name
    with kernels() as ports:

        async def answers(port: int) -> list[bool]:
            async with ConnectionPool(
                cluster, transport_factory=lambda n: LostTransport(n, port)
            ) as pool:
                collector = HealthCollector(cluster, pool, timeout=2.0, confirm_timeout=0.05)
                await collector.probe(name)  # learns the address and port it answers on
                found = []
                for _ in range(5):
                    asyncio.get_running_loop().call_soon(time.sleep, 0.2)  # starve the loop
                    found.append(await collector.kernel_answers(name))
                return found

        assert asyncio.run(answers(ports["alive"])) == [True] * 5
        assert asyncio.run(answers(ports["refused"])) == [True] * 5
        assert asyncio.run(answers(ports["silent"])) == [False] * 5
