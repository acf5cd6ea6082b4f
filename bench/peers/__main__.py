"""bench/peers: `piherd up` beside an Ansible playbook (bench/peers/ansible) and a pyinfra
deploy (bench/peers/pyinfra) converging the same fresh sim nodes, and the apt floor.

    sudo .venv/bin/python -m bench.peers [--name peer] [--workers 8] [--repeat 3] [--write]

Per repeat, in an order rotated each repeat, every tool gets fresh nodes (`sim reset` of
every node) and runs twice: first run, then at once the no-op run; then the cluster is
checked (every file identical to `piherd render`, /cluster mounted everywhere, the
workers idle in sinfo, `srun -N<workers> hostname` answered). The floor: on fresh nodes,
one ssh per node in parallel running one `apt-get install` of the node's packages and
unpacking its rendered files. Samples go to <workdir>/samples.jsonl as they come.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import time
from pathlib import Path

from bench.peers import cluster, report
from bench.peers.run import Sample, changes, node_cpu, timed
from bench.peers.tools import TOOLS, Invocation, Setup, ensure_venv, invocation

from piherd.services import load
from piherd.sim.virtual_cluster import VirtualCluster


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__)
    parser.add_argument("--name", default="peer", help="sim cluster name")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tools", default=",".join((*TOOLS, "floor")))
    parser.add_argument("--workdir", type=Path, default=Path("/var/tmp/piherd-bench-peers"))
    parser.add_argument("--write", action="store_true", help="write docs/benchmarks.md")
    parser.add_argument("--down", action="store_true", help="sim down at the end")
    parser.add_argument("--samples", type=Path, help="only report this samples.jsonl")
    parser.add_argument(
        "--reuse-render", action="store_true", help="skip the warm-up up and render if done"
    )
    return parser.parse_args()


def prepare(vc: VirtualCluster, workdir: Path, reuse: bool) -> Setup:
    """Converge once with piherd (facts recorded, package cache warm), then render."""
    workdir.mkdir(parents=True, exist_ok=True)
    cluster = load(vc.cluster_file)
    setup = Setup(
        vc.cluster_file, vc.state_dir / "id_ed25519", vc.state_dir / "known_hosts",
        cluster.admin_user, cluster.head.interface, workdir / "render", workdir,
    )  # fmt: skip
    warm = invocation("piherd", setup, [], "warmup")
    if reuse and (setup.render_dir / "manifest.json").exists():
        return setup
    wall, _cpu, rc = timed(warm, workdir / "warmup.log")
    print(f"warm-up piherd up: {wall:.1f} s rc={rc}", flush=True)
    subprocess.run(["rm", "-rf", "--", str(setup.render_dir)], check=True)
    render = [str(warm.argv[0]), "render", "-f", str(vc.cluster_file), "--out"]
    subprocess.run([*render, str(setup.render_dir)], check=True)
    return setup


def floor(setup: Setup, nodes: list[cluster.Node], log: Path) -> tuple[float, int]:
    """One apt-get install per node in parallel plus the files: wall seconds, failures."""
    jobs = cluster.floor_jobs(setup, nodes)
    with log.open("wb") as out:
        started = time.monotonic()
        procs = [
            subprocess.Popen(argv, stdin=tar.open("rb"), stdout=out, stderr=subprocess.STDOUT)
            for argv, tar in jobs
        ]
        codes = [p.wait() for p in procs]
        wall = time.monotonic() - started
    return wall, sum(1 for c in codes if c != 0)


def cycle(vc: VirtualCluster, setup: Setup, tool: str, repeat: int) -> list[Sample]:
    """Fresh nodes, then the tool's first and no-op runs (or the floor), then the check."""
    names = vc.node_names()
    asyncio.run(cluster.reset_all(vc, names))
    fresh = cluster.nodes_of(setup, moved=False)
    moved = cluster.nodes_of(setup, moved=True)
    run = f"r{repeat}{tool}"
    if tool == "floor":
        before, load = node_cpu(vc.name), os.getloadavg()[0]
        wall, failed = floor(setup, fresh, setup.workdir / f"{run}.log")
        used = node_cpu(vc.name) - before
        print(f"{run}: {wall:.1f} s nodes' cpu {used:.1f} failed={failed}", flush=True)
        return [Sample(repeat, tool, "first", wall, 0.0, used, failed, 0, failed, "", load)]
    samples = []
    for phase, nodes in (("first", fresh), ("noop", moved)):
        inv: Invocation = invocation(tool, setup, nodes, f"{run}-{phase}")
        log = setup.workdir / f"{run}-{phase}.log"
        before, load = node_cpu(vc.name), os.getloadavg()[0]
        wall, cpu, rc = timed(inv, log)
        used = node_cpu(vc.name) - before
        changed, failed = changes(tool, log)
        samples.append(Sample(repeat, tool, phase, wall, cpu, used, rc, changed, failed, "", load))
        print(
            f"{run} {phase}: {wall:.1f} s cpu {cpu:.1f} nodes' cpu {used:.1f} rc={rc} "
            f"changed={changed} failed={failed}",
            flush=True,
        )
    check = cluster.verify(setup, moved)
    print(f"{run} check: {check.detail}", flush=True)
    samples[-1] = Sample(**{**samples[-1].__dict__, "check": check.detail})
    samples[0] = Sample(**{**samples[0].__dict__, "check": check.detail})
    return samples


def main() -> None:
    args = parse()
    if args.samples:
        report.show(args.samples, args.write, args)
        return
    tools = args.tools.split(",")
    for tool in ("ansible", "pyinfra"):
        if tool in tools:
            ensure_venv(tool)
    vc = VirtualCluster(args.name, workers=args.workers)
    asyncio.run(vc.up())
    try:
        setup = prepare(vc, args.workdir, args.reuse_render)
        samples_file = args.workdir / "samples.jsonl"
        samples_file.write_text("")
        for repeat in range(args.repeat):
            order = tools[repeat % len(tools) :] + tools[: repeat % len(tools)]
            for tool in order:
                for sample in cycle(vc, setup, tool, repeat):
                    with samples_file.open("a") as out:
                        out.write(sample.json() + "\n")
        report.show(samples_file, args.write, args)
    finally:
        if args.down:
            asyncio.run(vc.down())


if __name__ == "__main__":
    main()
