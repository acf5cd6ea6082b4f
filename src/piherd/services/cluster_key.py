"""The admin user's node-to-node SSH key, so `mpiexec -machinefile FILE` works from any node.

piherd generates the key pair (secrets dir, 0600); it is not the admin machine's own key.
Every MPI node (the head and the compute nodes) gets:
- the private half, owned by the admin user, mode 0600 (CLUSTER_KEY);
- an ssh client drop-in that makes the admin user's ssh use it towards cluster nodes
  only (CLIENT_DROPIN, a `Match localuser ... host ...` block);
- the public half in piherd's authorized-keys file, restricted to logins from the
  cluster subnet (`from=`), without forwarding (`restrict`, a terminal allowed).
Host keys are checked against the cluster-wide known_hosts (services/ssh_keys.py).
"""

from __future__ import annotations

from piherd.model import Cluster, Node
from piherd.model.specs import FileSpec, RenderContext
from piherd.render.spec import by_address, text

CLUSTER_KEY = "/etc/piherd/cluster_key"
CLIENT_DROPIN = "/etc/ssh/ssh_config.d/piherd-cluster-key.conf"
KEY_COMMENT = "piherd-cluster"


def has_key(node: Node) -> bool:
    """Whether `node` runs MPI ranks or launches them (the head and compute nodes)."""
    return node.is_head or node.compute


def authorized_entries(cluster: Cluster, node: Node, ctx: RenderContext) -> list[str]:
    """The cluster key's line in the admin user's piherd-owned authorized keys."""
    key = " ".join(ctx.cluster_public_key.split()[:2])
    if not key or not has_key(node):
        return []
    return [
        "# The admin user from the cluster's own nodes (mpiexec over SSH), cluster subnet only.",
        f'from="{cluster.network.subnet}",restrict,pty {key} {KEY_COMMENT}',
    ]


def render(cluster: Cluster, node: Node, ctx: RenderContext) -> dict[str, FileSpec]:
    """The private key and the client drop-in that uses it (nothing without a key)."""
    if not ctx.cluster_private_key or not has_key(node):
        return {}
    # The same on every node: built once per render (n nodes, not n x n lines of work).
    dropin = ctx.shared(cluster, "cluster-key-dropin", lambda: _client_dropin(cluster))
    key = FileSpec(
        CLUSTER_KEY, ctx.cluster_private_key, 0o600, owner=cluster.admin_user, secret=True
    )
    return {dropin.path: dropin, key.path: key}


def _client_dropin(cluster: Cluster) -> FileSpec:
    hosts: list[str] = []
    for other in by_address(cluster.nodes):
        hosts += dict.fromkeys([other.name, cluster.fqdn(other), str(other.address)])
    admin = cluster.admin_user
    return text(
        cluster,
        CLIENT_DROPIN,
        [
            f"# {admin} logs in from node to node with piherd's cluster key (mpiexec over SSH).",
            f"Match localuser {admin} host {','.join(hosts)}",
            f"    IdentityFile {CLUSTER_KEY}",
        ],
    )
