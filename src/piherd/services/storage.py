"""Shared storage: the server exports a directory, clients mount it without risking boot.

NFS (real Pis): /etc/exports limited to the cluster subnet, root squashed by default;
clients get a systemd .mount + .automount pair, so a missing server cannot hang boot.

sshfs (where the kernel has no NFS, e.g. the virtual cluster): clients mount
ADMIN@SERVER:EXPORT with fuse.sshfs through the same unit pair, logging in with a
dedicated storage key. On the server that key is accepted only from the cluster
subnet, only on sshd's storage port (sftp_port), and only for SFTP inside a chroot that
holds nothing but the export (services/storage_sftp.py). Files appear owned by the
admin user on both sides.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from piherd.model import Cluster, Node, expand
from piherd.model.checks import absolute_path, nodeset_members
from piherd.model.nodesets import NodeSetError
from piherd.model.reader import Reader
from piherd.model.service import InitEntry, InitFlag, InitTable, Service
from piherd.model.specs import DirSpec, FileSpec, RenderContext, UnitSpec
from piherd.render.spec import safe_path, text, unit_name_for_path
from piherd.services import storage_sftp
from piherd.services.ssh_keys import KNOWN_HOSTS

STORAGE_KEY = "/etc/piherd/storage_key"
# The NFS server's own unit name. Debian's nfs-kernel-server.service is only an alias
# (a symlink to it): systemd's unit lists name the unit nfs-server.service, so piherd,
# asking for the alias, found it "not-found" and started it instead of reloading it, and
# a changed /etc/exports was never exported (found on VM nodes, the first real NFS).
NFS_SERVER_UNIT = "nfs-server.service"
SFTP_PORT = 2222  # sshd's port for the storage key unless sftp_port says (or ssh_port is it)

if TYPE_CHECKING:
    from piherd.model.template import Answers


@dataclass(frozen=True)
class StorageSettings:
    """[services.storage]: a directory of a node (the head) shared with the others.

    `server_name` and `client_names` are derived once the nodes are known: the server
    (the head unless `server` names a node) and the nodes that mount (`clients` minus the
    server).
    """

    enabled: bool = True
    kind: Literal["nfs", "sshfs"] = "nfs"
    server: str = ""  # node name; the head when empty in the file
    export: str = "/srv/cluster"
    mount: str = "/cluster"
    clients: str = "@all"
    root_squash: bool = True
    sftp_port: int = 0  # sshd's port for the storage key (kind = "sshfs"); 0: derived
    server_name: str = ""
    client_names: frozenset[str] = frozenset()  # a set: asked once per node
    server_mounts_too: bool = False  # the server is in `clients` as well


def settings_of(cluster: Cluster) -> StorageSettings:
    """The cluster's storage settings."""
    return cluster.services.get(StorageSettings)


def storage_server(cluster: Cluster) -> Node:
    """The node that exports the shared storage (the head unless configured)."""
    return cluster.node(settings_of(cluster).server_name or cluster.head.name)


def clients(cluster: Cluster) -> list[Node]:
    """Nodes that mount the storage: services.storage.clients minus the server."""
    names = settings_of(cluster).client_names
    return [n for n in cluster.nodes if n.name in names]


def server_binds(cluster: Cluster) -> bool:
    """True when the server is a client too: it bind-mounts the export at the mount point."""
    storage = settings_of(cluster)
    return storage.server_mounts_too and storage.mount.rstrip("/") != storage.export.rstrip("/")


def mount_units(cluster: Cluster) -> tuple[str, str]:
    """Names of the client's (.mount, .automount) units."""
    where = safe_path(settings_of(cluster).mount, "services.storage.mount")
    return unit_name_for_path(where, "mount"), unit_name_for_path(where, "automount")


def directories(cluster: Cluster, node: Node) -> tuple[DirSpec, ...]:
    """The exported directory on the server, owned by the admin user so jobs can write."""
    storage = settings_of(cluster)
    if not storage.enabled or node.name != storage.server_name:
        return ()
    export = safe_path(storage.export, "services.storage.export")
    chroot = storage_sftp.server_dirs(export) if storage.kind == "sshfs" else ()
    return (DirSpec(export, 0o755, cluster.admin_user, cluster.admin_user), *chroot)


