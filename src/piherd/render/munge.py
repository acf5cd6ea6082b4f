"""The munge key: one shared secret on every node, so Slurm daemons trust each other."""

from __future__ import annotations

from piherd.model import Cluster, Node
from piherd.render.spec import FileSpec, RenderContext

MUNGE_KEY = "/etc/munge/munge.key"


def render(cluster: Cluster, node: Node, ctx: RenderContext) -> dict[str, FileSpec]:
    """/etc/munge/munge.key from the cluster's secrets (binary, so no header)."""
    del node  # the same key everywhere
    if not cluster.services.slurm.enabled:
        return {}
    # munged reads the key only when it starts, hence the restart.
    spec = FileSpec(MUNGE_KEY, ctx.munge_key, 0o400, "munge", "munge", ("munge.service",), (), True)
    return {MUNGE_KEY: spec}
