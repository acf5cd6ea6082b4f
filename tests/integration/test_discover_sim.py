"""`piherd discover` against light sim nodes: real sshd, real ARP, a real neighbour table.

Light nodes carry Raspberry Pi MACs (dc:a6:32:...) on a switch with this machine as the
router, as Pis on a home LAN; a killed node answers neither TCP nor ARP.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from piherd.services import load
from piherd.sim.virtual_cluster import VirtualCluster

pytestmark = pytest.mark.sim

NAME = "tdisc"
PIHERD = str(Path(sys.executable).parent / "piherd")


@pytest.fixture(scope="module")
def sim(sim_cm: Callable[..., AbstractContextManager[VirtualCluster]]) -> Iterator[VirtualCluster]:
    with sim_cm(NAME, 3, light=True) as vc:
        yield vc


def discover(path: Path, *args: str) -> tuple[list[dict[str, Any]], str]:
    """One `discover --json` round: its rows, and what it said on stderr."""
    proc = subprocess.run(
        [PIHERD, "discover", "-f", str(path), "--json", *args],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])["rows"], proc.stderr


def macs(vc: VirtualCluster) -> dict[str, str]:
    names = vc.state.names
    return {node: names.mac(i) for i, node in enumerate(vc.node_names())}


def test_every_node_found_by_address_then_recorded_by_mac(
    sim: VirtualCluster, tmp_path: Path
) -> None:
    path = tmp_path / "cluster.toml"
    path.write_text(sim.cluster_file.read_text())
    rows, _ = discover(path)
    assert {r["node"]: (r["state"], r["mac"], r["ssh"]) for r in rows} == {
        node: ("known", mac, "open") for node, mac in macs(sim).items()
    }
    assert {r["detail"] for r in rows} == {"MAC not recorded yet"}
    _, said = discover(path, "--write")
    assert f"node02: mac = {macs(sim)['node02']}" in said
    cluster = load(path)
    assert {n.name: n.mac for n in cluster.nodes} == macs(sim)
    assert "# Virtual cluster" in path.read_text()  # the file's comments kept
    rows, said = discover(path, "--write")
    assert {(r["state"], r["detail"]) for r in rows} == {("known", "")} and said == ""


def test_another_machine_at_a_nodes_address_is_mismatched(
    sim: VirtualCluster, tmp_path: Path
) -> None:
    path = tmp_path / "cluster.toml"
    wrong = '\n[[nodes]]\nname = "node02"\nmac = "dc:a6:32:ff:ff:ff"\n'
    path.write_text(sim.cluster_file.read_text() + wrong)
    rows, _ = discover(path)
    states = {(r["state"], r["node"], r["mac"]) for r in rows}
    assert ("mismatched", None, macs(sim)["node02"]) in states
    assert ("missing", "node02", "dc:a6:32:ff:ff:ff") in states


def test_assign_names_new_pis_in_the_order_they_come_up(
    sim: VirtualCluster, tmp_path: Path
) -> None:
    """node03 and node04 are planned elsewhere, so the machines at .13 and .14 are new
    Pis; with both up none is named, then each is named as it is the only one up."""
    cluster = load(sim.cluster_file)
    base = cluster.network.subnet.network_address
    elsewhere = "".join(
        f'\n[[nodes]]\nname = "{n}"\naddress = "{base + 60 + i}"\n'
        for i, n in enumerate(("node03", "node04"))
    )
    path = tmp_path / "cluster.toml"
    path.write_text(sim.cluster_file.read_text() + elsewhere)
    rows, said = discover(path, "--assign", "node[03-04]", "--write")
    assert sorted(r["mac"] for r in rows if r["state"] == "new") == [
        macs(sim)["node03"], macs(sim)["node04"]
    ]  # fmt: skip
    assert "2 unnamed Pis are up" in said and load(path).node("node03").mac is None
    asyncio.run(sim.kill("node04"))
    try:
        rows, said = discover(path, "--assign", "node[03-04]", "--write")
        assert f"node03: {macs(sim)['node03']}" in said
    finally:
        asyncio.run(sim.revive("node04"))
    rows, said = discover(path, "--assign", "node04", "--write")
    assert f"node04: {macs(sim)['node04']}" in said
    named = load(path)
    for node, index in (("node03", 13), ("node04", 14)):
        address = str(base + index)
        assert (named.node(node).mac, named.node(node).bootstrap_address) == (
            macs(sim)[node], address
        )  # fmt: skip


def test_watch_prints_a_round_per_interval_until_ctrl_c(sim: VirtualCluster) -> None:
    proc = subprocess.Popen(
        [PIHERD, "discover", "-f", str(sim.cluster_file), "--watch", "--json", "--interval", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        time.sleep(3.5)
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "Traceback" not in err, err
    rounds = [json.loads(line) for line in out.splitlines()]
    assert len(rounds) >= 2 and all(len(r["rows"]) == 4 for r in rounds)
