"""VM nodes (`sim up --vm`): QEMU machines with their own kernel, so NFS storage runs for real.

A head and two workers ("tvm"), `piherd up` with the sim's VM cluster file (storage
kind = "nfs": the head exports /srv/cluster with the kernel NFS server, the workers
mount it through a systemd automount). Then what a power cut of the head must not
break: a worker rebooted while the head is down finishes its boot, and mounts the
share once the head is back. The first time piherd's NFS path ran; it found that
piherd reloaded Debian's alias nfs-kernel-server.service (unknown to systemd's unit
lists), so a changed /etc/exports was never exported.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import pytest
from test_dashboard_browser import piherd

from piherd.sim.virtual_cluster import VirtualCluster

pytestmark = [pytest.mark.sim, pytest.mark.root, pytest.mark.vm]

NAME = "tvm"
HEAD, WRITER, READER = "node01", "node02", "node03"


@pytest.fixture(scope="module")
def vms(
    sim_cm: Callable[..., AbstractContextManager[VirtualCluster]],
) -> Iterator[VirtualCluster]:
    with sim_cm(NAME, 2, vm=True) as vc:
        yield vc


def ssh(vc: VirtualCluster, node: str, command: str) -> list[str]:
    """`piherd ssh`: the node's current address (its lease before `up`, then its own)."""
    return [piherd(), "ssh", "-f", str(vc.cluster_file), node, "--", command]


def on(vc: VirtualCluster, node: str, command: str, timeout: float = 120) -> str:
    result = subprocess.run(
        ssh(vc, node, command), capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, f"{node}: {command}: {result.stderr}"
    return result.stdout.strip()


def sim(*args: str) -> None:
    subprocess.run([piherd(), "sim", *args, "--name", NAME], check=True, timeout=300,
                   capture_output=True)  # fmt: skip


def boot_id(vc: VirtualCluster, node: str) -> str | None:
    """The node's boot id; None while it does not answer (rebooting, powered off)."""
    try:
        result = subprocess.run(
            ssh(vc, node, "cat /proc/sys/kernel/random/boot_id"),
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def test_vm_nodes_run_their_own_kernel_and_up_shares_storage_over_nfs(vms: VirtualCluster) -> None:
    kernels = {on(vms, n, "uname -r") for n in vms.node_names()}
    assert len(kernels) == 1 and kernels != {
        subprocess.check_output(["uname", "-r"], text=True).strip()
    }
    result = subprocess.run(
        [piherd(), "up", "-f", str(vms.cluster_file)],
        capture_output=True, text=True, timeout=1500, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 failed" in result.stdout
    assert "/srv/cluster" in on(vms, HEAD, "sudo exportfs -v")
    on(vms, WRITER, "echo written-on-node02 > /cluster/shared.txt")
    assert on(vms, READER, "cat /cluster/shared.txt") == "written-on-node02"
    assert on(vms, HEAD, "cat /srv/cluster/shared.txt") == "written-on-node02"
    assert on(vms, READER, "findmnt -n -o FSTYPE -t nfs,nfs4 /cluster") in ("nfs", "nfs4")


def rebooted(vc: VirtualCluster, node: str, before: str | None, limit: float = 300) -> None:
    """Wait until `node` answers SSH from a boot other than `before`."""
    deadline = time.monotonic() + limit
    now = before
    while now in (before, None):
        assert time.monotonic() < deadline, f"{node} did not come back within {limit:.0f}s"
        time.sleep(3)
        now = boot_id(vc, node)


def test_the_share_comes_back_to_its_clients_after_the_head_reboots(vms: VirtualCluster) -> None:
    before = boot_id(vms, HEAD)
    subprocess.run(ssh(vms, HEAD, "sudo systemctl reboot"), timeout=30, check=False,
                   capture_output=True)  # fmt: skip
    rebooted(vms, HEAD, before)
    assert on(vms, WRITER, "cat /cluster/shared.txt", timeout=180) == "written-on-node02"
    on(vms, WRITER, "echo after-the-head-rebooted >> /cluster/shared.txt")
    assert on(vms, HEAD, "tail -1 /srv/cluster/shared.txt") == "after-the-head-rebooted"


def test_a_worker_rebooted_while_the_head_is_down_mounts_once_it_is_back(
    vms: VirtualCluster,
) -> None:
    before = boot_id(vms, READER)
    sim("kill", HEAD)
    subprocess.run(ssh(vms, READER, "sudo systemctl reboot"), timeout=30, check=False,
                   capture_output=True)  # fmt: skip
    rebooted(vms, READER, before)
    # Its boot finished with the head away: the share waits behind its automount.
    state = subprocess.run(ssh(vms, READER, "systemctl is-system-running --wait"),
                           capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert state.stdout.strip() in ("running", "degraded"), state.stdout
    assert on(vms, READER, "systemctl is-active cluster.automount") == "active"
    assert on(vms, READER, "findmnt -n -t nfs,nfs4 /cluster || echo none") == "none"
    sim("revive", HEAD)
    assert on(vms, READER, "head -1 /cluster/shared.txt", timeout=180) == "written-on-node02"
