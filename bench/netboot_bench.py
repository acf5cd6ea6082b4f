"""What network boot costs on VM nodes (`sim up --vm --netboot`): build, boot, up, reset.

    sudo .venv/bin/python bench/netboot_bench.py [--write-docs]

One run of the steps docs/netboot.md gives a user, each timed: `piherd up` of the
head, `piherd netboot build` (the head's system copied into the shared root, the
worker's TFTP directory), the worker's boot from the network (the build's end until
its sshd answers: iPXE, TFTP, the NFS root), `piherd up` of the worker (its own host
keys, its files in its memory layer), its QEMU's PSS, then `piherd reset` of the worker
(drain, reboot, boot, up, gate, resume). The cluster is taken down at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

from docs_table import update_table_section  # bench/: run as `python bench/X.py`
from piherd_cli import piherd
from vm_bench import pss_mib

from piherd.sim.virtual_cluster import VirtualCluster

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "benchmarks.md"
SECTION = "## Network boot (sim --vm --netboot)"
HEAD, WORKER = "node01", "node02"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--name", default="bnb")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    load = Path("/proc/loadavg").read_text().split()[0]
    state_dir = Path(f"/var/lib/piherd/sim/{args.name}")
    cluster = str(state_dir / "cluster.toml")
    times: dict[str, float] = {}

    def timed(step: str, *argv: str) -> None:
        started = time.monotonic()
        piherd(*argv, "-f", cluster)
        times[step] = time.monotonic() - started

    try:
        piherd("sim", "up", "--vm", "--netboot", "--name", args.name, "--workers", "1")
        timed("up_head", "up", HEAD)
        timed("build", "netboot", "build")
        started = time.monotonic()
        asyncio.run(VirtualCluster.attach(args.name).wait_reachable([WORKER], timeout=900))
        times["boot"] = time.monotonic() - started
        timed("up_worker", "up")
        pss = pss_mib(state_dir)[1]
        timed("reset", "reset", WORKER)
    finally:
        piherd("sim", "down", "--name", args.name)
    result = {"load": load, **times, "pss_worker_mib": pss}
    print(json.dumps(result))
    if not args.write_docs:
        return
    row = (
        f"| head + 1 netbooted | {times['up_head']:.0f} | {times['build']:.0f} "
        f"| {times['boot']:.0f} | {times['up_worker']:.0f} | {times['reset']:.0f} "
        f"| {pss:.0f} | {load} |"
    )
    intro = [
        "The steps of docs/netboot.md on VM nodes (QEMU software emulation, 1 vCPU and",
        "512 MiB each; seconds). `up head`: `piherd up node01` (dnsmasq, TFTP, the NFS",
        "export). `build`: `piherd netboot build` (the head's system rsynced into the shared",
        "root, inside the head VM). `boot`: from the build's end until the worker's sshd",
        "answers (iPXE retries, TFTP, the initramfs mounts the NFS root). `up worker`: its",
        "own host keys and files. `reset`: drain, reboot, boot, up, health gate, resume.",
        "PSS: the netbooted worker's QEMU after `up` (MiB; its writes live in its memory).",
    ]
    header = (
        "| what | up head s | build s | boot s | up worker s | reset s | PSS worker "
        "| load at start | command |"
    )
    command = "sudo .venv/bin/python bench/netboot_bench.py"
    update_table_section(DOCS, SECTION, intro, header, [row], command)


if __name__ == "__main__":
    main()
