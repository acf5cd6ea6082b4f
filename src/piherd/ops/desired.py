"""Desired state of every node, from render's files, packages and units plus facts.

Render is pure and needs facts for some inputs (CPUs and memory for slurm.conf, host
keys for the cluster's known_hosts); with no facts yet (the first pass, which only
needs the paths and unit names to ask about) the model's values stand in.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from piherd.facts.types import NodeFacts
from piherd.model import Cluster, Node
from piherd.ops.types import DesiredDir, DesiredFile, DesiredNode, DesiredUnit


def _render() -> tuple[Any, Any]:
    """render's package and its `desired` module (imported late: render is a sibling room)."""
    return importlib.import_module("piherd.render"), importlib.import_module(
        "piherd.render.desired"
    )


def hardware(cluster: Cluster, facts: Mapping[str, NodeFacts]) -> dict[str, tuple[int, int]]:
    """{node: (cpus, memory_mb)}: the model's values when set, else facts, else (1, 512)."""
    found = {}
    for node in cluster.nodes:
        f = facts.get(node.name)
        cpus = node.cpus or (f.cpus if f and f.cpus else 1)
        memory = node.memory_mb or (f.memory_mb if f and f.memory_mb else 512)
        found[node.name] = (cpus, memory)
    return found


def storage_dirs(cluster: Cluster, node: Node) -> tuple[DesiredDir, ...]:
    """The export directory on the storage server and the mount point elsewhere."""
    storage = cluster.services.storage
    if not storage.enabled:
        return ()
    server = storage.server or cluster.head.name
    if node.name == server:
        admin = cluster.admin_user
        return (DesiredDir(storage.export, 0o775, admin, admin),)
    return (DesiredDir(storage.mount),)


def to_desired_file(spec: Any) -> DesiredFile:
    """render.FileSpec -> DesiredFile."""
    return DesiredFile(
        path=str(spec.path),
        content=bytes(spec.content),
        mode=int(spec.mode),
        owner=str(getattr(spec, "owner", "root")),
        group=str(getattr(spec, "group", "root")),
        restarts=tuple(getattr(spec, "restarts", ()) or ()),
        reloads=tuple(getattr(spec, "reloads", ()) or ()),
        secret=bool(getattr(spec, "secret", False)),
    )


class DesiredState:
    """Builds every node's DesiredNode from render; holds the cluster's secrets."""

    def __init__(self, secrets: Any) -> None:
        self.secrets = secrets

    def __call__(self, cluster: Cluster, facts: Mapping[str, NodeFacts]) -> dict[str, DesiredNode]:
        render, desired = _render()
        host_keys = {n: f.host_keys for n, f in facts.items() if f.host_keys}
        ctx = (
            render.RenderContext.from_secrets(
                self.secrets, hardware=hardware(cluster, facts), host_keys=host_keys
            )
            if hasattr(render.RenderContext, "from_secrets")
            else render.RenderContext(
                secrets=self.secrets, hardware=hardware(cluster, facts), host_keys=host_keys
            )
        )
        nodes = {}
        for node in cluster.nodes:
            files = render.render_node(cluster, node, ctx)
            units = tuple(
                DesiredUnit(
                    u.name, bool(getattr(u, "enable", True)), bool(getattr(u, "masked", False))
                )
                for u in desired.units(cluster, node)
            )
            nodes[node.name] = DesiredNode(
                node=node.name,
                hostname=node.name,
                packages=tuple(desired.packages(cluster, node)),
                dirs=storage_dirs(cluster, node),
                files=tuple(to_desired_file(s) for _, s in sorted(files.items())),
                units=units,
            )
        return nodes