def render(cluster: Cluster, node: Node, ctx: RenderContext) -> dict[str, FileSpec]:
    """Export files on the server, mount units (and the sshfs key) on clients."""
    storage = settings_of(cluster)
    if not storage.enabled:
        return {}
    if node.name == storage.server_name:
        specs = _nfs_server(cluster) if storage.kind == "nfs" else _sftp_server(cluster, ctx)
        if server_binds(cluster):
            specs.append(_bind(cluster))
    elif node.name in storage.client_names:
        # The same units on every client: made once per render.
        specs = ctx.shared(cluster, "storage-client", lambda: _client(cluster, ctx))
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
    storage = settings_of(cluster)
    export = safe_path(storage.export, "services.storage.export")
    squash = "root_squash" if storage.root_squash else "no_root_squash"
    options = f"rw,sync,no_subtree_check,{squash}"
    entries = " ".join(f"{host}({options})" for host in _export_hosts(cluster))
    lines = [
        "# Shared storage (services.storage), for the cluster's nodes only.",
        f"{export} {entries}",
    ]
    return [text(cluster, "/etc/exports", lines, reloads=(NFS_SERVER_UNIT,))]


def _sftp_server(cluster: Cluster, ctx: RenderContext) -> list[FileSpec]:
    """The sshfs server: the storage key, confined to the export (services/storage_sftp.py)."""
    storage = settings_of(cluster)
    export = safe_path(storage.export, "services.storage.export")
    hosts = ",".join(_export_hosts(cluster))
    return storage_sftp.server_files(
        cluster, export, storage.sftp_port, hosts, ctx.storage_public_key
    )


def _bind(cluster: Cluster) -> FileSpec:
    """The server sees the share at the same path as the clients, by a bind mount."""
    storage = settings_of(cluster)
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
    storage = settings_of(cluster)
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
                f"HostKeyAlias={storage_sftp.host_key_alias(cluster, server)}",
                "StrictHostKeyChecking=yes",
                "BatchMode=yes",
                f"Port={storage.sftp_port}",
            ]
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


def _read(reader: Reader, s: dict[str, Any]) -> StorageSettings:
    path, default = "services.storage", StorageSettings()
    kind = reader.get(s, path, "kind", str, default.kind)
    if kind not in ("nfs", "sshfs"):
        reader.problem(f"{path}.kind", f"unknown storage kind {kind!r}", 'use "nfs" or "sshfs"')
        kind = "nfs"
    if kind == "sshfs" and "root_squash" in s:
        reader.problem(
            f"{path}.root_squash",
            'root_squash is an NFS export option; it means nothing with kind = "sshfs"',
            'remove root_squash, or use kind = "nfs"',
        )
    sftp_port = reader.get(s, path, "sftp_port", int, 0)
    if "sftp_port" in s and not 0 < sftp_port < 65536:
        reader.problem(f"{path}.sftp_port", f"{sftp_port} is not a TCP port", "use 1-65535")
        sftp_port = 0
    return StorageSettings(
        enabled=reader.get(s, path, "enabled", bool, True),
        kind=kind,  # type: ignore[arg-type]
        server=reader.get(s, path, "server", str, ""),
        export=reader.get(s, path, "export", str, default.export),
        mount=reader.get(s, path, "mount", str, default.mount),
        clients=reader.get(s, path, "clients", str, default.clients),
        root_squash=reader.get(s, path, "root_squash", bool, True),
        sftp_port=sftp_port,
    )


