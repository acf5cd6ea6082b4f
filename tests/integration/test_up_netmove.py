"""The network move rolls back by itself when piherd cannot reach the new address.

A sim node at its DHCP lease; this machine drops every packet from the node's static
address (an nft table of this test), so after the move piherd cannot reconnect: the up
reports the node failed, and the node's own timer restores its DHCP config. With the
block gone, the next up moves it for good.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from piherd.model import Cluster
from piherd.services import load
from piherd.sim.virtual_cluster import VirtualCluster

pytestmark = pytest.mark.sim

NAME = "tupnet"
NODE = "node02"
TABLE = "piherd-tupnet-block"
PIHERD = str(Path(sys.executable).parent / "piherd")
NM_FILE = "/etc/NetworkManager/system-connections/piherd-host0.nmconnection"


def sim_shell(command: str) -> str:
    return subprocess.run(
        [PIHERD, "sim", "shell", NODE, "--name", NAME],
        input=command + "\n",
        text=True,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout


@pytest.fixture(scope="module")
def sim(sim_cm: Callable[..., AbstractContextManager[VirtualCluster]]) -> Iterator[VirtualCluster]:
    with sim_cm(NAME, 1) as vc:
        yield vc


@pytest.fixture(scope="module")
def cluster_file(sim: VirtualCluster) -> Path:
    return sim.cluster_file


@pytest.fixture(scope="module")
def cluster(cluster_file: Path) -> Cluster:
    return load(cluster_file)


@pytest.fixture
def blocked(cluster: Cluster) -> Iterator[None]:
    static = str(cluster.node(NODE).address)
    ruleset = (
        f"table inet {TABLE} {{\n  chain input {{\n"
        "    type filter hook input priority -10; policy accept;\n"
        f"    ip saddr {static} drop\n  }}\n}}\n"
    )
    subprocess.run(["nft", "-f", "-"], input=ruleset, text=True, check=True)
    try:
        yield
    finally:
        subprocess.run(["nft", "delete", "table", "inet", TABLE], check=False)


def up(cluster_file: Path, nodes: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    proc = subprocess.run(
        [PIHERD, "up", "-f", str(cluster_file), "--json", "--timeout", "15", nodes],
        capture_output=True,
        text=True,
        timeout=900,
    )
    return proc.returncode, json.loads(proc.stdout.strip().splitlines()[-1])


def test_unreachable_new_address_rolls_back(
    cluster: Cluster, cluster_file: Path, blocked: None
) -> None:
    rc, summary = up(cluster_file, NODE)
    assert rc == 1
    assert summary["nodes"][NODE]["status"] == "failed"
    assert "not reachable at" in summary["nodes"][NODE]["reason"]
    # the node's rollback timer (90 s) restores the DHCP config by itself
    bootstrap = cluster.node(NODE).bootstrap_address
    deadline = time.monotonic() + 180
    state = ""
    while time.monotonic() < deadline:
        state = sim_shell(f"ls {NM_FILE} /var/lib/piherd/net-pending 2>&1; ip -4 -o addr show")
        if f"cannot access '{NM_FILE}'" in state and f" {bootstrap}/" in state:
            break
        time.sleep(5)
    assert f"cannot access '{NM_FILE}'" in state, state
    assert "cannot access '/var/lib/piherd/net-pending'" in state, state
    assert f" {bootstrap}/" in state, state


def test_next_up_moves_it(cluster: Cluster, cluster_file: Path) -> None:
    rc, summary = up(cluster_file, "@all")
    assert rc == 0, summary
    state = sim_shell("ip -4 -o addr show")
    assert f" {cluster.node(NODE).address}/" in state
