"""Pure parts of piherd sim: resource names, the cluster file it writes, Pi signals."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from piherd.services import loads
from piherd.services.package_cache import PackageCacheSettings
from piherd.services.slurm import SlurmSettings
from piherd.services.storage import StorageSettings
from piherd.services.time import TimeSettings
from piherd.sim import pisys
from piherd.sim.clusterfile import (
    CGROUP_V1_MOUNTPOINT,
    SimFiles,
    SimNode,
    render_cluster,
    render_known_hosts,
    render_ssh_config,
)
from piherd.sim.names import (
    NAME_RE,
    SimNames,
    check_name,
    node_name,
    pick_subnet,
    short_name,
)

FILES = SimFiles(
    Path("/s/id_ed25519"), Path("/s/id_ed25519.pub"), Path("/s/ssh_config"), Path("/s/known_hosts")
)


def nodes(names: SimNames, count: int, light: bool) -> list[SimNode]:
    return [
        SimNode(
            i,
            node_name(i, count),
            str(names.address(i)),
            str(names.address(i) if light else names.dhcp_address(i)),
            (f"ssh-ed25519 KEY{i}",),
        )
        for i in range(count)
    ]


@pytest.mark.parametrize("name", ["tsim", "tsiml", "a-very-long-cluster-name"])
def test_link_names_fit_linux_limits(name: str) -> None:
    names = SimNames(name, pick_subnet(name, 300))
    assert len(names.bridge) <= 15
    assert len(names.veth(9999)) <= 15
    assert names.veth(1).startswith(names.veth_prefix)
    assert not names.bridge.startswith(names.veth_prefix)


def test_short_names_of_distinct_long_clusters_differ() -> None:
    assert short_name("cluster-a1") != short_name("cluster-b1")
    assert short_name("tsim") == "tsim"


def test_bad_cluster_names_are_refused() -> None:
    for bad in ("", "Tsim", "1abc", "a/b", "x" * 40):
        with pytest.raises(ValueError, match="not usable"):
            check_name(bad)


def test_subnet_is_private_per_name_and_grows_for_big_clusters() -> None:
    small, big = pick_subnet("tsim", 3), pick_subnet("tsim", 300)
    assert small.is_private and small.prefixlen == 24
    assert big.prefixlen == 23 and small.network_address == big.network_address
    # 1,024 nodes from .11 on do not fit a /22 (1,022 hosts): a /21 it is.
    for count in (244, 245, 1012, 1013, 1024, 2036, 10_000):
        subnet = pick_subnet("tsim", count)
        last = SimNames("tsim", subnet).address(count - 1)
        assert last in subnet and last < subnet.broadcast_address, count
        assert subnet.prefixlen == {244: 24, 245: 23, 1012: 22, 1013: 21, 1024: 21,
                                    2036: 21, 10_000: 18}[count]  # fmt: skip
    assert pick_subnet("tsim", 3) != pick_subnet("tsiml", 3)
    names = SimNames("tsim", big)
    assert names.address(299) in big


def test_macs_are_pi_macs_and_unique() -> None:
    names = SimNames("tsim", IPv4Network("10.201.4.0/24"))
    macs = {names.mac(i) for i in range(300)}
    assert len(macs) == 300
    assert all(m.startswith("dc:a6:32:") for m in macs)


def test_full_cluster_file_is_valid_and_says_how_to_reach_nodes() -> None:
    names = SimNames("tsim", IPv4Network("10.201.4.0/24"))
    text = render_cluster(names, nodes(names, 3, light=False), FILES, light=False)
    cluster = loads(text)
    assert [n.name for n in cluster.nodes] == ["node01", "node02", "node03"]
    assert cluster.head.name == "node01"
    assert cluster.nodes[1].address == IPv4Address("10.201.4.12")
    assert cluster.nodes[1].bootstrap_address == "10.201.4.101"
    assert cluster.nodes[0].interface == "host0"
    assert cluster.admin_user == "pi" and cluster.domain == "sim.lan"
    assert cluster.network.gateway == IPv4Address("10.201.4.1")
    assert cluster.services.get(StorageSettings).kind == "sshfs"
    assert cluster.services.get(TimeSettings).container is True
    assert cluster.services.get(SlurmSettings).cgroup_mountpoint == CGROUP_V1_MOUNTPOINT
    assert cluster.services.get(PackageCacheSettings).enabled is False
    assert cluster.ssh_config == FILES.ssh_config and cluster.known_hosts == FILES.known_hosts


def test_light_cluster_file_of_256_nodes_is_valid() -> None:
    names = SimNames("tsiml", pick_subnet("tsiml", 256))
    cluster = loads(render_cluster(names, nodes(names, 256, light=True), FILES, light=True))
    assert len(cluster.nodes) == 256 and cluster.nodes[-1].name == "node256"
    assert cluster.admin_user == "root"
    assert all(n.bootstrap_address is None for n in cluster.nodes)


def test_ssh_config_verifies_host_keys_with_the_sims_files() -> None:
    names = SimNames("tsim", IPv4Network("10.201.4.0/24"))
    config = render_ssh_config(nodes(names, 2, light=False), FILES, "pi")
    assert "StrictHostKeyChecking yes" in config
    assert "StrictHostKeyChecking no" not in config
    assert f"UserKnownHostsFile {FILES.known_hosts}" in config
    assert f"IdentityFile {FILES.private_key}" in config
    assert (
        "Host node02 node02.sim.lan\n    HostName 10.201.4.101\n    HostKeyAlias node02" in config
    )


def test_known_hosts_names_every_address_of_a_node() -> None:
    names = SimNames("tsim", IPv4Network("10.201.4.0/24"))
    lines = render_known_hosts(nodes(names, 2, light=False)).splitlines()
    assert lines[1] == "node02,node02.sim.lan,10.201.4.12,10.201.4.101 ssh-ed25519 KEY1"


def test_injections_change_the_pi_paths(tmp_path: Path) -> None:
    pisys.seed(tmp_path)
    temp = tmp_path / "class/thermal/thermal_zone0/temp"
    alarm = tmp_path / "class/hwmon/hwmon0/in0_lcrit_alarm"
    throttled = tmp_path / "firmware/get_throttled"
    assert (tmp_path / "class/hwmon/hwmon0/name").read_text() == "rpi_volt\n"
    pisys.inject(tmp_path, "undervoltage")
    assert alarm.read_text() == "1\n" and int(throttled.read_text(), 16) & 1
    pisys.inject(tmp_path, "overtemp")
    assert int(temp.read_text()) >= 85000 and alarm.read_text() == "1\n"  # both now
    pisys.inject(tmp_path, "clear")
    # Like the firmware: "has occurred since boot" bits stay set, "now" bits clear.
    assert int(throttled.read_text(), 16) == 0x50000 | 0xE0000
    assert int(temp.read_text()) == pisys.IDLE_TEMP_MC
    with pytest.raises(ValueError, match="unknown injection"):
        pisys.inject(tmp_path, "fire")


@pytest.mark.parametrize("order", [("overtemp", "undervoltage"), ("undervoltage", "overtemp")])
def test_one_injection_keeps_the_other(tmp_path: Path, order: tuple[str, str]) -> None:
    """Under-voltage on a hot node keeps it hot (and vice versa): only `clear` ends both."""
    pisys.seed(tmp_path)
    for kind in order:
        pisys.inject(tmp_path, kind)
    signals = pisys.read_signals(tmp_path)
    assert int(signals["temp_mc"]) == pisys.HOT_TEMP_MC and signals["undervoltage"] == "1"
    assert int(signals["throttled"], 16) == pisys.UNDERVOLTAGE | pisys.OVERTEMP


def test_a_resize_that_renames_nodes_or_leaves_the_subnet_is_refused() -> None:
    from piherd.sim.proc import SimError
    from piherd.sim.state_file import SimState
    from piherd.sim.virtual_cluster import _check_resize

    def state(workers: int, subnet: str = "10.236.40.0/24") -> SimState:
        return SimState("hfan", True, workers, subnet, "/tmp/hfan")

    _check_resize(state(63), state(98))  # node01-node64 -> node01-node99: same names
    _check_resize(state(98), state(3))
    with pytest.raises(SimError, match="renames every node"):
        _check_resize(state(63), state(255, "10.236.40.0/22"))
    with pytest.raises(SimError, match=r"does not fit its subnet 10.236.40.0/26.*sim down"):
        _check_resize(state(10, "10.236.40.0/26"), state(60, "10.236.40.0/26"))


def test_big_clusters_get_stacked_switches_named_apart() -> None:
    """A bridge takes 1,023 ports: node 1,000 on goes to a second switch, with an uplink."""
    names = SimNames("scl", pick_subnet("scl", 1024))
    assert names.switch(0) == names.switch(999) == "ph-scl"
    assert names.switch(1000) == names.switch(1023) == "ph_scl_s1"
    assert names.uplink(1) == ("ph_scl_u1", "ph_scl_d1")
    long = SimNames("a-much-longer-name", IPv4Network("10.200.0.0/16"))
    assert max(len(long.switch(9999)), *map(len, long.uplink(9))) <= 15  # IFNAMSIZ - 1
    # No other cluster's links start like these ("_" is in no cluster name).
    assert not NAME_RE.fullmatch("scl_s1")


def test_blank_cluster_file_lists_names_and_macs_not_keys() -> None:
    names = SimNames("tblk", IPv4Network("10.201.5.0/24"))
    blank = [
        SimNode(n.index, n.name, n.address, n.reach, (), names.mac(n.index))
        for n in nodes(names, 3, light=False)
    ]
    cluster = loads(render_cluster(names, blank, FILES, light=False, blank=True))
    assert [(n.name, n.mac, n.bootstrap_address) for n in cluster.nodes] == [
        (node_name(i, 3), names.mac(i), None) for i in range(3)
    ]
    assert render_ssh_config([], FILES, "pi").count("Host ") == 1  # only `Host *`
