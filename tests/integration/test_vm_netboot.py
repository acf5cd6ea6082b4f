"""A worker with no disk boots from the head, takes a job, and `piherd reset` brings it
back clean (seed 003's "identical nodes, reset in one command"), on VM nodes.

The sim "tnb" has a head VM with a disk and one VM worker with none (`sim up --vm
--netboot`): its NIC's iPXE asks the LAN for a boot offer every few seconds. The steps
are the ones docs/netboot.md gives a user: `piherd up` of the head (dnsmasq as a proxy
beside the sim's home router, TFTP, the NFS export), `piherd netboot build` (the shared
root, copied from the head, and the worker's TFTP directory), then the worker boots
(iPXE -> per-serial boot.ipxe -> Debian's kernel and initramfs -> NFS root read-only ->
piherd-overlay-init's tmpfs layer), `piherd up` gives it its own host keys and its
files, slurmd runs, `srun` lands a job there. A file written in its layer is gone after
`piherd reset`, and the node is back idle in Slurm.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import pytest
from test_dashboard_browser import piherd
from test_vm_sim import on

from piherd.sim.virtual_cluster import VirtualCluster

pytestmark = [pytest.mark.sim, pytest.mark.root, pytest.mark.vm]

NAME = "tnb"
HEAD, WORKER = "node01", "node02"


@pytest.fixture(scope="module")
def nb(
    sim_cm: Callable[..., AbstractContextManager[VirtualCluster]],
) -> Iterator[VirtualCluster]:
    with sim_cm(NAME, 1, vm=True, netboot=True) as vc:
        yield vc


def run_piherd(vc: VirtualCluster, *args: str, timeout: float = 1500) -> str:
    result = subprocess.run(
        [piherd(), *args, "-f", str(vc.cluster_file)],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    tail = result.stdout[-3000:] + result.stderr[-2000:]
    assert result.returncode == 0, f"piherd {' '.join(args)}: {tail}"
    return result.stdout


def test_a_worker_with_no_disk_boots_from_the_head_and_takes_a_job(nb: VirtualCluster) -> None:
    run_piherd(nb, "up", HEAD)
    assert "/srv/netboot/root" in on(nb, HEAD, "sudo exportfs -v")
    built = run_piherd(nb, "netboot", "build")
    assert "in place" in built
    asyncio.run(nb.wait_reachable([WORKER], timeout=600))
    run_piherd(nb, "up")
    # Its root is the head's, read-only over NFS, under a layer in memory.
    assert on(nb, WORKER, "findmnt -n -o FSTYPE /") == "overlay"
    shared = on(nb, WORKER, "findmnt -n -o SOURCE,FSTYPE,OPTIONS /run/piherd-shared-root")
    assert shared.startswith(f"{nb.state.names.address(0)}:/srv/netboot/root nfs ")
    assert " ro," in f" {shared.split()[2]},"
    # Its own host key, not the shared root's first-boot one (the ssh above verified it).
    assert on(nb, WORKER, "hostname") == WORKER
    assert on(nb, WORKER, "systemctl is-active slurmd") == "active"
    assert on(nb, HEAD, f"srun -N1 -w {WORKER} hostname", timeout=300) == WORKER


def test_reset_brings_the_worker_back_clean_and_idle(nb: VirtualCluster) -> None:
    on(nb, WORKER, "echo dirty | sudo tee /etc/piherd-dirty && echo dirty > /tmp/dirty")
    boot = on(nb, WORKER, "cat /proc/sys/kernel/random/boot_id")
    out = run_piherd(nb, "reset", WORKER, "--reboot-timeout", "600")
    assert "1 reset" in out
    assert on(nb, WORKER, "cat /proc/sys/kernel/random/boot_id") != boot
    assert on(nb, WORKER, "ls /etc/piherd-dirty /tmp/dirty 2>&1 || true").count("No such") == 2
    assert on(nb, HEAD, f"sinfo -h -n {WORKER} -o %t") == "idle"
    assert on(nb, HEAD, f"srun -N1 -w {WORKER} hostname", timeout=300) == WORKER
