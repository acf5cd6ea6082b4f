"""Pure renderers: (cluster, node, context) -> the exact files the node must hold; no I/O."""

from piherd.render.desired import directories, packages, units
from piherd.render.node import render_cluster, render_node
from piherd.render.spec import (
    DirSpec,
    FileSpec,
    RenderContext,
    RenderError,
    UnitSpec,
    needs_daemon_reload,
)

__all__ = [
    "DirSpec",
    "FileSpec",
    "RenderContext",
    "RenderError",
    "UnitSpec",
    "directories",
    "needs_daemon_reload",
    "packages",
    "render_cluster",
    "render_node",
    "units",
]
