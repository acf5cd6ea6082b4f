"""/etc/hostname and /etc/hosts: every node's name resolves to its cluster address."""

from __future__ import annotations

from piherd.model import Cluster, Node
from piherd.model.service import Service
from piherd.model.specs import FileSpec, RenderContext
from piherd.render.spec import by_address, text


def render(cluster: Cluster, node: Node, ctx: RenderContext) -> dict[str, FileSpec]:
    """The node's own name, and every node's FQDN and short name (the same on every node)."""
    return {
        "/etc/hostname": text(cluster, "/etc/hostname", [node.name]),
        "/etc/hosts": ctx.shared(cluster, "hosts", lambda: etc_hosts(cluster)),
    }


def etc_hosts(cluster: Cluster) -> FileSpec:
    """/etc/hosts: every node's FQDN and short name, sorted by address.

    Unlike Debian's default there is no `127.0.1.1 <own name>` line: Slurm and MPI
    must find a node's own name at its cluster address, as the other nodes do.
    """
    hosts = [
        "127.0.0.1\tlocalhost",
        "::1\t\tlocalhost ip6-localhost ip6-loopback",
        "ff02::1\t\tip6-allnodes",
        "ff02::2\t\tip6-allrouters",
        "",
    ]
    for other in by_address(cluster.nodes):
        names = [cluster.fqdn(other), other.name] if cluster.domain else [other.name]
        hosts.append(f"{other.address}\t{' '.join(dict.fromkeys(names))}")
    return text(cluster, "/etc/hosts", hosts)


class HostsService(Service):
    """Always on: the node's name and every node's address in /etc/hosts."""

    def files(self, cluster: Cluster, node: Node, ctx: RenderContext) -> list[FileSpec]:
        return list(render(cluster, node, ctx).values())
