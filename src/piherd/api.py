"""The Python API of piherd: the use cases of piherd.app for scripts and notebooks.

    async with piherd.api.open_cluster("cluster.toml") as cluster:
        results = await cluster.run("@workers", "uptime", timeout=5)
        for r in results:
            print(r.node, r.rc, r.stdout, r.error)

One SSH connection per node for the whole `async with` block. `render_files` gives the
files `piherd up` writes, `status_round` one health round; the CLI calls the same code.
"""

from __future__ import annotations

from piherd.app.exact_files import RenderedFiles, render_files
from piherd.app.health_rounds import status_round
from piherd.app.remote import ClusterSession, CommandArg, NodeSetArg, command_argv, open_cluster
from piherd.transport.base import CommandResult

__all__ = [
    "ClusterSession",
    "CommandArg",
    "CommandResult",
    "NodeSetArg",
    "RenderedFiles",
    "command_argv",
    "open_cluster",
    "render_files",
    "status_round",
]
