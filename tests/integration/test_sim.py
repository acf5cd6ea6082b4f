"""piherd sim end to end: a head + 2 full nodes (systemd containers) reached over real
SSH with verified host keys, and a few light nodes. One module-scoped cluster "tsim";
tests that dirty a node reset or revive it in `finally`."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from piherd.services import load
from piherd.sim.leftovers import leftovers
from piherd.sim.names import STATE_ROOT
from piherd.sim.virtual_cluster import VirtualCluster

SimCM = Callable[..., AbstractContextManager[VirtualCluster]]

pytestmark = pytest.mark.sim


@pytest.fixture(scope="module")
def vc(sim_cm: SimCM) -> Iterator[VirtualCluster]:
    with sim_cm("tsim", 2) as cluster:
        yield cluster


def ssh(
    vc: VirtualCluster, node: str, command: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ssh", "-F", str(vc.files.ssh_config), node, command],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def ok(vc: VirtualCluster, node: str, command: str, timeout: float = 60) -> str:
    done = ssh(vc, node, command, timeout)
    assert done.returncode == 0, f"{node}: {command}: {done.stderr}"
    return done.stdout


def until_ssh(vc: VirtualCluster, node: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while ssh(vc, node, "true", 15).returncode != 0:
        assert time.monotonic() < deadline, f"{node} not back over SSH"
        time.sleep(1)


def test_each_node_has_its_own_name_and_address(vc: VirtualCluster) -> None:
    cluster = load(vc.cluster_file)
    assert [n.name for n in cluster.nodes] == ["node01", "node02", "node03"]
    seen = set()
    for node in cluster.nodes:
        out = ok(vc, node.name, "hostname; ip -4 -o addr show host0; id -un; sudo -n id -un")
        lines = out.split("\n")
        assert lines[0] == node.name
        assert f"inet {node.bootstrap_address}/" in lines[1]
        assert lines[2:4] == ["pi", "root"]
        seen.add(node.bootstrap_address)
    assert len(seen) == 3


def test_nodes_have_no_route_off_the_machine(vc: VirtualCluster) -> None:
    routes = ok(vc, "node02", "ip -4 route")
    assert "default" not in routes


def test_nodes_reach_each_other_over_the_switch(vc: VirtualCluster) -> None:
    head = load(vc.cluster_file).head.bootstrap_address
    banner = ok(vc, "node03", f"timeout 10 bash -c 'exec 3<>/dev/tcp/{head}/22; head -1 <&3'")
    assert banner.startswith("SSH-2.0")


def test_a_file_on_one_node_is_not_on_another(vc: VirtualCluster) -> None:
    ok(vc, "node02", "echo written-on-node02 > marker")
    assert ok(vc, "node02", "cat marker").strip() == "written-on-node02"
    assert ssh(vc, "node03", "test -e marker").returncode == 1


def test_reset_restores_the_pristine_card(vc: VirtualCluster) -> None:
    pristine = ok(vc, "node03", "cat /etc/issue")
    machine_id = ok(vc, "node02", "cat /etc/machine-id")
    # An address the node gave itself (as `piherd up` moves it to a static one).
    static = load(vc.cluster_file).node("node02").address
    try:
        ok(vc, "node02", "echo dirty | sudo tee /etc/issue >/dev/null; touch dirt")
        assert ok(vc, "node02", "cat /etc/issue") == "dirty\n"
        ok(vc, "node02", f"sudo ip addr add {static}/24 dev host0")
    finally:
        asyncio.run(vc.reset("node02"))
    # The NIC forgot it: the fresh node answers at its DHCP lease only.
    assert f"inet {static}/" not in ok(vc, "node02", "ip -4 -o addr show host0")
    # Same host keys (StrictHostKeyChecking passes), same identity, clean card.
    assert ok(vc, "node02", "cat /etc/issue") == pristine
    assert ssh(vc, "node02", "test -e dirt").returncode == 1
    assert ok(vc, "node02", "cat /etc/machine-id") == machine_id
    assert ok(vc, "node02", "hostname").strip() == "node02"


def test_machine_ids_differ(vc: VirtualCluster) -> None:
    ids = {ok(vc, n, "cat /etc/machine-id") for n in vc.node_names()}
    assert len(ids) == 3


def tcp_answer(vc: VirtualCluster, node: str) -> str:
    """What a TCP connection to the node's SSH port meets: connected, refused or silent."""
    address = next(n.reach for n in vc.sim_nodes() if n.name == node)
    try:
        socket.create_connection((address, 22), timeout=2).close()
    except ConnectionRefusedError:
        return "refused"
    except OSError:
        return "silent"
    return "connected"


def test_kill_cuts_power_and_revive_boots_again(vc: VirtualCluster) -> None:
    try:
        asyncio.run(vc.kill("node03"))
        assert ssh(vc, "node03", "true", 20).returncode != 0
        # Dark like an unplugged Pi: not even a TCP reset from its address (the watch
        # tells a dead node from a slow one by that).
        assert tcp_answer(vc, "node03") == "silent"
        assert not any(r["running"] for r in vc.status() if r["node"] == "node03")
    finally:
        asyncio.run(vc.revive("node03"))
    until_ssh(vc, "node03")
    assert ok(vc, "node03", "hostname").strip() == "node03"


def test_partition_and_heal(vc: VirtualCluster) -> None:
    try:
        asyncio.run(vc.partition("node02"))
        assert ssh(vc, "node02", "true", 20).returncode != 0
        # The other nodes still talk to each other.
        assert ssh(vc, "node03", "true").returncode == 0
    finally:
        asyncio.run(vc.heal("node02"))
    until_ssh(vc, "node02")


