"""Benchmark the head's `piherd watch` service on a full sim: power cut -> drained, and
false drains over a long run on a loaded machine.

    .venv/bin/python bench/watch_bench.py --name scl --workers 3 --interval 1 \\
        --soak-minutes 10 --hogs 2 --cuts 5 [--write-docs]

One full sim cluster (head + workers: systemd, munge, slurmd), brought up by `piherd up`
with health.watch_enabled, so every drain comes from the head's piherd-watch.service,
the way a cluster runs it. Then:
- soak: no faults for --soak-minutes while --hogs busy loops load this machine's cores
  (on top of whatever else runs here); count the drains the service logged;
- power cuts: --cuts times, SIGKILL a worker (its container, like pulling the plug) and
  poll Slurm on the head every 0.1 s until the node shows drained by piherd; power it
  on again and wait for the service to resume it.
The sim is taken down at the end, also on failure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import time
from asyncio.subprocess import PIPE, STDOUT
from pathlib import Path

import tomlkit
from docs_table import machine  # bench/docs_table.py: run as `python bench/X.py`

from piherd.app.health_rounds import health_collector
from piherd.health.collect import HealthCollector
from piherd.health.slurm_state import SlurmNode, parse_nodes
from piherd.services import load
from piherd.sim.virtual_cluster import VirtualCluster

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "benchmarks.md"
SECTION = "## piherd watch: power cut and false drains"
PIHERD = str(Path(sys.executable).parent / "piherd")
HEAD = "node01"


def watched_copy(cluster_file: Path, interval: float) -> Path:
    """The sim's cluster.toml with the head's watch service on and shared storage off
    (a revived container does not mount sshfs again until the next up: see
    tests/integration/test_watch_slurm.py)."""
    doc = tomlkit.parse(cluster_file.read_text())
    services = doc.setdefault("services", tomlkit.table())
    services.setdefault("storage", tomlkit.table())["enabled"] = False
    health = doc.setdefault("health", tomlkit.table())
    health["watch_enabled"] = True
    health["watch_interval_s"] = interval
    copy = cluster_file.with_name("cluster-watch-bench.toml")
    copy.write_text(tomlkit.dumps(doc))
    return copy


async def on_head(collector: HealthCollector, *argv: str) -> str:
    error, out, _ = await collector.run_on(HEAD, list(argv), sudo=True, timeout=20.0)
    if error is not None:
        raise RuntimeError(f"{' '.join(argv)} on {HEAD}: {error}")
    return out


async def slurm_node(collector: HealthCollector, node: str) -> SlurmNode | None:
    error, out, _ = await collector.run_on(
        HEAD, ["scontrol", "show", "node", "-o", node], timeout=5.0
    )
    return None if error is not None else parse_nodes(out).get(node)


async def wait_until(check: object, limit: float, what: str) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if await check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.5)
    raise RuntimeError(f"timed out after {limit:g}s waiting for {what}")


async def watch_cpu_seconds(collector: HealthCollector) -> float:
    """user+system CPU seconds of the head's piherd-watch service so far."""
    pid = (await on_head(collector, "systemctl", "show", "-p", "MainPID", "--value",
                         "piherd-watch.service")).strip()  # fmt: skip
    fields = (await on_head(collector, "cat", f"/proc/{pid}/stat")).rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


async def drains_since(collector: HealthCollector, since: float) -> list[str]:
    """Drain events the head's service logged since `since` (UTC seconds)."""
    text = await on_head(collector, "cat", "/var/log/piherd/watch.jsonl")
    events = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [
        f"{e['node']}: {e['message']}"
        for e in events
        if e["kind"] == "drain" and e["time"] >= since
    ]


async def soak(collector: HealthCollector, minutes: float, hogs: int) -> dict[str, float]:
    """No faults for `minutes`, `hogs` busy loops running: drains logged, load, watch CPU."""
    start_wall, cpu0 = time.time(), await watch_cpu_seconds(collector)
    loops = [
        await asyncio.create_subprocess_exec(sys.executable, "-c", "while True: pass")
        for _ in range(hogs)
    ]
    loads = []
    try:
        deadline = time.monotonic() + 60 * minutes
        while time.monotonic() < deadline:
            await asyncio.sleep(min(15.0, max(0.0, deadline - time.monotonic())))
            loads.append(os.getloadavg()[0])
    finally:
        for loop in loops:
            loop.kill()
            await loop.wait()
    cpu = await watch_cpu_seconds(collector) - cpu0
    drains = await drains_since(collector, start_wall)
    for line in drains:
        print("false drain:", line)
    return {
        "minutes": minutes,
        "drains": len(drains),
        "load_median": statistics.median(loads) if loads else 0.0,
        "load_max": max(loads) if loads else 0.0,
        "watch_cpu_pct": 100 * cpu / (time.time() - start_wall),
    }


