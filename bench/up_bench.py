"""Benchmark `piherd up` on the sim; write the "## piherd up" section of docs/benchmarks.md.

    .venv/bin/python bench/up_bench.py first --workers 4     # first up: fresh full nodes
    .venv/bin/python bench/up_bench.py noop --workers 4      # no-op up on converged nodes
    .venv/bin/python bench/up_bench.py noop --workers 16
    .venv/bin/python bench/up_bench.py plan --workers 16     # light nodes: facts + plan
    add --write-docs to record the rows in docs/benchmarks.md

"first" and "noop" time the real command (`piherd up --json`, a fresh process: SSH
connections included). "plan" runs the same connect + facts + render + plan work as a
no-op up, on light (sshd-only) nodes, where nothing can be applied.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

from docs_table import update_table_section  # bench/: run as `python bench/X.py`

from piherd.app.bring_up import up_cluster
from piherd.runner.apply import NodeResult, UpOptions
from piherd.secrets import load_or_create_secrets
from piherd.services import load
from piherd.sim.virtual_cluster import VirtualCluster

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "benchmarks.md"
SECTION = "## piherd up"
PIHERD = str(Path(sys.executable).parent / "piherd")


def timed_up(cluster_file: Path) -> tuple[float, dict]:  # type: ignore[type-arg]
    start = time.monotonic()
    proc = subprocess.run(
        [PIHERD, "up", "-f", str(cluster_file), "--json"], capture_output=True, text=True
    )
    elapsed = time.monotonic() - start
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    return elapsed, summary


class Quiet:
    def phase(self, node: str, text: str) -> None: ...

    def change(self, node: str, change: object) -> None: ...

    def done(self, result: NodeResult) -> None: ...


async def plan_round(cluster_file: Path) -> tuple[float, int]:
    cluster = load(cluster_file)
    secrets = load_or_create_secrets(cluster)
    names = [n.name for n in cluster.nodes]
    options = UpOptions(dry_run=True, diffs=False)
    start = time.monotonic()
    result = await up_cluster(cluster, names, options, Quiet(), secrets)
    return time.monotonic() - start, len(result.failed)


def write_docs(rows: list[str], command: str) -> None:
    intro = [
        "first/noop: `piherd up --json` in a fresh process (SSH connects included);",
        "plan: connect + facts + render + plan on light nodes (what a no-op up does).",
    ]
    update_table_section(
        DOCS, SECTION, intro, "| what | seconds | nodes | failed | command |", rows, command
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("first", "noop", "plan"))
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--name", default="upbench")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    vc = VirtualCluster(args.name, workers=args.workers, light=args.mode == "plan")
    rows = []
    try:
        asyncio.run(vc.up())
        nodes = args.workers + 1
        if args.mode == "plan":
            asyncio.run(plan_round(vc.cluster_file))  # host keys recorded, caches warm
            seconds, failed = asyncio.run(plan_round(vc.cluster_file))
            rows.append(f"| plan ({nodes} light nodes) | {seconds:.2f} | {nodes} | {failed} |")
        else:
            seconds, summary = timed_up(vc.cluster_file)
            if args.mode == "first":
                rows.append(f"| first up | {seconds:.1f} | {nodes} | {summary['failed']} |")
            else:
                seconds, summary = timed_up(vc.cluster_file)
                changed = summary["changed"]
                rows.append(
                    f"| no-op up ({nodes} nodes, {changed} changed) | {seconds:.2f} | {nodes} "
                    f"| {summary['failed']} |"
                )
    finally:
        asyncio.run(vc.down())
    print("\n".join(rows))
    if args.write_docs:
        command = f"python bench/up_bench.py {args.mode} --workers {args.workers}"
        write_docs(rows, command)


if __name__ == "__main__":
    main()