def test_undervoltage_shows_through_the_pi_paths(vc: VirtualCluster) -> None:
    script = (
        "for d in /sys/class/hwmon/hwmon*; do "
        '[ "$(cat $d/name)" = rpi_volt ] && cat $d/in0_lcrit_alarm; done; '
        "vcgencmd get_throttled; cat /sys/class/thermal/thermal_zone0/temp"
    )
    try:
        vc.inject("node02", "undervoltage")
        alarm, throttled, temp = ok(vc, "node02", script).split()
        assert alarm == "1"
        assert int(throttled.split("=")[1], 16) & 0x1
        vc.inject("node02", "overtemp")
        _, throttled, temp = ok(vc, "node02", script).split()
        assert int(temp) >= 85000 and int(throttled.split("=")[1], 16) & 0x8
        # Other nodes are unaffected.
        assert ok(vc, "node03", script).split()[0] == "0"
    finally:
        vc.inject("node02", "clear")
    alarm, throttled, temp = ok(vc, "node02", script).split()
    assert alarm == "0" and int(temp) < 80000
    assert int(throttled.split("=")[1], 16) & 0xF == 0  # only "since boot" bits remain


def test_leds_are_writable_like_on_a_pi(vc: VirtualCluster) -> None:
    out = ok(
        vc,
        "node02",
        "echo none | sudo tee /sys/class/leds/ACT/trigger >/dev/null; "
        "echo 1 | sudo tee /sys/class/leds/ACT/brightness >/dev/null; "
        "cat /sys/class/leds/ACT/brightness",
    )
    assert out.strip() == "1"
    assert (vc.state.node_dir("node02") / "pi/class/leds/ACT/trigger").read_text() == "none\n"


def test_the_real_sys_class_entries_remain(vc: VirtualCluster) -> None:
    assert "host0" in ok(vc, "node02", "ls /sys/class/net").split()


def test_fuse_and_cgroup_v1_mounts_work_inside(vc: VirtualCluster) -> None:
    ok(vc, "node02", "test -c /dev/fuse && sudo sh -c 'exec 3<>/dev/fuse'")
    out = ok(
        vc,
        "node02",
        "sudo mkdir -p /run/t-freezer && sudo mount -t cgroup -o freezer cgroup /run/t-freezer"
        " && cat /run/t-freezer/cgroup.procs | head -1; sudo umount /run/t-freezer",
    )
    assert re.match(r"^\d+$", out.strip())


def test_apt_installs_through_the_sims_cache(vc: VirtualCluster) -> None:
    ok(vc, "node03", "sudo apt-get -q update && sudo apt-get -qy install chrony", timeout=600)
    assert "chronyd" in ok(vc, "node03", "ls /usr/sbin")
    asyncio.run(vc.reset("node03"))


def test_light_nodes(sim_cm: SimCM) -> None:
    with sim_cm("tsiml", 3, light=True) as light:
        cluster = load(light.cluster_file)
        for node in cluster.nodes:
            out = ok(light, node.name, "hostname; ip -4 -o addr show eth0")
            name, addr = out.split("\n", 1)
            assert name == node.name and f"inet {node.address}/" in addr
        asyncio.run(light.kill("node02"))
        assert ssh(light, "node02", "true", 15).returncode != 0
        assert tcp_answer(light, "node02") == "silent"
        asyncio.run(light.revive("node02"))
        assert ok(light, "node02", "hostname").strip() == "node02"
        # No ARP broadcast from a node to reach this machine (1,024 of them flood the
        # switch): the router's entry is permanent, before a power cut and after it.
        names = light.state.names
        assert Path(f"/sys/class/net/{names.bridge}/address").read_text().strip() == (
            names.router_mac
        )
        for node in ("node02", "node03"):
            neighbours = subprocess.run(
                ["ip", "-n", names.netns(node), "neigh", "show", str(names.gateway)],
                capture_output=True, text=True, check=True,
            ).stdout.split()  # fmt: skip
            assert neighbours[-2:] == [names.router_mac, "PERMANENT"], (node, neighbours)
        # `sim up --workers 4` on the running 3-worker cluster adds node05, idempotently.
        bigger = VirtualCluster("tsiml", 4, light=True)
        for _ in range(2):
            asyncio.run(bigger.up())
        assert [n.name for n in load(light.cluster_file).nodes][-1] == "node05"
        assert ok(light, "node05", "hostname").strip() == "node05"
    assert leftovers("tsiml") == []


def test_ctrl_c_during_sim_up_says_how_to_go_on(sim_names: set[str]) -> None:
    sim_names.add("tsimc")  # the session-end leftovers check looks at it
    piherd = str(Path(sys.executable).parent / "piherd")
    sim_up = [piherd, "sim", "up", "--name", "tsimc", "--workers", "60", "--light"]
    try:
        proc = subprocess.Popen(
            sim_up,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        nodes = STATE_ROOT / "tsimc" / "nodes"
        deadline = time.monotonic() + 120
        while not (nodes.is_dir() and any(nodes.iterdir())):  # nodes are being made
            assert proc.poll() is None and time.monotonic() < deadline, "no node made"
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 130, err
        assert "interrupted (Ctrl-C)" in err and "Traceback" not in err, err
        again = subprocess.run(sim_up, capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stderr
        assert len(load(Path(again.stdout.splitlines()[-1])).nodes) == 61
    finally:
        subprocess.run([piherd, "sim", "down", "--name", "tsimc"], capture_output=True, timeout=120)
    assert leftovers("tsimc") == []