async def power_cuts(
    vc: VirtualCluster, collector: HealthCollector, workers: list[str], cuts: int
) -> list[float]:
    """Seconds from SIGKILL to Slurm showing the node drained by piherd, per cut."""
    times = []
    for index in range(cuts):
        victim = workers[index % len(workers)]
        cut, cut_wall = time.monotonic(), time.time()
        await vc.kill(victim)
        while True:
            node = await slurm_node(collector, victim)
            if node is not None and node.drained_by_piherd:
                times.append(time.monotonic() - cut)
                break
            if time.monotonic() - cut > 120:
                raise RuntimeError(f"{victim} not drained 120 s after the power cut")
            await asyncio.sleep(0.1)
        print(f"cut {index + 1}: {victim} drained after {times[-1]:.2f} s", flush=True)
        text = await on_head(collector, "cat", "/var/log/piherd/watch.jsonl")
        for line in text.splitlines()[-20:]:
            event = json.loads(line)
            if event["node"] == victim and event["time"] >= cut_wall - 1:
                print(f"  +{event['time'] - cut_wall:.2f} s {event['kind']}: {event['message']}")
        await collector.pool.forget(victim)
        await vc.revive(victim, timeout=180)

        async def resumed(name: str = victim) -> bool:
            node = await slurm_node(collector, name)
            return node is not None and not node.held

        await wait_until(resumed, 180, f"{victim} resumed by the service")
    return times


async def bench(args: argparse.Namespace) -> tuple[dict[str, float], list[float]]:
    vc = VirtualCluster(args.name, workers=args.workers)
    try:
        path = watched_copy(await vc.up(timeout=900), args.interval)
        up = await asyncio.create_subprocess_exec(
            PIHERD, "up", "-f", str(path), stdout=PIPE, stderr=STDOUT
        )
        async with asyncio.timeout(1800):
            out, _ = await up.communicate()
        if up.returncode != 0:
            raise RuntimeError(f"piherd up failed: {out.decode()[-3000:]}")
        cluster = load(path)
        workers = [n.name for n in cluster.workers]
        async with health_collector(cluster, timeout=10.0) as collector:

            async def all_idle() -> bool:
                nodes = [await slurm_node(collector, w) for w in workers]
                return all(n is not None and not n.held and not n.down for n in nodes)

            await wait_until(all_idle, 300, "every worker idle in Slurm")
            soaked = await soak(collector, args.soak_minutes, args.hogs)
            print(json.dumps(soaked), flush=True)
            cuts = await power_cuts(vc, collector, workers, args.cuts)
        return soaked, cuts
    finally:
        await vc.down()


def write_docs(soaked: dict[str, float], cuts: list[float], command: str, args: object) -> None:
    interval = getattr(args, "interval", 1.0)
    body = "\n".join(
        [
            SECTION,
            "",
            f"Machine: {machine()}, shared with other work. A full sim cluster (head + "
            f"{getattr(args, 'workers', 3)} workers: systemd, munge, slurmd) "
            "brought up by `piherd up` with `health.watch_enabled = true` and "
            f"`watch_interval_s = {interval:g}`: every drain below was made by the head's "
            "piherd-watch.service. Power cut = SIGKILL of the worker's container; the time "
            "runs until `scontrol show node` on the head shows it drained by piherd (polled "
            "every 0.1 s). Target: drained within 5 s, and no drain in a long run without "
            "faults on a loaded machine.",
            "",
            f"Command: `{command}`",
            "",
            "| what | result | |",
            "|---|---|---|",
            f"| power cut -> drained by the head's watch service ({len(cuts)} cuts) "
            f"| median {statistics.median(cuts):.2f} s | min {min(cuts):.2f} s, "
            f"max {max(cuts):.2f} s |",
            f"| false drains, {soaked['minutes']:g} min without faults, "
            f"{getattr(args, 'hogs', 0)} busy loops added | {soaked['drains']:.0f} drains "
            f"| 1-minute load average median {soaked['load_median']:.1f}, "
            f"max {soaked['load_max']:.1f} (2 cores) |",
            f"| CPU of the head's watch service (interval {interval:g} s, "
            f"{getattr(args, 'workers', 3) + 1} nodes) | {soaked['watch_cpu_pct']:.1f} % "
            "of one core | |",
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="twatch", help="sim cluster name")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--soak-minutes", type=float, default=10.0)
    parser.add_argument("--hogs", type=int, default=2, help="busy loops during the soak")
    parser.add_argument("--cuts", type=int, default=5)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    soaked, cuts = asyncio.run(bench(args))
    print(json.dumps({"soak": soaked, "cuts": cuts, "machine": machine()}))
    if args.write_docs:
        write_docs(soaked, cuts, "python bench/watch_bench.py " + " ".join(sys.argv[1:]), args)


if __name__ == "__main__":
    main()
