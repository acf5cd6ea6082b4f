"""Benchmark `piherd status` and `piherd watch` on the sim; write docs/benchmarks.md's section.

    .venv/bin/python bench/status_bench.py light --workers 255      # 256 light nodes
    .venv/bin/python bench/status_bench.py full --workers 15        # 16 full nodes (Slurm)
    .venv/bin/python bench/status_bench.py powercut                 # power cut -> drain
    add --write-docs to replace the "## piherd status" section of docs/benchmarks.md

Light nodes: `sim up --light` (sshd only). Full nodes: systemd + Slurm, brought to
Slurm by `piherd up`. "Cold" includes opening every SSH connection; "warm" reuses them
(what `status --watch`, `watch` and the dashboard do after their first round).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import tomlkit
from docs_table import machine  # bench/docs_table.py: run as `python bench/X.py`

from piherd.app.health_rounds import health_collector, watch_cluster
from piherd.health.loop import WatchLog
from piherd.services import load
from piherd.sim.virtual_cluster import VirtualCluster

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "benchmarks.md"
SECTION = "## piherd status"
PIHERD = str(Path(sys.executable).parent / "piherd")


async def rounds(cluster_file: Path, warm: int) -> tuple[float, list[float], int, int]:
    """(cold round s, warm round s list, nodes, reachable) in one process, one pool."""
    cluster = load(cluster_file)
    names = [n.name for n in cluster.nodes]
    async with health_collector(cluster, timeout=120.0, connect_timeout=10.0) as collector:
        start = time.monotonic()
        snap = await collector.round(names)
        cold = time.monotonic() - start
        times = []
        for _ in range(warm):
            start = time.monotonic()
            snap = await collector.round(names)
            times.append(time.monotonic() - start)
    return cold, times, len(names), sum(h.reachable for h in snap.health)


def cli_status(cluster_file: Path) -> float:
    start = time.monotonic()
    subprocess.run(
        [PIHERD, "status", "-f", str(cluster_file), "--json"],
        capture_output=True,
        check=False,
        timeout=600,
    )
    return time.monotonic() - start


def bench_status(name: str, workers: int, light: bool, warm: int) -> list[str]:
    vc = VirtualCluster(name, workers=workers, light=light)
    t0 = time.monotonic()
    path = asyncio.run(vc.up(timeout=900))
    up_s = time.monotonic() - t0
    if not light:
        path = without_storage(path)
    try:
        note = ""
        if not light:
            up = subprocess.run(
                [PIHERD, "up", "-f", str(path)], capture_output=True, check=False, timeout=1800
            )
            note = ", after `piherd up`" if up.returncode == 0 else ", `piherd up` incomplete"
        cold, times, count, reachable = asyncio.run(rounds(path, warm))
        cli = cli_status(path)
    finally:
        asyncio.run(vc.down())
    kind = "light" if light else "full"
    return [
        f"| status, {count} {kind} nodes ({reachable} answered{note}) | cold round {cold:.2f} s "
        f"| warm round median {statistics.median(times):.2f} s (min {min(times):.2f}, "
        f"{len(times)} rounds) | `piherd status --json` end to end {cli:.2f} s "
        f"| sim up {up_s:.0f} s |"
    ]


def without_storage(cluster_file: Path) -> Path:
    """A copy of the sim's cluster.toml without shared storage (not what is measured)."""
    doc = tomlkit.parse(cluster_file.read_text())
    doc.setdefault("services", tomlkit.table()).setdefault("storage", tomlkit.table())
    doc["services"]["storage"]["enabled"] = False
    copy = cluster_file.with_name("cluster-nostorage.toml")
    copy.write_text(tomlkit.dumps(doc))
    return copy


