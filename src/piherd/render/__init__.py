"""Pure renderers: (cluster, node, context) -> the exact state a node must have; no I/O."""

from piherd.model.specs import DirSpec, FileSpec, RenderContext, UnitSpec
from piherd.render.node import (
    node_directories,
    node_packages,
    node_packages_from_head,
    node_units,
    render_cluster,
    render_node,
)
from piherd.render.spec import RenderError, needs_daemon_reload

__all__ = [
    "DirSpec",
    "FileSpec",
    "RenderContext",
    "RenderError",
    "UnitSpec",
    "needs_daemon_reload",
    "node_directories",
    "node_packages",
    "node_packages_from_head",
    "node_units",
    "render_cluster",
    "render_node",
]
