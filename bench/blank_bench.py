"""From blank cards to nodes idle in Slurm, on the sim, timed phase by phase with the CLI.

    sudo .venv/bin/python bench/blank_bench.py --workers 3 [--release trixie] [--write-docs]
    sudo .venv/bin/python bench/blank_bench.py --workers 15 --write-docs

Each run: `sim up --blank` (not counted: the Pis on the desk), then what a user does:
`piherd image @all --out`, per node `sim kill` + `sim flash` (the card goes in), every node
powered on at once (`sim revive`, in parallel: the first boot and its reboot), `discover
--write`, `piherd up`, and the wait until `sinfo` shows every worker idle. The package
cache is whatever this machine's sim cache holds (run once first to measure "once
packages are cached", as the issue asks). The cluster is taken down at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from docs_table import update_table_section  # bench/: run as `python bench/X.py`
from piherd_cli import PIHERD, piherd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "unit"))
from rpi_image import build_image  # noqa: E402  (the tests' Raspberry Pi OS-shaped image)

DOCS = ROOT / "docs" / "benchmarks.md"
SECTION = "## From blank cards to Slurm (sim)"


async def revive_all(name: str, nodes: list[str]) -> None:
    procs = [
        await asyncio.create_subprocess_exec(
            PIHERD, "sim", "revive", "--name", name, node, stdout=subprocess.DEVNULL
        )
        for node in nodes
    ]
    codes = [await p.wait() for p in procs]
    if any(codes):
        raise SystemExit(f"sim revive failed: {dict(zip(nodes, codes, strict=True))}")


def wait_idle(cluster_file: Path, workers: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(
            [PIHERD, "ssh", "-f", str(cluster_file), "node01", "--", "sinfo -h -N -o %t"],
            capture_output=True, text=True, timeout=60,
        ).stdout  # fmt: skip
        if out.split().count("idle") == workers:
            return
        time.sleep(1)
    raise SystemExit(f"never {workers} idle workers")


def run(name: str, workers: int, release: str, work: Path) -> dict[str, float]:
    image = work / f"raspios-{release}.img"
    build_image(image, release)
    piherd("sim", "up", "--name", name, "--blank", "--release", release,
           "--workers", str(workers))  # fmt: skip
    cluster_file = Path(f"/var/lib/piherd/sim/{name}/cluster.toml")
    nodes = [f"node{i:02d}" for i in range(1, workers + 2)]
    times: dict[str, float] = {}
    try:
        t = time.monotonic()
        piherd("image", "-f", str(cluster_file), "@all", "--from", str(image),
               "--out", str(work / "cards"))  # fmt: skip
        times["image"] = time.monotonic() - t
        t = time.monotonic()
        for node in nodes:
            piherd("sim", "kill", "--name", name, node)
            piherd("sim", "flash", "--name", name, node, str(work / "cards" / f"{node}.img"))
        times["flash"] = time.monotonic() - t
        t = time.monotonic()
        asyncio.run(revive_all(name, nodes))
        times["first boot"] = time.monotonic() - t
        t = time.monotonic()
        rows = json.loads(piherd("discover", "-f", str(cluster_file), "--write", "--json"))
        times["discover"] = time.monotonic() - t
        known = [r for r in rows["rows"] if r["state"] == "known"]
        if len(known) != len(nodes):
            raise SystemExit(f"discover found {len(known)} of {len(nodes)}: {rows}")
        t = time.monotonic()
        piherd("up", "-f", str(cluster_file), "--json")
        times["up"] = time.monotonic() - t
        t = time.monotonic()
        wait_idle(cluster_file, workers)
        times["idle"] = time.monotonic() - t
    finally:
        piherd("sim", "down", "--name", name)
    times["total"] = sum(times.values())
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--release", default="bookworm", choices=("bookworm", "trixie"))
    parser.add_argument("--name", default="bblank")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="piherd-blank-bench-", dir="/var/tmp") as work:
        load = Path("/proc/loadavg").read_text().split()[0]
        times = run(args.name, args.workers, args.release, Path(work))
    print(json.dumps({"workers": args.workers, "release": args.release, "load": load, **times}))
    if not args.write_docs:
        return
    phases = ("image", "flash", "first boot", "discover", "up", "idle", "total")
    cells = " | ".join(f"{times[k]:.1f}" for k in phases)
    row = f"| head + {args.workers}, {args.release} | {cells} | {load} |"
    intro = [
        "Seconds per phase, each a CLI command as a user runs it, on",
        "blank sim nodes (stock cards) with the package cache already filled. `first boot`:",
        "every node powered on at once until sshd answers (bookworm: firstrun.sh and its",
        "reboot; trixie: cloud-init); `idle`: from the end of `up` until `sinfo` shows every",
        "worker idle. Target (#13): head + 15 from blank to idle within 5 minutes.",
    ]
    header = (
        "| what | image | flash | first boot | discover | up | idle | total | load at start "
        "| command |"
    )
    command = f"sudo .venv/bin/python bench/blank_bench.py --workers {args.workers}"
    if args.release != "bookworm":
        command += f" --release {args.release}"
    update_table_section(DOCS, SECTION, intro, header, [row], command)


if __name__ == "__main__":
    main()
