"""The status, dashboard and watch use cases: health rounds over one connection pool."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

from piherd.health.collect import HealthCollector, Snapshot
from piherd.health.loop import WatchLog, watch_rounds
from piherd.model import Cluster
from piherd.transport.pool import ConnectionPool


@asynccontextmanager
async def health_collector(
    cluster: Cluster, *, timeout: float, connect_timeout: float | None = None
) -> AsyncIterator[HealthCollector]:
    """A HealthCollector over its own connection pool (warm across rounds), closed on exit.

    `timeout` bounds each probe, connecting included; `connect_timeout` defaults to it.
    """
    connect = timeout if connect_timeout is None else connect_timeout
    async with ConnectionPool(cluster, connect_timeout=connect) as pool:
        collector = HealthCollector(cluster, pool, timeout=timeout)
        try:
            yield collector
        finally:
            await collector.close()


async def status_round(cluster: Cluster, names: Sequence[str], *, timeout: float) -> Snapshot:
    """One health round of `names` (`piherd status`)."""
    async with health_collector(cluster, timeout=timeout) as collector:
        return await collector.round(names)


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
    on_round: Callable[[Snapshot], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """`piherd watch`: drain/resume `names` in Slurm until `stop` is set (or once)."""
    async with health_collector(cluster, timeout=min(timeout, interval)) as collector:
        await watch_rounds(
            collector,
            names,
            interval=interval,
            log=log,
            once=once,
            dry_run=dry_run,
            unreachable_after=unreachable_after,
            resume_after=resume_after,
            on_round=on_round,
            stop=stop,
        )
