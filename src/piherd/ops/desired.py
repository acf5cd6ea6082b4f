"""Desired state of every node: render's files, packages, units and dirs, plus facts.

Render is pure and needs facts for some inputs (CPUs and memory for slurm.conf, host
keys for the cluster's known_hosts, the admin's uid/gid for sshfs); with no facts yet
(the first pass, which only needs the paths and unit names to ask about) render's own
defaults stand in.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from piherd import render
from piherd.facts.node_facts import NodeFacts
from piherd.model import Cluster
from piherd.model.specs import RenderContext
from piherd.ops.changes import DesiredNode
from piherd.secrets import Secrets, render_context


def hardware(facts: Mapping[str, NodeFacts]) -> dict[str, tuple[int, int]]:
    """{node: (cpus, memory_mb)} as the nodes report them."""
    return {n: (f.cpus, f.memory_mb) for n, f in facts.items() if f.cpus and f.memory_mb}


@dataclass
class Remembered:
    """What earlier runs learnt of each node (hardware, host keys, admin ids).

    Used for a node that cannot be reached now, so that one node being down does not
    change slurm.conf or known_hosts on all the others (and restart their daemons).
    """

    hardware: dict[str, tuple[int, int]] = field(default_factory=dict)
    host_keys: dict[str, tuple[str, ...]] = field(default_factory=dict)
    admin_ids: tuple[int, int] | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "hardware": {n: list(v) for n, v in sorted(self.hardware.items())},
                "host_keys": {n: list(v) for n, v in sorted(self.host_keys.items())},
                "admin_ids": list(self.admin_ids) if self.admin_ids else None,
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str) -> Remembered:
        """Parse; an unreadable file is treated as empty (it only saves churn)."""
        try:
            data = json.loads(text)
            ids = data.get("admin_ids")
            return cls(
                {str(n): (int(v[0]), int(v[1])) for n, v in data.get("hardware", {}).items()},
                {str(n): tuple(map(str, v)) for n, v in data.get("host_keys", {}).items()},
                (int(ids[0]), int(ids[1])) if ids else None,
            )
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            return cls()


class DesiredState:
    """Builds every node's DesiredNode from render; holds the secrets and what it learnt."""

    def __init__(
        self,
        secrets: Secrets,
        remembered: Remembered | None = None,
        *,
        piherd_bundle: bytes = b"",
        cluster_toml: str = "",
    ) -> None:
        self.secrets = secrets
        self.remembered = remembered or Remembered()
        self.piherd_bundle = piherd_bundle  # for the head's watch service (piherd.bundle)
        self.cluster_toml = cluster_toml

    def context(self, cluster: Cluster) -> RenderContext:
        """The RenderContext of what is known now (`piherd render` uses this one too)."""
        known = self.remembered
        names = {n.name for n in cluster.nodes}
        return render_context(
            self.secrets,
            {n: v for n, v in known.hardware.items() if n in names},
            {n: v for n, v in known.host_keys.items() if n in names},
            known.admin_ids or (1000, 1000),
            piherd_bundle=self.piherd_bundle,
            cluster_toml=self.cluster_toml,
        )

    def __call__(self, cluster: Cluster, facts: Mapping[str, NodeFacts]) -> dict[str, DesiredNode]:
        known = self.remembered
        if facts:  # the first pass (no facts yet) must not forget anything
            known.hardware.update(hardware(facts))
            known.host_keys.update({n: f.host_keys for n, f in facts.items() if f.host_keys})
            head = facts.get(cluster.head.name)
            if head is not None and head.login_ids:
                known.admin_ids = head.login_ids
        ctx = self.context(cluster)
        nodes = {}
        for node in cluster.nodes:
            files = render.render_node(cluster, node, ctx)
            nodes[node.name] = DesiredNode(
                node=node.name,
                hostname=node.name,
                packages=render.node_packages(cluster, node),
                packages_from_head=render.node_packages_from_head(cluster, node),
                dirs=render.node_directories(cluster, node),
                files=tuple(files.values()),
                units=render.node_units(cluster, node),
            )
        return nodes