def bench_powercut(name: str, workers: int, interval: float) -> list[str]:
    """Kill a node under `piherd watch`; time until Slurm shows it drained by piherd."""
    vc = VirtualCluster(name, workers=workers)
    path = without_storage(asyncio.run(vc.up(timeout=900)))
    try:
        subprocess.run([PIHERD, "up", "-f", str(path)], check=True, timeout=1800)
        cluster = load(path)
        victim = cluster.workers[-1].name
        result = asyncio.run(_powercut(path, victim, interval))
    finally:
        asyncio.run(vc.down())
    return [
        f"| power cut -> drained by `piherd watch --interval {interval:g}` "
        f"({workers + 1} full nodes) | {result:.1f} s | Slurm alone (SlurmdTimeout default) "
        "| 300 s | |"
    ]


async def _powercut(path: Path, victim: str, interval: float) -> float:
    cluster = load(path)
    names = [n.name for n in cluster.nodes]
    stop = asyncio.Event()
    drained_at: list[float] = []
    cut_at: list[float] = []

    def on_round(snap: object) -> None:
        slurm = getattr(snap, "slurm", None) or {}
        node = slurm.get(victim)
        if cut_at and node is not None and node.drained_by_piherd and not drained_at:
            drained_at.append(time.monotonic())
            stop.set()

    log = WatchLog(None)
    task = asyncio.ensure_future(
        watch_cluster(cluster, names, interval=interval, log=log, on_round=on_round, stop=stop)
    )
    vc = VirtualCluster.attach(cluster.name)
    await asyncio.sleep(3 * interval)  # warm connections, a few healthy rounds
    cut_at.append(time.monotonic())
    await vc.kill(victim)
    try:
        async with asyncio.timeout(120):
            await stop.wait()
    finally:
        stop.set()
        await task
        await vc.revive(victim, timeout=180)
    return drained_at[0] - cut_at[0]


def _key(row: str) -> str:
    first = row.split("|")[1] if row.count("|") > 1 else row
    return re.sub(r"[\d.]+", "N", re.sub(r"\(.*?\)", "", first)).strip()


def write_docs(lines: list[str], command: str, load: float) -> None:
    """Replace this benchmark's rows (same kind) in the section; keep the other rows."""
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    found = pattern.search(text)
    rows = []
    if found:
        rows = [r for r in found.group(0).splitlines() if r.startswith("| ") and "---" not in r]
        rows = [r for r in rows if not r.startswith("| what ")]
    new_rows = [f"{line} `{command}` |" for line in lines]
    keys = {_key(r) for r in new_rows}
    rows = [r for r in rows if _key(r) not in keys] + new_rows
    body = "\n".join(
        [
            SECTION,
            "",
            f"Machine: {machine()}. Light nodes run sshd only; full nodes run systemd,",
            "munge and slurmd (Slurm brought up by `piherd up`). Cold = connections opened",
            "in the round; warm = reused (as `status --watch`, `watch`, `dashboard` do).",
            "Light nodes share this machine's files but have a private, empty /root, so no",
            "shell start-up file runs per command. Each row comes from its own run of the",
            "command in its last column (targets: a warm 256-node round under 3 s; power",
            "cut to drain <= 15 s); the newest row was written with a 1-minute load average",
            f"of {load:.1f} when it started (2 cores).",
            "",
            "| what | result | | | | command |",
            "|---|---|---|---|---|---|",
            *rows,
            "",
        ]
    )
    if found:
        text = text[: found.start()] + body + "\n" + text[found.end() :]
    else:
        text = text.rstrip() + "\n\n" + body + "\n"
    DOCS.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=["light", "full", "powercut"])
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--warm", type=int, default=5)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    load = os.getloadavg()[0]  # what else was running: said beside the numbers
    if args.what == "light":
        lines = bench_status("tstat", args.workers or 255, True, args.warm)
    elif args.what == "full":
        lines = bench_status("thealth", args.workers or 15, False, args.warm)
    else:
        lines = bench_powercut("thealth", args.workers or 3, args.interval)
    print("\n".join(lines))
    print(json.dumps({"machine": machine()}))
    if args.write_docs:
        write_docs(lines, "python bench/status_bench.py " + " ".join(sys.argv[1:]), load)


if __name__ == "__main__":
    main()
