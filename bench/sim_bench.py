"""Benchmark `piherd sim`; write the "## piherd sim" section of docs/benchmarks.md.

    .venv/bin/python bench/sim_bench.py full --workers 4     # head + 4 full nodes
    .venv/bin/python bench/sim_bench.py full --workers 16
    .venv/bin/python bench/sim_bench.py light --workers 255  # 256 light nodes
    add --write-docs to record the rows in docs/benchmarks.md

Measures: time from `up()` to every node answering SSH (base image already cached),
PSS per idle node (every process of the node: sshd for light nodes; nspawn, systemd
and all services for full ones, after 20 s of idling), and the time `down()` takes.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

from docs_table import update_table_section  # bench/: run as `python bench/X.py`

from piherd.sim.full import hierarchies
from piherd.sim.image import ensure_base
from piherd.sim.leftovers import leftovers
from piherd.sim.proc import read_pid
from piherd.sim.virtual_cluster import VirtualCluster

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "benchmarks.md"
SECTION = "## piherd sim"


def pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def node_pids(vc: VirtualCluster, node: str) -> set[int]:
    node_dir = vc.state.node_dir(node)
    pids = {p for f in ("wrapper.pid", "child.pid") if (p := read_pid(node_dir / f))}
    if not vc.state.light:
        unified = next((h for h in hierarchies() if h.name == "unified"), None)
        if unified is not None:
            for procs in (unified / vc.state.names.cgroup / node).rglob("cgroup.procs"):
                pids |= {int(p) for p in procs.read_text().split()}
    return pids


def mean_pss_mib(vc: VirtualCluster) -> float:
    nodes = vc.node_names()
    total = sum(pss_kib(pid) for node in nodes for pid in node_pids(vc, node))
    return total / len(nodes) / 1024


async def measure(name: str, workers: int, light: bool) -> tuple[float, float, float]:
    if not light:
        await ensure_base()
    vc = VirtualCluster(name, workers, light=light)
    try:
        start = time.monotonic()
        await vc.up()
        up_s = time.monotonic() - start
        await asyncio.sleep(5 if light else 20)  # let boot-time services settle
        pss = mean_pss_mib(vc)
    finally:
        start = time.monotonic()
        await vc.down()
        down_s = time.monotonic() - start
    left = leftovers(name)
    if left:
        sys.exit(f"leftovers after down: {left}")
    return up_s, pss, down_s


def write_docs(rows: list[str], command: str) -> None:
    intro = [
        "up = `VirtualCluster.up()` until every node answers SSH (base image cached);",
        "PSS = all processes of a node, idle, averaged over the nodes;",
        "targets: head+4 <= 60 s, head+16 <= 90 s, full node <= 40 MiB, down <= 10 s,",
        "256 light nodes <= 60 s and <= 8 MiB each. Times vary several-fold with the",
        "load other work puts on the machine (load averages 15-160 during these runs).",
    ]
    update_table_section(
        DOCS, SECTION, intro, "| what | up s | PSS MiB/node | down s | command |", rows, command
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("kind", choices=("full", "light"))
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--name", default="simbench")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    light = args.kind == "light"
    up_s, pss, down_s = asyncio.run(measure(args.name, args.workers, light))
    what = f"{args.kind} head+{args.workers}" if not light else f"light x{args.workers + 1}"
    row = f"| {what} | {up_s:.1f} | {pss:.1f} | {down_s:.1f} |"
    print(row)
    if args.write_docs:
        command = f"python bench/sim_bench.py {args.kind} --workers {args.workers}"
        write_docs([row], command)


if __name__ == "__main__":
    main()
