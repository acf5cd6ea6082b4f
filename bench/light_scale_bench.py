"""Benchmark `piherd run` and `piherd status` on 1,024 light sim nodes, with memory.

    .venv/bin/python bench/light_scale_bench.py --name scl2 --nodes 1024 [--repeat 3] [--write-docs]

Brings up `--nodes` light nodes (sshd only, one network namespace each), then, each
a fresh process: `piherd run @all -- true` (cold: every connection opened in the run),
`piherd status --json` end to end, and in one process one cold and `--warm` warm status
rounds over one connection pool (what `status --watch`, `watch` and the dashboard do).
Memory: peak RSS of each piherd process (getrusage of the child), PSS of each light node
(its sshd listener, idle) and of the sshd sessions while a status pool holds every
connection open. The sim is taken down at the end, also on failure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from docs_table import machine  # bench/docs_table.py: run as `python bench/X.py`
from sim_bench import node_pids, pss_kib

from piherd.app.health_rounds import health_collector
from piherd.services import load
from piherd.sim.proc import SimError
from piherd.sim.virtual_cluster import VirtualCluster

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "benchmarks.md"
SECTION = "## 1,024 light nodes: run, status, memory"
PIHERD = str(Path(sys.executable).parent / "piherd")


def timed_child(argv: list[str]) -> tuple[float, float, int, str]:
    """(wall s, peak RSS MiB, exit status, stdout) of one run of argv (its own wait4)."""
    with tempfile.TemporaryFile() as out:
        start = time.monotonic()
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        text = out.read().decode()
    return wall, usage.ru_maxrss / 1024, proc.returncode, text


def run_true(path: Path) -> tuple[float, float, int]:
    """`piherd run @all -- true`: (wall, RSS MiB, nodes that answered rc 0)."""
    wall, rss, _, out = timed_child(
        [PIHERD, "run", "-f", str(path), "--json", "@all", "--", "true"]
    )
    ok = sum(
        1
        for line in out.splitlines()
        if line.startswith("{") and (r := json.loads(line)).get("rc") == 0 and not r.get("error")
    )
    return wall, rss, ok


def status_cli(path: Path) -> tuple[float, float, int]:
    """`piherd status --json`: (wall, RSS MiB, nodes reachable)."""
    wall, rss, _, out = timed_child([PIHERD, "status", "-f", str(path), "--json"])
    try:
        nodes = json.loads(out)["nodes"]
    except (ValueError, KeyError):
        return wall, rss, 0
    return wall, rss, sum(1 for n in nodes if n.get("reachable"))


async def rounds(
    vc: VirtualCluster, path: Path, warm: int
) -> tuple[float, list[float], int, float, float]:
    """(cold s, warm s list, reachable, this process's RSS MiB, sessions' PSS KiB/node)."""
    cluster = load(path)
    names = [n.name for n in cluster.nodes]
    async with health_collector(cluster, timeout=120.0, connect_timeout=30.0) as collector:
        start = time.monotonic()
        snap = await collector.round(names)
        cold = time.monotonic() - start
        times = []
        for _ in range(warm):
            start = time.monotonic()
            snap = await collector.round(names)
            times.append(time.monotonic() - start)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        held = statistics.mean(node_pss_kib(vc, n, sessions=True) for n in names)
    return cold, times, sum(h.reachable for h in snap.health), rss, held


def node_pss_kib(vc: VirtualCluster, node: str, *, sessions: bool = False) -> float:
    """PSS of a light node's sshd listener, plus its children (sessions) when asked."""
    pids = node_pids(vc, node)
    if sessions:
        for pid in list(pids):
            try:
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except OSError:
                continue
            pids |= {int(c) for c in children}
    return float(sum(pss_kib(p) for p in pids))


