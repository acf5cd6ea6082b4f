"""Desired state of every node: render's files, packages, units and dirs, plus facts.

Render is pure and needs facts for some inputs (CPUs and memory for slurm.conf, host
keys for the cluster's known_hosts, the admin's uid/gid for sshfs); with no facts yet
(the first pass, which only needs the paths and unit names to ask about) render's own
defaults stand in.
"""

from __future__ import annotations

from collections.abc import Mapping

from piherd import render
from piherd.facts.types import NodeFacts
from piherd.model import Cluster
from piherd.ops.types import DesiredDir, DesiredFile, DesiredNode, DesiredUnit
from piherd.secrets import Secrets, render_context


def hardware(facts: Mapping[str, NodeFacts]) -> dict[str, tuple[int, int]]:
    """{node: (cpus, memory_mb)} as the nodes report them."""
    return {n: (f.cpus, f.memory_mb) for n, f in facts.items() if f.cpus and f.memory_mb}


def to_desired_file(spec: render.FileSpec) -> DesiredFile:
    """render.FileSpec -> DesiredFile."""
    return DesiredFile(
        spec.path,
        spec.content,
        spec.mode,
        spec.owner,
        spec.group,
        spec.restarts,
        spec.reloads,
        spec.secret,
    )


class DesiredState:
    """Builds every node's DesiredNode from render; holds the cluster's secrets."""

    def __init__(self, secrets: Secrets) -> None:
        self.secrets = secrets

    def __call__(self, cluster: Cluster, facts: Mapping[str, NodeFacts]) -> dict[str, DesiredNode]:
        host_keys = {n: f.host_keys for n, f in facts.items() if f.host_keys}
        head = facts.get(cluster.head.name)
        ids = head.login_ids if head is not None and head.login_ids else (1000, 1000)
        ctx = render_context(self.secrets, hardware(facts), host_keys, ids)
        nodes = {}
        for node in cluster.nodes:
            files = render.render_node(cluster, node, ctx)
            nodes[node.name] = DesiredNode(
                node=node.name,
                hostname=node.name,
                packages=render.packages(cluster, node),
                dirs=tuple(
                    DesiredDir(d.path, d.mode, d.owner, d.group)
                    for d in render.directories(cluster, node)
                ),
                files=tuple(to_desired_file(spec) for spec in files.values()),
                units=tuple(
                    DesiredUnit(u.name, u.enable, u.masked) for u in render.units(cluster, node)
                ),
            )
        return nodes
