"""SSH for the cluster: known_hosts with every node's host keys, client settings, and keys.

Keys piherd lets log in as the admin user live in a file piherd owns (on every node):
sshd reads one more AuthorizedKeysFile, /etc/ssh/piherd/authorized_keys/%u (a drop-in
adds it), so the admin's own ~/.ssh/authorized_keys is never edited. Each key there is
restricted to its one use, as the service that needs it says (`authorized_entries`):
the sshfs storage key on the storage server (SFTP only, from the clients), the watch
key on every node (from the head only).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from piherd.model import Cluster, Node, fold
from piherd.model.service import Service
from piherd.model.specs import FileSpec, RenderContext
from piherd.render.spec import by_address, text

KNOWN_HOSTS = "/etc/ssh/ssh_known_hosts"
CLIENT_CONFIG = "/etc/ssh/ssh_config.d/piherd.conf"
SSHD_DROPIN = "/etc/ssh/sshd_config.d/piherd-keys.conf"
# Read before Debian's own settings (sshd keeps the first value it reads), and the same
# path `piherd up --ask-pass` writes on first contact.
KEYS_ONLY_DROPIN = "/etc/ssh/sshd_config.d/10-piherd-no-password.conf"
KEYBOARD_OPTION = {"bullseye": "ChallengeResponseAuthentication"}  # OpenSSH < 8.7
AUTHORIZED_DIR = "/etc/ssh/piherd/authorized_keys"


def _names(cluster: Cluster, node: Node) -> list[str]:
    names = list(dict.fromkeys([node.name, cluster.fqdn(node), str(node.address)]))
    if cluster.ssh_port != 22:
        names = [f"[{n}]:{cluster.ssh_port}" for n in names]
    return names


def render(cluster: Cluster, ctx: RenderContext) -> dict[str, FileSpec]:
    """/etc/ssh/ssh_known_hosts and /etc/ssh/ssh_config.d/piherd.conf (same on every node)."""
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


def render_keys(cluster: Cluster, node: Node, ctx: RenderContext) -> dict[str, FileSpec]:
    """The sshd drop-in and the admin user's key file, on every node.

    Where no key is wanted any more (watch or storage turned off), `up` removes the
    key file it created (ops/removals.py).
    """
    entries = [
        line
        for service in cluster.services.enabled()
        for line in service.authorized_entries(cluster, node, ctx)
    ]
    dropin = text(
        cluster,
        SSHD_DROPIN,
        [
            "# Also read the keys piherd manages (see the file named below).",
            f"AuthorizedKeysFile .ssh/authorized_keys .ssh/authorized_keys2 {AUTHORIZED_DIR}/%u",
        ],
        reloads=("ssh.service",),
    )
    dropin = replace(dropin, guards_login=True)  # another AuthorizedKeysFile: guard it too
    if not entries:
        return {dropin.path: dropin}
    keys = text(cluster, f"{AUTHORIZED_DIR}/{cluster.admin_user}", entries)
    return {dropin.path: dropin, keys.path: keys}


def render_no_password(cluster: Cluster, node: Node) -> FileSpec:
    """Keys only: password login off on every node (`up` logs in with a key, so keys work).

    OpenSSH 8.7 renamed ChallengeResponseAuthentication to KbdInteractiveAuthentication;
    bullseye's 8.4 refuses the new name, so each node gets the one its sshd knows.
    """
    keyboard = KEYBOARD_OPTION.get(node.os, "KbdInteractiveAuthentication")
    spec = text(
        cluster,
        KEYS_ONLY_DROPIN,
        [
            "# Keys only: piherd has logged in here with a key (reloaded with a rollback armed).",
            "PasswordAuthentication no",
            f"{keyboard} no",
        ],
        reloads=("ssh.service",),
    )
    return replace(spec, guards_login=True)


class SshService(Service):
    """Always on: known_hosts, client settings and the piherd-owned authorized keys."""

    def files(self, cluster: Cluster, node: Node, ctx: RenderContext) -> list[FileSpec]:
        return [
            *ctx.shared(cluster, "ssh_keys", lambda: render(cluster, ctx)).values(),
            *render_keys(cluster, node, ctx).values(),
            render_no_password(cluster, node),
        ]
