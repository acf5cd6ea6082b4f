"""First contact by password (`piherd up --ask-pass`): install the admin key, verify a key
login, then turn password login off.

The one step of `up` that cannot use the key-based pool: it opens its own asyncssh
connection with the image's password, with the same accept-new host-key policy.
Password login is disabled only after a key login on the same node has worked.
"""

from __future__ import annotations

import asyncio
import shlex
from pathlib import Path
from typing import Any

import asyncssh

from piherd.model import Cluster
from piherd.ops import debian
from piherd.transport.base import Transport, TransportError
from piherd.transport.hostkeys import AcceptNewClient, default_known_hosts, known_keys

# Appends the key ("$1") to the login user's authorized_keys unless already there.
INSTALL_KEY = r"""
set -eu
umask 077
mkdir -p "$HOME/.ssh"
touch "$HOME/.ssh/authorized_keys"
grep -qxF -- "$1" "$HOME/.ssh/authorized_keys" || printf '%s\n' "$1" >> "$HOME/.ssh/authorized_keys"
chmod 700 "$HOME/.ssh"
chmod 600 "$HOME/.ssh/authorized_keys"
"""


def public_key_line(cluster: Cluster) -> str:
    """The admin's public key (one line), from cluster.ssh_public_key."""
    path = Path(cluster.ssh_public_key).expanduser()
    if not cluster.ssh_public_key or not path.is_file():
        raise TransportError("cluster", f"no admin public key at {path} (cluster.ssh_public_key)")
    lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    if len(lines) != 1 or not lines[0].startswith(("ssh-", "ecdsa-")):
        raise TransportError("cluster", f"{path} is not a single OpenSSH public key")
    return lines[0]


async def install_key_by_password(
    cluster: Cluster, name: str, password: str, key: str, timeout: float = 20.0
) -> None:
    """Log in with the password (address, then bootstrap address) and add `key`."""
    node = cluster.node(name)
    known_hosts = cluster.known_hosts or default_known_hosts()
    reasons = []
    for address in (str(node.address), node.bootstrap_address):
        if not address:
            continue
        known = known_keys(known_hosts, address, address, cluster.ssh_port)
        client = AcceptNewClient(name, known_hosts, known, cluster.ssh_port, None)
        options: dict[str, Any] = {
            "port": cluster.ssh_port,
            "username": cluster.admin_user,
            "password": password,
            "client_keys": None,
            "known_hosts": (known, [], []),
            "client_factory": lambda c=client: c,
            "connect_timeout": timeout,
        }
        try:
            async with asyncio.timeout(timeout + 5), asyncssh.connect(address, **options) as conn:
                result = await conn.run(
                    shlex.join(["sh", "-c", INSTALL_KEY, "sh", key]), check=False
                )
                if result.exit_status != 0:
                    raise TransportError(name, f"installing the key failed: {result.stderr!s}")
                return
        except (OSError, TimeoutError, asyncssh.Error) as exc:
            reasons.append(f"{address}: {client.refusal or exc}")
    raise TransportError(name, "password login failed: " + "; ".join(reasons))


async def disable_password_login(transport: Transport, dropin: str, text: bytes) -> None:
    """Write the sshd drop-in (after a key login worked: `transport` is one), check, reload.

    `dropin` and `text` are what `up` renders for the node (services/ssh_keys.py), so the
    `up` that follows finds it in place and the node's sshd gets words it knows.
    """
    check = await transport.run(["sshd", "-t"], sudo=True, timeout=30)
    if not check.ok:
        raise TransportError(transport.node, f"sshd -t fails before the change: {check.stderr}")
    await transport.write_file(dropin, text, mode=0o644)
    check = await transport.run(["sshd", "-t"], sudo=True, timeout=30)
    if not check.ok:
        await transport.run(debian.remove_file(dropin), sudo=True, timeout=30)
        raise TransportError(transport.node, f"sshd -t rejects the drop-in: {check.stderr}")
    reload = await transport.run(debian.systemctl_reload("ssh"), sudo=True, timeout=30)
    if not reload.ok:
        raise TransportError(transport.node, f"reloading sshd failed: {reload.stderr}")
