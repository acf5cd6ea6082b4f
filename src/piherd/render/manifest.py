"""The manifest of a render: per node, per file, who owns it and what restarts; no secrets."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from piherd.model import Cluster
from piherd.model.specs import FileSpec
from piherd.render.node import node_directories, node_packages, node_units


def file_entry(spec: FileSpec) -> dict[str, Any]:
    """The manifest's record of one file: metadata and sha256, never the content."""
    return {
        "owner": spec.owner,
        "group": spec.group,
        "mode": f"{spec.mode:04o}",
        "sha256": hashlib.sha256(spec.content).hexdigest(),
        "restarts": list(spec.restarts),
        "reloads": list(spec.reloads),
        "secret": spec.secret,
    }


def manifest(cluster: Cluster, rendered: Mapping[str, Mapping[str, FileSpec]]) -> dict[str, Any]:
    """JSON-ready manifest of `rendered` (node -> path -> FileSpec), with desired state."""
    nodes: dict[str, Any] = {}
    for name, files in rendered.items():
        node = cluster.node(name)
        nodes[name] = {
            "files": {path: file_entry(spec) for path, spec in sorted(files.items())},
            "directories": {
                d.path: {"owner": d.owner, "group": d.group, "mode": f"{d.mode:04o}"}
                for d in node_directories(cluster, node)
            },
            "packages": list(node_packages(cluster, node)),
            "units": [
                {"name": u.name, "enable": u.enable, "masked": u.masked}
                for u in node_units(cluster, node)
            ],
        }
    return {"cluster": cluster.name, "nodes": nodes}
