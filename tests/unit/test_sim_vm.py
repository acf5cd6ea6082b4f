"""Pure parts of VM nodes: their cluster file, the packages their image holds, their wiring."""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from piherd.model.specs import RenderContext
from piherd.render.manifest import node_packages
from piherd.render.node import render_node
from piherd.services import loads, netboot
from piherd.services.storage import StorageSettings
from piherd.services.time import TimeSettings
from piherd.sim.clusterfile import SimFiles, SimNode, render_cluster
from piherd.sim.names import SimNames, node_name, pick_subnet
from piherd.sim.virtual_cluster import VirtualCluster, first_answering
from piherd.sim.vm import cable_mac, serial_of
from piherd.sim.vm_image import CLUSTER_PACKAGES, VM_PACKAGES, recipe_hash

FILES = SimFiles(
    Path("/s/id_ed25519"), Path("/s/id_ed25519.pub"), Path("/s/ssh_config"), Path("/s/known_hosts")
)


def _vm_cluster_text(workers: int = 2) -> str:
    names = SimNames("tvm", pick_subnet("tvm", workers + 1))
    count = workers + 1
    nodes = [
        SimNode(i, node_name(i, count), str(names.address(i)), str(names.dhcp_address(i)),
                (f"ssh-ed25519 KEY{i}",))
        for i in range(count)
    ]  # fmt: skip
    return render_cluster(names, nodes, FILES, light=False, vm=True)


def _netboot_cluster_text(count: int = 3) -> str:
    names = SimNames("tnb", IPv4Network("10.99.1.0/24"))
    nodes = [
        SimNode(i, node_name(i, count), str(names.address(i)), str(names.address(i)), (),
                names.mac(i), serial_of(i) if i else "")
        for i in range(count)
    ]  # fmt: skip
    return render_cluster(names, nodes, FILES, light=False, vm=True, netboot=True)


def test_a_vm_cluster_has_real_nfs_a_real_clock_and_eth0() -> None:
    cluster = loads(_vm_cluster_text())
    assert cluster.services.get(StorageSettings).kind == "nfs"
    assert not cluster.services.get(TimeSettings).container
    assert {n.interface for n in cluster.nodes} == {"eth0"}


@pytest.mark.parametrize("text", [_vm_cluster_text, _netboot_cluster_text])
def test_the_vm_image_holds_every_package_up_installs_on_its_nodes(
    text: Callable[[], str],
) -> None:
    """Otherwise `up` falls back to dpkg under emulation (minutes per node)."""
    cluster = loads(text())
    wanted = {p for node in cluster.nodes for p in node_packages(cluster, node)}
    assert wanted <= set(CLUSTER_PACKAGES) | set(VM_PACKAGES), wanted - set(CLUSTER_PACKAGES)


def test_a_netboot_sim_netboots_its_workers_through_ipxe_with_no_static_profile() -> None:
    cluster = loads(_netboot_cluster_text())
    svc = netboot.settings_of(cluster)
    assert dict(svc.node_models) == {"node02": "ipxe", "node03": "ipxe"}
    assert [n.serial for n in cluster.nodes] == [None, "5e000001", "5e000002"]
    head = netboot.render(cluster, cluster.head)
    script = head["/srv/tftp/5e000001/boot.ipxe"].content.decode()
    assert script.startswith("#!ipxe\n")
    kernel = next(line for line in script.splitlines() if line.startswith("kernel "))
    assert kernel.startswith("kernel vmlinuz console=tty0 console=ttyS0,115200 net.ifnames=0 ")
    node02 = cluster.node("node02")
    assert f"ip={node02.address}::10.99.1.1:255.255.255.0:node02:eth0:off" in kernel
    assert head["/srv/tftp/boot.ipxe"].content.decode().endswith("chain ${serial}/boot.ipxe\n")
    # The kernel owns a netbooted node's address: no NetworkManager profile to fight it.
    ctx = RenderContext(b"k" * 1024, b"private\n", "ssh-ed25519 AAAA test")
    worker = render_node(cluster, cluster.node("node02"), ctx)
    assert not any("NetworkManager" in path for path in worker)
    assert any("NetworkManager" in path for path in render_node(cluster, cluster.head, ctx))


def test_the_recipe_hash_is_stable_and_names_the_image() -> None:
    assert recipe_hash() == recipe_hash()
    assert len(recipe_hash()) == 12


@pytest.mark.parametrize(
    ("mac", "twin"),
    [("52:54:00:12:34:56", "50:54:00:12:34:56"), ("02:00:00:00:00:01", "00:00:00:00:00:01")],
)
def test_the_cables_end_never_has_the_vms_mac(mac: str, twin: str) -> None:
    assert cable_mac(mac) == twin != mac


@pytest.mark.parametrize("kind", [{"light": True}, {"blank": True}, {"release": "trixie"}])
def test_vm_nodes_are_full_bookworm_nodes(kind: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="VM nodes"):
        VirtualCluster("tvmx", 1, vm=True, **kind)  # type: ignore[arg-type]


def test_a_vm_shell_goes_to_the_address_that_answers() -> None:
    """Its lease before `up`, its own address after: whichever accepts the connection."""
    import socket

    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        assert first_answering(["127.0.0.1", "127.0.0.2"], port) == "127.0.0.1"
    assert first_answering(["127.0.0.1", "127.0.0.2"], port) == "127.0.0.2"  # closed: the other


def test_sim_status_shows_a_vm_node_without_pi_signals() -> None:
    from piherd.cli.sim import status_line

    row = {"node": "node01", "address": "10.1.2.100", "running": True, "cable": True}
    assert status_line(row).split() == ["node01", "10.1.2.100", "on", "plugged", "-", "-", "-"]
    pi = {**row, "temp_mc": "48500", "undervoltage": "0", "throttled": "0x0"}
    assert status_line(pi).split()[4:] == ["48.5", "0", "0x0"]


def test_pi_signals_cannot_be_injected_into_a_vm_node() -> None:
    with pytest.raises(ValueError, match="no Pi signals"):
        VirtualCluster("tvmx", 1, vm=True).inject("node02", "undervoltage")
