"""ConnectionPool: one transport per node, shared connects, failures kept, forget, fd limit."""

from __future__ import annotations

import asyncio
import resource
from pathlib import Path

import pytest

from piherd.services import load
from piherd.transport.base import Transport, TransportError
from piherd.transport.local import LocalTransport
from piherd.transport.pool import ConnectionPool, raise_fd_limit
from piherd.transport.ssh import SshTransport

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cluster.toml"


class Counting(LocalTransport):
    """A local transport that counts connects and closes (and fails for `down` nodes)."""

    connects: dict[str, int]
    closes: dict[str, int]

    def __init__(self, node: str, down: set[str], connects: dict[str, int], closes: dict[str, int]):
        super().__init__(node)
        self.down, self.connects, self.closes = down, connects, closes

    async def connect(self) -> None:
        self.connects[self.node] = self.connects.get(self.node, 0) + 1
        await asyncio.sleep(0.05)
        if self.node in self.down:
            raise TransportError(self.node, "unreachable (connection refused)")

    async def close(self) -> None:
        self.closes[self.node] = self.closes.get(self.node, 0) + 1


def test_one_connection_per_node_and_failures() -> None:
    connects: dict[str, int] = {}
    closes: dict[str, int] = {}

    def factory(name: str) -> Transport:
        return Counting(name, {"node03"}, connects, closes)

    async def main() -> tuple[list[Transport], dict[str, str]]:
        pool = ConnectionPool(load(EXAMPLE), transport_factory=factory)
        async with pool:
            got = await asyncio.gather(*(pool.get("node02") for _ in range(5)))
            with pytest.raises(TransportError, match="connection refused"):
                await pool.get("node03")
            failures = {n: e.reason for n, e in pool.failures.items()}
            await pool.forget("node02")
            again = await pool.get("node02")
            assert again is not got[0]
        return got, failures

    got, failures = asyncio.run(main())
    assert all(t is got[0] for t in got)
    assert failures == {"node03": "unreachable (connection refused)"}
    assert connects == {"node02": 2, "node03": 1}
    assert closes == {"node02": 2, "node03": 1}  # forget, failed connect, pool exit


def test_pool_builds_ssh_transports_from_the_cluster() -> None:
    cluster = load(EXAMPLE)
    pool = ConnectionPool(cluster, connect_timeout=3)
    transport = pool._make("node02")
    assert isinstance(transport, SshTransport)
    assert (transport.host, transport.port, transport.username) == ("192.168.1.12", 22, "pi")
    assert transport.connect_timeout == 3 and transport.use_sudo


def test_fd_limit_is_raised_toward_hard() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    got = raise_fd_limit()
    assert got == max(soft, ceiling)
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == got
