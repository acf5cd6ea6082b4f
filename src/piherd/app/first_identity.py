"""A Pi that booted a generic card gets its own host keys once `discover --assign` names it.

A generic card (`piherd image --generic`) boots with the cluster's first-boot host key,
the same on every such card. The named Pi is trusted only if it presents that key: the
connection is verified against it (never accept-new). Then piherd installs the node's own
host keys (made here, kept in the secrets directory as `piherd image` keeps them), has
sshd load them, and records them in known_hosts for the node's address and the address it
answered at, so `piherd up` verifies the node by its own key from its first contact.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from piherd.app.discovery import SSH_PORT
from piherd.app.imaging import GENERIC
from piherd.image import node_keys
from piherd.model import Cluster
from piherd.secrets import HOST_KEYS_DIR
from piherd.transport.banner import ssh_answers
from piherd.transport.base import TransportError
from piherd.transport.hostkeys import default_known_hosts
from piherd.transport.ssh import SshTransport

_TIMEOUT_S = 60.0
_RELOAD_SETTLE_S = 1.0  # the signal reaches sshd's main loop after `systemctl reload`


class IdentityError(Exception):
    """The named Pi cannot be given its identity (the message says why)."""


def has_generic_cards(cluster: Cluster) -> bool:
    """Whether `piherd image --generic` made first-boot keys for this cluster."""
    return (Path(cluster.secrets_dir) / HOST_KEYS_DIR / GENERIC).is_dir()


async def give_host_keys(
    cluster: Cluster, node: str, address: str, *, port: int = SSH_PORT
) -> list[str]:
    """Verify that `address` presents the first-boot key, install `node`'s own host keys
    there and record them; their fingerprints. IdentityError when it cannot be done."""
    secrets = Path(cluster.secrets_dir)
    first_boot = node_keys.host_keys(secrets, GENERIC, f"piherd-firstboot@{cluster.name}")
    own = node_keys.host_keys(secrets, node, f"root@{node}")
    with tempfile.TemporaryDirectory(prefix="piherd-identity-") as scratch:
        trusted = Path(scratch) / "known_hosts"
        node_keys.record(trusted, [address], port, first_boot)
        transport = SshTransport(
            node,
            address,
            port=port,
            username=cluster.admin_user,
            known_hosts=trusted,
            ssh_config=cluster.ssh_config,  # its IdentityFile, as for every connection
            client_keys=[cluster.ssh_identity] if cluster.ssh_identity else None,
        )
        try:
            await transport.connect()
            for key in own:
                path = f"/etc/ssh/ssh_host_{key.kind}_key"
                await transport.write_file(path, key.private, mode=0o600)
                await transport.write_file(f"{path}.pub", (key.public + "\n").encode(), mode=0o644)
            # SIGHUP: sshd re-executes itself and loads the new keys; this session stays.
            reload = ["systemctl", "reload", "ssh"]
            result = await transport.run(reload, sudo=True, timeout=_TIMEOUT_S)
            if not result.ok:
                raise IdentityError(f"sshd did not reload: {(result.error or result.stderr)[:200]}")
            await _listening_again(address, port)
        except TransportError as exc:
            raise IdentityError(str(exc)) from None
        finally:
            await transport.close()
    hosts = list(dict.fromkeys([str(cluster.node(node).address), address]))
    known_hosts = cluster.known_hosts or default_known_hosts()
    node_keys.record(known_hosts, hosts, cluster.ssh_port, own)
    if cluster.ssh_port != port:
        node_keys.record(known_hosts, [address], port, own)
    return [node_keys.fingerprint(k) for k in own]


async def _listening_again(address: str, port: int) -> None:
    """sshd re-executes itself on SIGHUP and binds its port anew: the next login (`up`
    right after) must not meet the moment it is closed."""
    await asyncio.sleep(_RELOAD_SETTLE_S)
    deadline = asyncio.get_running_loop().time() + _TIMEOUT_S
    while not await ssh_answers(address, port):
        if asyncio.get_running_loop().time() > deadline:
            raise IdentityError(f"sshd did not answer again at {address}:{port} after its reload")
        await asyncio.sleep(0.5)


async def own_keys_again(cluster: Cluster, node: str) -> bool:
    """A netbooted node that presents the shared root's first-boot key (every boot does:
    its own keys were in memory) gets them back; True when it did. A node that is down,
    or already presents its own keys, is left as it is (False)."""
    try:
        async with asyncio.timeout(_TIMEOUT_S):
            await give_host_keys(cluster, node, str(cluster.node(node).address))
    except (IdentityError, TimeoutError):
        return False
    return True
