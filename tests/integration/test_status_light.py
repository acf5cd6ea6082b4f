"""`piherd status` over real SSH against light sim nodes: rows, JSON, Pi signals, power cut."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from piherd.health.collect import HealthCollector
from piherd.services import load
from piherd.sim.virtual_cluster import VirtualCluster
from piherd.transport.pool import ConnectionPool

pytestmark = pytest.mark.sim

NAME = "tstat"
WORKERS = 3


def piherd() -> str:
    """The installed piherd command of this environment."""
    command = Path(sys.executable).parent / "piherd"
    assert command.exists(), f"piherd is not installed next to {sys.executable}"
    return str(command)


@pytest.fixture(scope="module")
def sim(
    sim_cm: Callable[..., AbstractContextManager[VirtualCluster]],
) -> Iterator[tuple[VirtualCluster, Path]]:
    with sim_cm(NAME, WORKERS, light=True) as vc:
        for node in vc.node_names():  # a cluster left up by an earlier run: clean signals
            vc.inject(node, "clear")
        yield vc, vc.cluster_file


def status(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [piherd(), "status", "-f", str(path), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def by_node(result: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    data = json.loads(result.stdout)
    return {n["node"]: n for n in data["nodes"]}


def test_every_node_reachable_with_figures(sim: tuple[VirtualCluster, Path]) -> None:
    vc, path = sim
    result = status(path, "--json")
    assert result.returncode in (0, 1), result.stderr
    nodes = by_node(result)
    assert sorted(nodes) == vc.node_names()
    for name, n in nodes.items():
        assert n["reachable"] is True, (name, n["error"])
        assert n["uptime_s"] > 0 and len(n["load"]) == 3
        assert n["temperature_c"] == pytest.approx(45.0)  # the sim's idle Pi temperature
        assert n["throttling"]["source"] in ("vcgencmd", "hwmon")
        assert n["throttling"]["now"] == []
        assert n["memory_total_kb"] > 0 and n["root_use_pct"] is not None
        assert n["clock_offset_s"] is not None
    assert nodes["node01"]["role"] == "head" and nodes["node02"]["role"] == "worker"


def test_injected_signals_show(sim: tuple[VirtualCluster, Path]) -> None:
    vc, path = sim
    vc.inject("node02", "undervoltage")
    vc.inject("node03", "overtemp")
    try:
        nodes = by_node(status(path, "--json", "node[02-04]"))
        assert sorted(nodes) == ["node02", "node03", "node04"]
        assert "under-voltage" in nodes["node02"]["throttling"]["now"]
        assert "under-voltage" in nodes["node02"]["critical"]
        assert nodes["node03"]["temperature_c"] >= 80
        assert any(r.startswith("temperature ") for r in nodes["node03"]["critical"])
        assert "under-voltage" not in nodes["node04"]["critical"]
        table = status(path, "node02")
        assert table.returncode == 1  # a critical node
        assert "under-voltage" in table.stdout and "node02" in table.stdout
    finally:
        vc.inject("node02", "clear")
        vc.inject("node03", "clear")
    nodes = by_node(status(path, "--json", "node[02-03]"))
    assert "under-voltage" not in nodes["node02"]["critical"]
    assert nodes["node03"]["temperature_c"] < 75


def test_power_cut_node_is_an_unreachable_row(sim: tuple[VirtualCluster, Path]) -> None:
    vc, path = sim
    asyncio.run(vc.kill("node04"))
    try:
        result = status(path, "--json", "--timeout", "3")
        assert result.returncode == 1
        nodes = by_node(result)
        assert nodes["node04"]["reachable"] is False
        assert nodes["node04"]["critical"] == ["unreachable"]
        assert nodes["node04"]["error"]
        assert all(nodes[n]["reachable"] for n in ("node01", "node02", "node03"))
        table = status(path, "--timeout", "3")
        row = next(line for line in table.stdout.splitlines() if "node04" in line)
        assert "NO" in row and "unreachable" in row
    finally:
        asyncio.run(vc.revive("node04"))
    assert by_node(status(path, "--json", "node04"))["node04"]["reachable"] is True


def test_a_node_waiting_for_a_handshake_slot_is_not_counted_unreachable(
    sim: tuple[VirtualCluster, Path],
) -> None:
    """A round over more nodes than the pool's handshake slots: a node's deadline starts
    with its own handshake. Here one slot, held 3 s by a node that lost power, while
    the probe timeout is 1 s: the nodes queued behind it still answer."""
    vc, path = sim
    cluster = load(path)

    async def one_round() -> dict[str, bool]:
        async with ConnectionPool(cluster, connect_timeout=3, max_concurrent_connects=1) as pool:
            collector = HealthCollector(cluster, pool, timeout=1)
            snap = await collector.round(["node02", "node03", "node04"])
            return {h.node: h.reachable for h in snap.health}

    asyncio.run(vc.kill("node02"))
    try:
        reachable = asyncio.run(one_round())
    finally:
        asyncio.run(vc.revive("node02"))
    assert reachable == {"node02": False, "node03": True, "node04": True}


def test_bad_nodeset_is_exit_2(sim: tuple[VirtualCluster, Path]) -> None:
    _, path = sim
    result = status(path, "node[07-09]")
    assert result.returncode == 2
    assert "not a node of this cluster" in result.stderr and "Traceback" not in result.stderr
