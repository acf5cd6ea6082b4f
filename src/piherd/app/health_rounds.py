"""The status, dashboard and watch use cases: health rounds over one connection pool."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

from piherd.health.collect import HealthCollector, Snapshot
from piherd.health.loop import WatchLog, watch_rounds
from piherd.model import Cluster
from piherd.power.settings import PowerSettings
from piherd.transport.pool import ConnectionPool

# The watch's second probe: a TCP connection to the SSH port, which a live node's kernel
# accepts in milliseconds however loaded it is (health/collect.py).
CONFIRM_TIMEOUT = 1.0
# A node that is unreachable over SSH but whose kernel answers (overloaded, sshd hung)
# is drained only after this long. A 10-minute soak at a load average of 46-156 on 2
# cores saw live nodes fail their probes for up to 41 s (10 s drained 6 of them); a
# dead node does not wait for this: it is `gone` (health/collect.py).
SLOW_GRACE = 60.0
# Probes get at least this long, even with a shorter interval (a warm probe of a busy
# Pi takes a few hundred milliseconds; rounds then simply run back to back).
MIN_PROBE_TIMEOUT = 1.5


@asynccontextmanager
async def health_collector(
    cluster: Cluster,
    *,
    timeout: float,
    connect_timeout: float | None = None,
    confirm_timeout: float | None = None,
) -> AsyncIterator[HealthCollector]:
    """A HealthCollector over its own connection pool (warm across rounds), closed on exit.

    `timeout` bounds each probe; `connect_timeout` (default: `timeout`) bounds a node's
    connection, from when the pool starts its handshake (at most 64 at once).
    `confirm_timeout`: give failed probes a second, TCP-only probe (health/collect.py).
    """
    connect = timeout if connect_timeout is None else connect_timeout
    async with ConnectionPool(cluster, connect_timeout=connect) as pool:
        collector = HealthCollector(cluster, pool, timeout=timeout, confirm_timeout=confirm_timeout)
        try:
            yield collector
        finally:
            await collector.close()


async def status_round(cluster: Cluster, names: Sequence[str], *, timeout: float) -> Snapshot:
    """One health round of `names` (`piherd status`)."""
    async with health_collector(cluster, timeout=timeout) as collector:
        return await collector.round(names)


def cycle_after(cluster: Cluster, unreachable_after: int) -> int:
    """Probes a node stays unreachable before watch power-cycles it (0: never).

    services.power.watch_cycle turns it on: three times the probes that drain a node
    (at least six), so Slurm has its say first and one cycle is the last resort.
    """
    power = cluster.services.find(PowerSettings)
    if power is None or not power.enabled or not power.watch_cycle:
        return 0
    return max(3 * unreachable_after, 6)


async def watch_cluster(
    cluster: Cluster,
    names: Sequence[str],
    *,
    interval: float,
    log: WatchLog,
    once: bool = False,
    dry_run: bool = False,
    timeout: float = 3.0,
    unreachable_after: int = 2,
    resume_after: int = 2,
    confirm_timeout: float = CONFIRM_TIMEOUT,
    slow_grace: float = SLOW_GRACE,
    on_round: Callable[[Snapshot], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """`piherd watch`: drain/resume `names` in Slurm until `stop` is set (or once).

    A node whose probe fails and whose kernel does not take a TCP connection within
    `confirm_timeout` either is drained in that round; one that is only slow to answer
    is drained after `unreachable_after` failed rounds and `slow_grace` seconds.
    """
    probe_timeout = min(timeout, max(interval, MIN_PROBE_TIMEOUT))
    async with health_collector(
        cluster, timeout=probe_timeout, confirm_timeout=confirm_timeout
    ) as collector:
        await watch_rounds(
            collector,
            names,
            interval=interval,
            log=log,
            once=once,
            dry_run=dry_run,
            unreachable_after=unreachable_after,
            resume_after=resume_after,
            cycle_after=cycle_after(cluster, unreachable_after),
            slow_grace=slow_grace,
            on_round=on_round,
            stop=stop,
        )