def bench(args: argparse.Namespace) -> dict[str, object]:
    vc = VirtualCluster(args.name, workers=args.nodes - 1, light=True)
    result: dict[str, object] = {"nodes": args.nodes, "load_start": os.getloadavg()[0]}
    try:
        start = time.monotonic()
        path = asyncio.run(vc.up(timeout=1800))
        result["up_s"] = time.monotonic() - start
        progress(result)
        time.sleep(5)
        names = vc.node_names()
        result["node_pss_kib"] = statistics.mean(node_pss_kib(vc, n) for n in names)
        result["run"] = []
        for _ in range(args.repeat):
            result["run"].append(run_true(path))  # type: ignore[attr-defined]
            progress(result)
        result["status_cli"] = []
        for _ in range(args.repeat):
            result["status_cli"].append(status_cli(path))  # type: ignore[attr-defined]
            progress(result)
        cold, warm, reachable, rss, held = asyncio.run(rounds(vc, path, args.warm))
        result.update(
            cold=cold, warm=warm, reachable=reachable, rounds_rss=rss, session_pss_kib=held
        )
        progress(result)
    finally:
        start = time.monotonic()
        try:
            asyncio.run(vc.down())
        except SimError as exc:  # a loaded machine: a killed sshd may take its time
            print(f"sim down: {exc}; retrying once", flush=True)
            time.sleep(10)
            asyncio.run(vc.down())
        result["down_s"] = time.monotonic() - start
    return result


def progress(result: dict[str, object]) -> None:
    """Each measurement as soon as it is made (a later failure keeps what was measured)."""
    print(json.dumps(result, default=str), flush=True)


def write_docs(r: dict[str, object], command: str) -> None:
    runs = r["run"]
    statuses = r["status_cli"]
    assert isinstance(runs, list) and isinstance(statuses, list)
    warm = r["warm"]
    assert isinstance(warm, list)
    n = r["nodes"]
    body = "\n".join(
        [
            SECTION,
            "",
            f"Machine: {machine()}, shared with other work (1-minute load average "
            f"{r['load_start']:.1f} when the run started). Light sim nodes (sshd only, one "
            "network namespace each, on stacked switches past 1,000 ports). Each CLI row is a "
            "fresh process, cold connections, median of the repeats (min-max after it); the "
            "rounds are one process with one connection pool. Targets: `run @all -- true` "
            "under 15 s cold, a warm status round under 5 s.",
            "",
            f"Command: `{command}`",
            "",
            "| what | result | | memory |",
            "|---|---|---|---|",
            f"| sim up, {n} light nodes | {r['up_s']:.0f} s | down {r['down_s']:.0f} s "
            f"| {float(r['node_pss_kib']) / 1024:.2f} MiB PSS per idle node (its sshd) |",
            f"| `piherd run @all -- true` (cold) | {_med(runs, 0)} s | "
            f"{min(x[2] for x in runs)}/{n} nodes rc 0 | piherd peak RSS {_med(runs, 1)} MiB |",
            f"| `piherd status --json` (cold, end to end) | {_med(statuses, 0)} s | "
            f"{min(x[2] for x in statuses)}/{n} reachable | piherd peak RSS "
            f"{_med(statuses, 1)} MiB |",
            f"| status round, warm (one pool, {len(warm)} rounds) "
            f"| median {statistics.median(warm):.2f} s (min {min(warm):.2f}) "
            f"| cold round {r['cold']:.2f} s, {r['reachable']}/{n} reachable "
            f"| process peak RSS {r['rounds_rss']:.0f} MiB; per node with the connection "
            f"held: {float(r['session_pss_kib']) / 1024:.2f} MiB PSS |",
            "",
        ]
    )
    text = DOCS.read_text()
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: body + "\n", text)
    else:
        text = text.rstrip("\n") + "\n\n" + body
    DOCS.write_text(text)


def _med(rows: list[tuple[float, float, int]], column: int) -> str:
    values = [row[column] for row in rows]
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="tscale")
    parser.add_argument("--nodes", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--warm", type=int, default=5)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    result = bench(args)
    print(json.dumps(result, default=str))
    if args.write_docs:
        command = "python bench/light_scale_bench.py " + " ".join(sys.argv[1:])
        write_docs(result, command)


if __name__ == "__main__":
    main()