class StorageService(Service):
    """A directory of the head (or `server`) shared with `clients`, over NFS or sshfs."""

    name = "storage"
    keys = (
        "enabled",
        "kind",
        "server",
        "export",
        "mount",
        "clients",
        "root_squash",
        "sftp_port",
    )
    init_flags = (
        InitFlag(
            "--storage",
            "Shared directory of the head: over NFS, sshfs, or none.",
            choices=("nfs", "sshfs", "none"),
            default="nfs",
        ),
    )

    def read(self, reader: Reader, table: dict[str, Any]) -> StorageSettings:
        return _read(reader, table)

    def derive(self, settings: StorageSettings, cluster: Cluster) -> StorageSettings:
        names = cluster.groups["all"]
        server = settings.server if settings.server in names else cluster.head.name
        try:
            members = set(expand(settings.clients, cluster.groups, names))
        except NodeSetError:  # reported by check()
            members = set()
        port = settings.sftp_port or (SFTP_PORT if cluster.ssh_port != SFTP_PORT else SFTP_PORT + 1)
        return replace(
            settings,
            sftp_port=port,
            server_name=server,
            client_names=frozenset(members) - {server},
            server_mounts_too=server in members,
        )

    def check(self, cluster: Cluster, reader: Reader) -> None:
        """The server is a node, paths are safe, clients a node set. The server may be a
        client too: the renderer bind-mounts the export (or uses it as is when the paths
        are equal)."""
        storage = settings_of(cluster)
        if not storage.enabled:
            return
        if storage.server and storage.server not in cluster.groups["all"]:
            reader.problem(
                "services.storage.server",
                f"storage is mounted from {storage.server!r}, which is not a node of the cluster",
                "leave server out to export from the head, or name the node that exports it",
            )
        absolute_path(reader, "services.storage.export", storage.export)
        absolute_path(reader, "services.storage.mount", storage.mount)
        nodeset_members(cluster, reader, "services.storage.clients", storage.clients)
        if storage.kind == "sshfs" and storage.sftp_port == cluster.ssh_port:
            reader.problem(
                "services.storage.sftp_port",
                f"{storage.sftp_port} is cluster.ssh_port; the storage key needs a port of its own",
                "use another free TCP port (1-65535), or leave sftp_port out",
            )

    def init_table(self, answers: Answers) -> InitTable:
        chosen = answers.option_text("storage", "nfs")
        kind = "nfs" if chosen == "none" else chosen
        return InitTable(
            "a directory of the head shared with the nodes",
            (
                InitEntry("enabled", chosen != "none" and answers.nodes > 1),
                InitEntry("kind", kind, '"nfs" or "sshfs"'),
                InitEntry("export", "/srv/cluster", "on the head"),
                InitEntry("mount", "/cluster", "on the clients"),
                InitEntry("clients", "@workers", "node set that mounts it"),
            ),
        )

    def files(self, cluster: Cluster, node: Node, ctx: RenderContext) -> list[FileSpec]:
        return list(render(cluster, node, ctx).values())

    def packages(self, cluster: Cluster, node: Node) -> tuple[str, ...]:
        storage = settings_of(cluster)
        mounts = node.name in storage.client_names
        if storage.kind == "nfs":
            if node.name == storage.server_name:
                return ("nfs-kernel-server",)
            return ("nfs-common",) if mounts else ()
        return ("sshfs",) if mounts else ()

    def units(self, cluster: Cluster, node: Node) -> list[UnitSpec]:
        storage = settings_of(cluster)
        if node.name == storage.server_name:
            nfs = storage.kind == "nfs"
            result = [UnitSpec(NFS_SERVER_UNIT if nfs else "ssh.service")]
            if not nfs:
                export = safe_path(storage.export, "services.storage.export")
                result.append(UnitSpec(storage_sftp.bind_unit(export)))
            if server_binds(cluster):
                result.append(UnitSpec(mount_units(cluster)[0]))
            return result
        if node.name in storage.client_names:
            mount, automount = mount_units(cluster)
            return [UnitSpec(automount), UnitSpec(mount, enable=False)]
        return []

    def directories(self, cluster: Cluster, node: Node) -> tuple[DirSpec, ...]:
        return directories(cluster, node)

    def storage_mount(self, cluster: Cluster, node: Node) -> str:
        storage = settings_of(cluster)
        return storage.mount if node.name in storage.client_names else ""
