"""The `run` and `copy` use cases: a cluster's connection pool, and commands and files
fanned out over node sets (piherd.api re-exports this for Python callers)."""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping, Sequence
from pathlib import Path

from piherd.model import Cluster, expand
from piherd.runner.fanout import (
    DEFAULT_FANOUT,
    NodeWork,
    ProgressCallback,
    fan_out,
    run_command,
)
from piherd.services import load
from piherd.transport.base import CommandResult, Transport
from piherd.transport.pool import ConnectionPool
from piherd.transport.tar_stream import copy_to, gather_from, pack

NodeSetArg = str | Sequence[str]
CommandArg = str | Sequence[str]


def command_argv(command: CommandArg) -> list[str]:
    """argv of a command: a string is split like a shell would (shlex), a list is argv."""
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    if not argv:
        raise ValueError("empty command")
    return argv


class ClusterSession:
    """A cluster with its connection pool: run, copy and gather over node sets."""

    def __init__(self, cluster: Cluster, pool: ConnectionPool) -> None:
        self.cluster = cluster
        self.pool = pool

    def nodes(self, nodeset: NodeSetArg) -> list[str]:
        """Node names of a node-set expression (`@workers!node03`) or of a list of names."""
        if isinstance(nodeset, str):
            return expand(nodeset, self.cluster.groups, known=self.cluster.groups["all"])
        names = list(nodeset)
        expand(",".join(names), self.cluster.groups, known=self.cluster.groups["all"])
        return names

    async def _fan_out(
        self,
        nodeset: NodeSetArg,
        work: NodeWork,
        fanout: int,
        timeout: float | None,
        progress: ProgressCallback | None,
        results: MutableMapping[str, CommandResult] | None,
    ) -> list[CommandResult]:
        return await fan_out(
            self.get,
            self.nodes(nodeset),
            work,
            fanout=fanout,
            timeout=timeout,
            progress=progress,
            results=results,
        )

    async def get(self, node: str) -> Transport:
        """The node's (pooled, connected) transport."""
        return await self.pool.get(node)

    async def run(
        self,
        nodeset: NodeSetArg,
        command: CommandArg,
        *,
        sudo: bool = False,
        input: bytes | None = None,
        timeout: float | None = None,
        fanout: int = DEFAULT_FANOUT,
        progress: ProgressCallback | None = None,
        results: MutableMapping[str, CommandResult] | None = None,
    ) -> list[CommandResult]:
        """Run `command` on every node of `nodeset`; one CommandResult per node, in order.

        `timeout` bounds each node's connect plus command; `results` (optional) is filled
        as nodes finish, so it still holds them if the call is cancelled.
        """
        work = run_command(command_argv(command), sudo=sudo, input=input)
        return await self._fan_out(nodeset, work, fanout, timeout, progress, results)

    async def copy(
        self,
        sources: Sequence[Path | str],
        nodeset: NodeSetArg,
        dest: str,
        *,
        sudo: bool = False,
        timeout: float | None = None,
        fanout: int = DEFAULT_FANOUT,
        progress: ProgressCallback | None = None,
        results: MutableMapping[str, CommandResult] | None = None,
    ) -> list[CommandResult]:
        """Copy local files/directories to `dest` on every node (modes kept, like scp -rp)."""
        paths = [Path(s) for s in sources]
        missing = [str(p) for p in paths if not p.exists() and not p.is_symlink()]
        if missing:
            raise FileNotFoundError(f"no such file or directory: {', '.join(missing)}")
        if not paths:
            raise ValueError("nothing to copy")
        archive = pack(paths)

        async def work(transport: Transport, remaining: float | None) -> CommandResult:
            return await copy_to(transport, archive, paths, dest, sudo=sudo, timeout=remaining)

        return await self._fan_out(nodeset, work, fanout, timeout, progress, results)

    async def gather(
        self,
        nodeset: NodeSetArg,
        source: str,
        dest: Path | str,
        *,
        sudo: bool = False,
        timeout: float | None = None,
        fanout: int = DEFAULT_FANOUT,
        progress: ProgressCallback | None = None,
        results: MutableMapping[str, CommandResult] | None = None,
    ) -> list[CommandResult]:
        """Fetch `source` from every node into dest/<node>/<basename>."""
        target = Path(dest)

        async def work(transport: Transport, remaining: float | None) -> CommandResult:
            return await gather_from(transport, source, target, sudo=sudo, timeout=remaining)

        return await self._fan_out(nodeset, work, fanout, timeout, progress, results)


@contextlib.asynccontextmanager
async def open_cluster(
    cluster: Cluster | Path | str,
    *,
    connect_timeout: float = 10.0,
    max_concurrent_connects: int = 64,
) -> AsyncIterator[ClusterSession]:
    """Load cluster.toml (or take a Cluster) and keep one connection per node until exit."""
    model = cluster if isinstance(cluster, Cluster) else load(Path(cluster))
    async with ConnectionPool(
        model,
        connect_timeout=connect_timeout,
        max_concurrent_connects=max_concurrent_connects,
    ) as pool:
        yield ClusterSession(model, pool)


SessionJob = Callable[["ClusterSession"], Awaitable[list[CommandResult]]]


async def on_session(
    cluster: Cluster, job: SessionJob, *, timeout: float | None
) -> list[CommandResult]:
    """Run `job` on a session of `cluster`; connecting is bounded by `timeout` (10 s at most)."""
    connect_timeout = min(timeout, 10.0) if timeout is not None else 10.0
    async with open_cluster(cluster, connect_timeout=connect_timeout) as session:
        return await job(session)
