"""Everything a node must have, from the services of its cluster: files, packages, units, dirs."""

from __future__ import annotations

from piherd.model import Cluster, Node
from piherd.model.specs import DirSpec, FileSpec, RenderContext, UnitSpec
from piherd.render.spec import RenderError


def render_node(cluster: Cluster, node: Node, ctx: RenderContext) -> dict[str, FileSpec]:
    """path -> FileSpec for `node`, sorted by path; RenderError on an unusable value."""
    files: dict[str, FileSpec] = {}
    for service in cluster.services.enabled():
        for spec in service.files(cluster, node, ctx):
            if spec.path in files:  # two services claiming one file is a bug, not bad input
                raise RenderError(f"{spec.path} rendered twice for {node.name}")
            files[spec.path] = spec
    return dict(sorted(files.items()))


def render_cluster(cluster: Cluster, ctx: RenderContext) -> dict[str, dict[str, FileSpec]]:
    """node name -> that node's files, in the cluster's node order."""
    return {node.name: render_node(cluster, node, ctx) for node in cluster.nodes}


def node_packages(cluster: Cluster, node: Node) -> tuple[str, ...]:
    """Debian packages `node` needs, sorted."""
    wanted = {p for s in cluster.services.enabled() for p in s.packages(cluster, node)}
    return tuple(sorted(wanted))


def node_packages_from_head(cluster: Cluster, node: Node) -> bool:
    """Whether `node` needs the head to fetch its packages (Service.packages_from_head)."""
    return any(s.packages_from_head(cluster, node) for s in cluster.services.enabled())


def node_units(cluster: Cluster, node: Node) -> tuple[UnitSpec, ...]:
    """Units of `node` in start order: the services' order, then each service's own."""
    return tuple(u for s in cluster.services.enabled() for u in s.units(cluster, node))


def node_directories(cluster: Cluster, node: Node) -> tuple[DirSpec, ...]:
    """Directories `node` must have that no package creates (the storage export)."""
    return tuple(d for s in cluster.services.enabled() for d in s.directories(cluster, node))
