"""SSH for the cluster: a known_hosts with every node's host keys, and client settings."""

from __future__ import annotations

from collections.abc import Mapping

from piherd.model import Cluster, Node, fold
from piherd.render.spec import FileSpec, RenderContext, by_address, text

KNOWN_HOSTS = "/etc/ssh/ssh_known_hosts"
CLIENT_CONFIG = "/etc/ssh/ssh_config.d/piherd.conf"


def _names(cluster: Cluster, node: Node) -> list[str]:
    names = list(dict.fromkeys([node.name, cluster.fqdn(node), str(node.address)]))
    if cluster.ssh_port != 22:
        names = [f"[{n}]:{cluster.ssh_port}" for n in names]
    return names


def render(cluster: Cluster, node: Node, ctx: RenderContext) -> dict[str, FileSpec]:
    """/etc/ssh/ssh_known_hosts and /etc/ssh/ssh_config.d/piherd.conf (same on every node)."""
    del node
    known = []
    missing = []
    for other in by_address(cluster.nodes):
        keys = sorted({" ".join(k.split()[:2]) for k in ctx.host_keys.get(other.name, ())})
        if not keys:
            missing.append(other.name)
        known += [f"{','.join(_names(cluster, other))} {key}" for key in keys]
    if missing:
        known.insert(0, f"# No host key known yet for {fold(missing)}.")
    hosts = []
    for other in by_address(cluster.nodes):
        hosts += list(dict.fromkeys([other.name, cluster.fqdn(other), str(other.address)]))
    config = [
        f"Host {' '.join(hosts)}",
        # Every node's key is in the global known_hosts: refuse anything else.
        "    StrictHostKeyChecking yes",
        f"    GlobalKnownHostsFile {KNOWN_HOSTS}",
    ]
    if cluster.ssh_port != 22:
        config.append(f"    Port {cluster.ssh_port}")
    return {
        KNOWN_HOSTS: text(cluster, KNOWN_HOSTS, known),
        CLIENT_CONFIG: text(cluster, CLIENT_CONFIG, config),
    }


def host_keys_from_known_hosts(text_: str, cluster: Cluster) -> dict[str, tuple[str, ...]]:
    """Host-key lines per node from known_hosts text (unhashed entries naming a node)."""
    lookup: dict[str, str] = {}
    for node in cluster.nodes:
        for name in (node.name, cluster.fqdn(node), str(node.address)):
            lookup[name] = node.name
            lookup[f"[{name}]:{cluster.ssh_port}"] = node.name
    found: dict[str, set[str]] = {}
    for line in text_.splitlines():
        fields = line.split()
        if len(fields) < 3 or line.startswith(("#", "@", "|")):
            continue
        for host in fields[0].split(","):
            if host in lookup:
                found.setdefault(lookup[host], set()).add(f"{fields[1]} {fields[2]}")
    return {name: tuple(sorted(keys)) for name, keys in sorted(found.items())}


def merge_host_keys(
    *sources: Mapping[str, tuple[str, ...]],
) -> dict[str, tuple[str, ...]]:
    """The union of several node -> host keys mappings."""
    merged: dict[str, set[str]] = {}
    for source in sources:
        for name, keys in source.items():
            merged.setdefault(name, set()).update(keys)
    return {name: tuple(sorted(keys)) for name, keys in sorted(merged.items())}
