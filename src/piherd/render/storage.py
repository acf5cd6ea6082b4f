"""Shared storage: the server exports a directory, clients mount it without risking boot.

NFS (real Pis): /etc/exports limited to the cluster subnet, root squashed by default;
clients get a systemd .mount + .automount pair, so a missing server cannot hang boot.

sshfs (where the kernel has no NFS, e.g. the virtual cluster): clients mount
ADMIN@SERVER:EXPORT with fuse.sshfs through the same unit pair, logging in with a
dedicated storage key. On the server that key is accepted only from the cluster
subnet and only for SFTP (`restrict,command="internal-sftp"`), in the authorized-keys
file piherd owns (render/keys.py). Files appear owned by the admin user on both sides.
"""

from __future__ import annotations

from piherd.model import Cluster, Node, expand
from piherd.render.spec import (
    DirSpec,
    FileSpec,
    RenderContext,
    safe_path,
    storage_server,
    text,
    unit_name_for_path,
)
from piherd.render.ssh import KNOWN_HOSTS

STORAGE_KEY = "/etc/piherd/storage_key"


def clients(cluster: Cluster) -> list[Node]:
    """Nodes that mount the storage: services.storage.clients minus the server."""
    storage = cluster.services.storage
    server = storage_server(cluster)
    names = set(expand(storage.clients, cluster.groups, cluster.groups["all"]))
    return [n for n in cluster.nodes if n.name in names and n.name != server.name]


def server_binds(cluster: Cluster) -> bool:
    """True when the server is a client too: it bind-mounts the export at the mount point."""
    storage = cluster.services.storage
    server = storage_server(cluster).name
    names = expand(storage.clients, cluster.groups, cluster.groups["all"])
    return server in names and storage.mount.rstrip("/") != storage.export.rstrip("/")


def mount_units(cluster: Cluster) -> tuple[str, str]:
    """Names of the client's (.mount, .automount) units."""
    where = safe_path(cluster.services.storage.mount, "services.storage.mount")
    return unit_name_for_path(where, "mount"), unit_name_for_path(where, "automount")


def directories(cluster: Cluster, node: Node) -> tuple[DirSpec, ...]:
    """The exported directory on the server, owned by the admin user so jobs can write."""
    storage = cluster.services.storage
    if not storage.enabled or node.name != storage_server(cluster).name:
        return ()
    export = safe_path(storage.export, "services.storage.export")
    return (DirSpec(export, 0o755, cluster.admin_user, cluster.admin_user),)


def render(cluster: Cluster, node: Node, ctx: RenderContext) -> dict[str, FileSpec]:
    """Export files on the server, mount units (and the sshfs key) on clients."""
    storage = cluster.services.storage
    if not storage.enabled:
        return {}
    if node.name == storage_server(cluster).name:
        # The sshfs server needs only the storage key (authorized_entries, render/keys.py).
        specs = _nfs_server(cluster) if storage.kind == "nfs" else []
        if server_binds(cluster):
            specs.append(_bind(cluster))
    elif node in clients(cluster):
        specs = _client(cluster, ctx)
    else:
        specs = []
    return {s.path: s for s in specs}


def _export_hosts(cluster: Cluster) -> list[str]:
    """The subnet when every other node mounts; otherwise each client's address."""
    mounting = clients(cluster)
    if len(mounting) == len(cluster.nodes) - 1:
        return [str(cluster.network.subnet)]
    return [f"{n.address}/32" for n in sorted(mounting, key=lambda n: n.address)]


def _nfs_server(cluster: Cluster) -> list[FileSpec]:
    storage = cluster.services.storage
    export = safe_path(storage.export, "services.storage.export")
    squash = "root_squash" if storage.root_squash else "no_root_squash"
    options = f"rw,sync,no_subtree_check,{squash}"
    entries = " ".join(f"{host}({options})" for host in _export_hosts(cluster))
    lines = [
        "# Shared storage (services.storage), for the cluster's nodes only.",
        f"{export} {entries}",
    ]
    return [text(cluster, "/etc/exports", lines, reloads=("nfs-kernel-server.service",))]


def authorized_entries(cluster: Cluster, node: Node, ctx: RenderContext) -> list[str]:
    """Authorized-keys lines for the admin user: on the sshfs server, the storage key."""
    storage = cluster.services.storage
    if not storage.enabled or storage.kind != "sshfs":
        return []
    if node.name != storage_server(cluster).name:
        return []
    hosts = ",".join(_export_hosts(cluster))
    key = " ".join(ctx.storage_public_key.split()[:2])
    return [
        "# The storage key: SFTP only, from cluster nodes only.",
        f'from="{hosts}",restrict,command="internal-sftp" {key} piherd-storage',
    ]


def _bind(cluster: Cluster) -> FileSpec:
    """The server sees the share at the same path as the clients, by a bind mount."""
    storage = cluster.services.storage
    where = safe_path(storage.mount, "services.storage.mount")
    export = safe_path(storage.export, "services.storage.export")
    mount_name, _ = mount_units(cluster)
    return text(
        cluster,
        f"/etc/systemd/system/{mount_name}",
        [
            "[Unit]",
            f"Description=Shared storage {export} at {where} (piherd)",
            "",
            "[Mount]",
            f"What={export}",
            f"Where={where}",
            "Type=none",
            "Options=bind",
            "",
            "[Install]",
            "WantedBy=multi-user.target",
        ],
        restarts=(mount_name,),
    )


def _client(cluster: Cluster, ctx: RenderContext) -> list[FileSpec]:
    storage = cluster.services.storage
    server = storage_server(cluster)
    where = safe_path(storage.mount, "services.storage.mount")
    export = safe_path(storage.export, "services.storage.export")
    mount_name, automount_name = mount_units(cluster)
    if storage.kind == "nfs":
        what, fstype = f"{server.address}:{export}", "nfs"
        options = "rw,noatime,_netdev"
    else:
        what, fstype = f"{cluster.admin_user}@{server.address}:{export}", "fuse.sshfs"
        options = ",".join(
            [
                "_netdev",
                "allow_other",
                "default_permissions",
                f"uid={ctx.admin_uid}",
                f"gid={ctx.admin_gid}",
                "reconnect",
                "ServerAliveInterval=15",
                "ServerAliveCountMax=3",
                f"IdentityFile={STORAGE_KEY}",
                f"UserKnownHostsFile={KNOWN_HOSTS}",
                "StrictHostKeyChecking=yes",
                "BatchMode=yes",
            ]
            + ([f"Port={cluster.ssh_port}"] if cluster.ssh_port != 22 else [])
        )
    description = f"Shared storage {export} from {server.name} (piherd)"
    mount = text(
        cluster,
        f"/etc/systemd/system/{mount_name}",
        [
            "[Unit]",
            f"Description={description}",
            "Wants=network-online.target",
            "After=network-online.target",
            "",
            "[Mount]",
            f"What={what}",
            f"Where={where}",
            f"Type={fstype}",
            f"Options={options}",
            "TimeoutSec=30",
        ],
        restarts=(automount_name,),
    )
    automount = text(
        cluster,
        f"/etc/systemd/system/{automount_name}",
        [
            "[Unit]",
            f"Description={description}, mounted on first access",
            "",
            "[Automount]",
            f"Where={where}",
            "",
            "[Install]",
            "WantedBy=remote-fs.target",
        ],
        restarts=(automount_name,),
    )
    specs = [mount, automount]
    if storage.kind == "sshfs":
        specs.append(FileSpec(STORAGE_KEY, ctx.storage_private_key, 0o600, secret=True))
    return specs
