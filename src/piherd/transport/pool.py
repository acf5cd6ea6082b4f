"""One SSH connection per node, opened on first use and reused for everything a process does.

`async with ConnectionPool(cluster) as pool: t = await pool.get("node02")`. Connects are
capped (sshd MaxStartups, file descriptors); the soft RLIMIT_NOFILE is raised toward the
hard limit on entry, and a pool that would run out of descriptors says so plainly.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections.abc import Callable

from piherd.model import Cluster
from piherd.transport.base import Transport, TransportError
from piherd.transport.hostkeys import KnownHostsCache, NewKeyCallback
from piherd.transport.ssh import SshTransport
from piherd.transport.sshconfig import SshConfigCache

log = logging.getLogger(__name__)

# Descriptors kept free for everything else the process opens (files, logs, pipes).
_FD_RESERVE = 64


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (capped at 65536); return the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):
            log.debug("could not raise RLIMIT_NOFILE from %s", soft)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def _log_new_key(node: str, address: str, fingerprint: str) -> None:
    log.warning("%s: new host key for %s accepted and recorded: %s", node, address, fingerprint)


class ConnectionPool:
    """Transports keyed by node name; at most one connection per node."""

    def __init__(
        self,
        cluster: Cluster,
        *,
        connect_timeout: float = 10.0,
        max_concurrent_connects: int = 64,
        on_new_host_key: NewKeyCallback | None = None,
        transport_factory: Callable[[str], Transport] | None = None,
    ) -> None:
        self.cluster = cluster
        self.connect_timeout = connect_timeout
        self.max_concurrent_connects = max(1, max_concurrent_connects)
        self.on_new_host_key = on_new_host_key or _log_new_key
        self.transport_factory = transport_factory
        self.failures: dict[str, TransportError] = {}
        self._transports: dict[str, Transport] = {}
        self._connecting: dict[str, asyncio.Task[Transport]] = {}
        self._semaphore: asyncio.Semaphore | None = None
        self._fd_budget = 1 << 20
        self._known_hosts_cache = KnownHostsCache()
        self._config_cache = SshConfigCache()  # ssh_config cut down per host, read once

    async def __aenter__(self) -> ConnectionPool:
        soft = raise_fd_limit()
        self._fd_budget = max(1, soft - _FD_RESERVE)
        self._semaphore = asyncio.Semaphore(min(self.max_concurrent_connects, self._fd_budget))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _make(self, name: str) -> Transport:
        if self.transport_factory is not None:
            return self.transport_factory(name)
        node = self.cluster.node(name)  # KeyError for a name outside the cluster
        fallback = (node.bootstrap_address,) if node.bootstrap_address else ()
        return SshTransport(
            name,
            str(node.address),
            port=self.cluster.ssh_port,
            username=self.cluster.admin_user,
            known_hosts=self.cluster.known_hosts,
            ssh_config=self.cluster.ssh_config,
            client_keys=[self.cluster.ssh_identity] if self.cluster.ssh_identity else None,
            connect_timeout=self.connect_timeout,
            fallback_hosts=fallback,
            on_new_host_key=self.on_new_host_key,
            known_hosts_cache=self._known_hosts_cache,
            config_cache=self._config_cache,
        )

    async def get(self, name: str) -> Transport:
        """The node's connected transport (connecting once); TransportError when unreachable."""
        if name in self._transports:
            return self._transports[name]
        task = self._connecting.get(name)
        if task is None:
            task = asyncio.ensure_future(self._open(name))
            self._connecting[name] = task
        try:
            return await asyncio.shield(task)
        finally:
            if task.done():
                self._connecting.pop(name, None)

    async def _open(self, name: str) -> Transport:
        if self._semaphore is None:
            raise RuntimeError("use `async with ConnectionPool(...)` before get()")
        if len(self._transports) >= self._fd_budget:
            error = TransportError(
                name,
                f"not connected: {len(self._transports)} connections already use this "
                "process's file-descriptor limit; raise `ulimit -n` or use a smaller node set",
            )
            self.failures[name] = error
            raise error
        transport = self._make(name)
        async with self._semaphore:
            try:
                await transport.connect()
            except TransportError as exc:
                self.failures[name] = exc
                await transport.close()
                raise
            except BaseException:
                await transport.close()
                raise
        self.failures.pop(name, None)
        self._transports[name] = transport
        return transport

    async def forget(self, name: str) -> None:
        """Close the node's connection; the next get() reconnects (e.g. at a new address)."""
        transport = self._transports.pop(name, None)
        self.failures.pop(name, None)
        if transport is not None:
            await transport.close()

    async def close(self) -> None:
        """Close every connection (and cancel connects still under way)."""
        tasks = list(self._connecting.values())
        for task in tasks:
            task.cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        for outcome in outcomes:
            if not isinstance(outcome, BaseException):
                await outcome.close()
        self._connecting.clear()
        transports, self._transports = list(self._transports.values()), {}
        await asyncio.gather(*(t.close() for t in transports), return_exceptions=True)
        self._config_cache.close()
