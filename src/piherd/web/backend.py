"""Where the dashboard's data comes from and where its buttons act: the cluster, via Slurm."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Protocol

from piherd.app.health_rounds import health_collector
from piherd.health.collect import HealthCollector, Snapshot
from piherd.health.slurm_state import drain_argv, resume_argv
from piherd.model import Cluster


class Backend(Protocol):
    """A source of health rounds and a way to drain/resume nodes."""

    nodes: tuple[str, ...]

    async def round(self) -> Snapshot:
        """One health round (with the Slurm queue)."""

    async def drain(self, node: str, reason: str) -> str | None:
        """Drain `node` in Slurm; an error message, or None when it worked."""

    async def resume(self, node: str) -> str | None:
        """Resume `node` in Slurm; an error message, or None when it worked."""


class ClusterBackend:
    """The real backend: health rounds over a connection pool, scontrol on the head."""

    def __init__(self, cluster: Cluster, collector: HealthCollector, nodes: Sequence[str]) -> None:
        self.cluster = cluster
        self.collector = collector
        self.nodes = tuple(nodes)

    async def round(self) -> Snapshot:
        return await self.collector.round(self.nodes, with_jobs=True)

    async def _scontrol(self, argv: list[str]) -> str | None:
        error, _, _ = await self.collector.run_on(self.cluster.head.name, argv, sudo=True)
        return error

    async def drain(self, node: str, reason: str) -> str | None:
        return await self._scontrol(drain_argv(node, reason))

    async def resume(self, node: str) -> str | None:
        return await self._scontrol(resume_argv(node))


@asynccontextmanager
async def cluster_backend(
    cluster: Cluster, nodes: Sequence[str], *, timeout: float = 5.0
) -> AsyncIterator[ClusterBackend]:
    """A ClusterBackend over its own connection pool, closed on exit."""
    async with health_collector(cluster, timeout=timeout) as collector:
        yield ClusterBackend(cluster, collector, nodes)
