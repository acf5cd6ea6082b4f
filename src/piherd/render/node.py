"""Every file of a node, and of the whole cluster: the renderers put together."""

from __future__ import annotations

from piherd.model import Cluster, Node
from piherd.render import (
    apt,
    chrony,
    dnsmasq,
    hosts,
    keys,
    mpi,
    munge,
    network,
    slurm,
    ssh,
    storage,
    watch,
)
from piherd.render.spec import FileSpec, RenderContext, RenderError


def render_node(cluster: Cluster, node: Node, ctx: RenderContext) -> dict[str, FileSpec]:
    """path -> FileSpec for `node`, sorted by path; RenderError on an unusable value."""
    parts: list[dict[str, FileSpec]] = [
        hosts.render(cluster, node),
        network.render(cluster, node),
        chrony.render(cluster, node),
        storage.render(cluster, node, ctx),
        slurm.render(cluster, node, ctx),
        munge.render(cluster, node, ctx),
        mpi.render(cluster, node, ctx),
        ssh.render(cluster, node, ctx),
        keys.render(cluster, node, ctx),
        watch.render(cluster, node, ctx),
        dnsmasq.render(cluster, node),
        apt.render(cluster, node),
    ]
    files: dict[str, FileSpec] = {}
    for part in parts:
        for path, spec in part.items():
            if path in files:  # two renderers claiming one file is a bug, not bad input
                raise RenderError(f"{path} rendered twice for {node.name}")
            files[path] = spec
    return dict(sorted(files.items()))


def render_cluster(cluster: Cluster, ctx: RenderContext) -> dict[str, dict[str, FileSpec]]:
    """node name -> that node's files, in the cluster's node order."""
    return {node.name: render_node(cluster, node, ctx) for node in cluster.nodes}
