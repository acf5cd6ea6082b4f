"""The sshfs storage key, confined on the server: its own sshd port, a chroot, SFTP only.

An authorized_keys line cannot confine a key to a directory (`internal-sftp -d` only sets
where a session starts). sshd can, with `ChrootDirectory` in a `Match` block; a block can
match a user, an address or the port a client reached, never a key. So the storage key
gets a port of its own (services.storage.sftp_port): sshd listens there too, and a
`Match LocalPort` block reads only the storage key file there, chroots every session into
a root-owned directory and forces internal-sftp. The export is bind-mounted inside that
directory at its own path, so clients still mount ADMIN@SERVER:EXPORT. On the normal
port the storage key is not accepted at all (it is not in the admin's key files).
"""

from __future__ import annotations

from dataclasses import replace

from piherd.model import Cluster, Node
from piherd.model.specs import DirSpec, FileSpec
from piherd.render.spec import text, unit_name_for_path

SFTP_ROOT = "/var/lib/piherd/sftp"  # the chroot: root-owned, 0755, the export inside
STORAGE_KEYS_DIR = "/etc/ssh/piherd/storage_keys"  # read only on the storage port
SFTP_DROPIN = "/etc/ssh/sshd_config.d/piherd-storage.conf"


def chroot_path(export: str) -> str:
    """Where the export appears inside the chroot (as seen from outside it)."""
    return SFTP_ROOT + export


def bind_unit(export: str) -> str:
    """The .mount unit that shows the export inside the chroot."""
    return unit_name_for_path(chroot_path(export), "mount")


def host_key_alias(cluster: Cluster, server: Node) -> str:
    """The server's name in known_hosts (written for the normal port, not the storage one)."""
    address = str(server.address)
    return address if cluster.ssh_port == 22 else f"[{address}]:{cluster.ssh_port}"


def server_dirs(export: str) -> tuple[DirSpec, ...]:
    """The chroot and the root-owned directories leading to the export's mount point."""
    parents = export.strip("/").split("/")[:-1]
    paths = [SFTP_ROOT] + [
        SFTP_ROOT + "/" + "/".join(parents[: i + 1]) for i in range(len(parents))
    ]
    return tuple(DirSpec(p, 0o755, "root", "root") for p in paths)


def server_files(
    cluster: Cluster, export: str, port: int, hosts: str, public_key: str
) -> list[FileSpec]:
    """The sshd drop-in, the storage key file and the bind mount, on the storage server."""
    key = " ".join(public_key.split()[:2])
    keys = text(
        cluster,
        f"{STORAGE_KEYS_DIR}/{cluster.admin_user}",
        [
            f"# The storage key: read by sshd on port {port} only ({SFTP_DROPIN}).",
            f'from="{hosts}",restrict,command="internal-sftp" {key} piherd-storage',
        ],
    )
    dropin = text(
        cluster,
        SFTP_DROPIN,
        [
            "# The sshfs storage key (services.storage): SFTP only, inside the export.",
            f"# sshd listens on port {port} too; there it accepts only the keys in",
            f"# {STORAGE_KEYS_DIR}/USER and locks every session into {SFTP_ROOT},",
            f"# where {export} is bind-mounted at its own path.",
            f"Port {cluster.ssh_port}",
            f"Port {port}",
            f"Match LocalPort {port}",
            f"    AuthorizedKeysFile {STORAGE_KEYS_DIR}/%u",
            "    AuthenticationMethods publickey",
            f"    ChrootDirectory {SFTP_ROOT}",
            f"    ForceCommand internal-sftp -d {export}",
            "    AllowAgentForwarding no",
            "    AllowStreamLocalForwarding no",
            "    AllowTcpForwarding no",
            "    PermitTTY no",
            "    PermitTunnel no",
            "    X11Forwarding no",
        ],
        reloads=("ssh.service",),
    )
    dropin = replace(dropin, guards_login=True)  # sshd's ports and logins: with a rollback
    mount_name = bind_unit(export)
    bind = text(
        cluster,
        f"/etc/systemd/system/{mount_name}",
        [
            "[Unit]",
            f"Description=Shared storage {export} inside the storage key's chroot (piherd)",
            "",
            "[Mount]",
            f"What={export}",
            f"Where={chroot_path(export)}",
            "Type=none",
            "Options=bind",
            # Clients' sftp sessions keep it busy until they unmount (after the head, when
            # storage is turned off): detach now, let the kernel free it once unused.
            "LazyUnmount=yes",
            "",
            "[Install]",
            "WantedBy=multi-user.target",
        ],
        restarts=(mount_name,),
    )
    return [keys, dropin, bind]
