"""The Python API of piherd: the use cases of piherd.app for scripts and notebooks.

    async with piherd.api.open_cluster("cluster.toml") as cluster:
        results = await cluster.run("@workers", "uptime", timeout=5)
        for r in results:
            print(r.node, r.rc, r.stdout, r.error)

One SSH connection per node for the whole `async with` block. `render_files` gives the
files `piherd up` writes, `status_round` one health round; the CLI calls the same code.

`dask_client("cluster.toml", workers=3)` gives a `distributed.Client` whose workers are
Slurm jobs on the cluster (docs/recipes.md); closing it cancels the jobs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from piherd.app.exact_files import RenderedFiles, render_files
from piherd.app.health_rounds import status_round
from piherd.app.remote import ClusterSession, CommandArg, NodeSetArg, command_argv, open_cluster
from piherd.model import Cluster
from piherd.transport.base import CommandResult

if TYPE_CHECKING:
    from distributed import Client


def dask_client(
    cluster: str | Path | Cluster,
    workers: int = 3,
    *,
    cores: int = 1,
    memory: str = "1GiB",
    walltime: str = "01:00:00",
    timeout: float = 900,
) -> Client:
    """A `distributed.Client` with `workers` Dask workers running as Slurm jobs.

    dask-jobqueue's SLURMCluster runs on the head (in a Python environment on the shared
    storage, built from wheels of this Python's dask versions, downloaded here); the
    client reaches its scheduler through an SSH tunnel. Each worker job asks for `cores`
    CPUs, `memory` and `walltime`. Returns once every worker has joined. `close()` (or
    leaving a `with` block) cancels the jobs. Needs dask and distributed installed here.
    """
    from distributed import Client

    from piherd.app.dask_slurm import DaskOnSlurm, DaskOptions, DaskSetupError
    from piherd.services import load

    loaded = cluster if isinstance(cluster, Cluster) else load(Path(cluster))
    session = DaskOnSlurm(loaded, DaskOptions(workers, cores, memory, walltime))
    address = session.start(timeout)

    class SlurmClient(Client):
        """A Client that cancels its Slurm jobs when it closes."""

        def close(self, *args: Any, **kwargs: Any) -> Any:
            try:
                return super().close(*args, **kwargs)  # type: ignore[no-untyped-call]
            finally:
                session.close()

    try:
        client = SlurmClient(address, timeout=60)  # type: ignore[no-untyped-call]
    except BaseException:
        session.close()
        raise
    try:
        client.wait_for_workers(workers, timeout=timeout)
    except TimeoutError as error:  # say why: Slurm's reason for the jobs still pending
        queue = session.queue()
        client.close()
        raise DaskSetupError(f"{error}; the worker jobs in Slurm:\n{queue}") from None
    except BaseException:
        client.close()
        raise
    return client


__all__ = [
    "ClusterSession",
    "CommandArg",
    "CommandResult",
    "NodeSetArg",
    "RenderedFiles",
    "command_argv",
    "dask_client",
    "open_cluster",
    "render_files",
    "status_round",
]
