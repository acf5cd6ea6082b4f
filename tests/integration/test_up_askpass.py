"""`piherd up --ask-pass` first contact on a real sim node: password in, key installed,
key login verified, then password login off (and the key still works)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from piherd.model import Cluster
from piherd.services import load
from piherd.services.ssh_keys import render_no_password
from piherd.sim.virtual_cluster import VirtualCluster
from piherd.transport import first_contact
from piherd.transport.base import TransportError
from piherd.transport.pool import ConnectionPool

pytestmark = pytest.mark.sim

NAME = "tupap"
NODE = "node02"  # a worker: the sim needs one for a valid (Slurm) cluster.toml
PASSWORD = "raspberry-image-pw"
PIHERD = str(Path(sys.executable).parent / "piherd")


@pytest.fixture(scope="module")
def node(sim_cm: Callable[..., AbstractContextManager[VirtualCluster]]) -> Iterator[Cluster]:
    with sim_cm(NAME, 1) as vc:
        # The node as a fresh image: a password, and no key for the admin user.
        script = f"echo 'pi:{PASSWORD}' | chpasswd && rm -f /home/pi/.ssh/authorized_keys\n"
        subprocess.run(
            [PIHERD, "sim", "shell", NODE, "--name", NAME],
            input=script,
            text=True,
            check=True,
            timeout=60,
        )
        yield load(vc.cluster_file)


async def key_login(cluster: Cluster) -> str:
    async with ConnectionPool(cluster) as pool:
        t = await pool.get(NODE)
        return (await t.run(["id", "-un"])).stdout.strip()


def test_key_refused_before(node: Cluster) -> None:
    with pytest.raises(TransportError, match="authentication refused"):
        asyncio.run(key_login(node))


def test_password_installs_key_then_password_is_off(node: Cluster) -> None:
    key = first_contact.public_key_line(node)
    asyncio.run(first_contact.install_key_by_password(node, NODE, PASSWORD, key))
    assert asyncio.run(key_login(node)) == "pi"

    async def turn_off() -> None:
        async with ConnectionPool(node) as pool:
            keys_only = render_no_password(node, node.node(NODE))
            await first_contact.disable_password_login(
                await pool.get(NODE), keys_only.path, keys_only.content
            )

    asyncio.run(turn_off())
    with pytest.raises(TransportError, match="password login failed"):
        asyncio.run(first_contact.install_key_by_password(node, NODE, PASSWORD, key))
    assert asyncio.run(key_login(node)) == "pi"
