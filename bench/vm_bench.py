"""What a VM node costs (`sim up --vm`): image build, boot to SSH, memory, `piherd up`.

    sudo .venv/bin/python bench/vm_bench.py --workers 2 [--rebuild] [--write-docs]

One run: the VM image (built when missing, or with --rebuild: timed), `sim up --vm`
(every node booted at once until sshd answers), each QEMU's proportional set size
(PSS, /proc/PID/smaps_rollup) once booted, `piherd up` (NFS storage, Slurm, MPI: files
and units, the packages being in the image), and each QEMU's PSS after it. The cluster
is taken down at the end. Software emulation (TCG): KVM is not usable on this machine
kind (../shared/notes/vm-nodes.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import time
from pathlib import Path

from docs_table import update_table_section  # bench/: run as `python bench/X.py`
from piherd_cli import piherd

from piherd.sim.vm_image import ensure_vm_image, vm_image_path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "benchmarks.md"
SECTION = "## VM nodes (sim --vm)"


def pss_mib(state_dir: Path) -> list[float]:
    """PSS of every node's QEMU, in MiB."""
    found = []
    for pidfile in sorted(state_dir.glob("nodes/*/child.pid")):
        pid = pidfile.read_text().strip()
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                found.append(int(line.split()[1]) / 1024)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--name", default="bvm")
    parser.add_argument("--rebuild", action="store_true", help="time a fresh image build")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    load = Path("/proc/loadavg").read_text().split()[0]
    if args.rebuild:
        shutil.rmtree(vm_image_path(), ignore_errors=True)
    t = time.monotonic()
    asyncio.run(ensure_vm_image())
    times = {"image": time.monotonic() - t}
    state_dir = Path(f"/var/lib/piherd/sim/{args.name}")
    try:
        t = time.monotonic()
        piherd("sim", "up", "--vm", "--name", args.name, "--workers", str(args.workers))
        times["boot"] = time.monotonic() - t
        booted = pss_mib(state_dir)
        t = time.monotonic()
        piherd("up", "-f", str(state_dir / "cluster.toml"), "--json")
        times["up"] = time.monotonic() - t
        after = pss_mib(state_dir)
    finally:
        piherd("sim", "down", "--name", args.name)
    result = {
        "workers": args.workers, "load": load, **times,
        "pss_booted_mib": statistics.median(booted), "pss_after_up_mib": statistics.median(after),
    }  # fmt: skip
    print(json.dumps(result))
    if not args.write_docs:
        return
    image = f"{times['image']:.0f}" + (" (fresh)" if args.rebuild else " (cached)")
    row = (
        f"| head + {args.workers} | {image} | {times['boot']:.0f} | {times['up']:.0f} "
        f"| {result['pss_booted_mib']:.0f} | {result['pss_after_up_mib']:.0f} | {load} |"
    )
    intro = [
        "What a VM node costs on this 2-core machine (QEMU software emulation, 1 vCPU and",
        "512 MiB each). `image`: building the VM image from the full nodes' base (seconds;",
        "once per recipe). `boot`: `sim up --vm` until every node's sshd answers, all nodes",
        "at once. `up`: `piherd up` of the VM cluster (NFS storage, Slurm, MPI). PSS: median",
        "memory of one node's QEMU, once booted and after `up` (MiB).",
    ]
    header = (
        "| what | image s | boot s | up s | PSS booted | PSS after up | load at start | command |"
    )
    command = f"sudo .venv/bin/python bench/vm_bench.py --workers {args.workers}"
    update_table_section(DOCS, SECTION, intro, header, [row], command)


if __name__ == "__main__":
    main()
