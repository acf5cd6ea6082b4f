"""`python -m bench` (`make bench`): list piherd's benchmarks, or run some of them.

    .venv/bin/python -m bench                 # the list: name, what it needs, its command
    .venv/bin/python -m bench render          # run one (extra arguments go to it)
    .venv/bin/python -m bench render -- --sizes 100,1000
    make bench BENCH=render                   # the same through make

Every benchmark is also a script of its own (the command in the list); each writes its
section of docs/benchmarks.md when given --write-docs. Those marked "root" build sim
clusters on this machine and take minutes; the sim is taken down at the end.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Bench:
    """One benchmark: how it is started and what it needs."""

    name: str
    argv: tuple[str, ...]  # after the Python interpreter
    needs: str
    what: str


BENCHES = (
    Bench("render", ("bench/render_bench.py",), "nothing (1-3 min)",
          "check/render of generated 100, 1,000 and 10,000-node cluster files"),
    Bench("sim", ("bench/sim_bench.py", "light", "--workers", "255"), "root, sim (1-2 min)",
          "sim up/down time and memory per node"),
    Bench("status", ("bench/status_bench.py", "light", "--workers", "255"),
          "root, sim (2-5 min)", "status rounds, cold and warm"),
    Bench("watch", ("bench/watch_bench.py", "--name", "twatch"), "root, sim (15-20 min)",
          "power cut -> drained by the head's watch service; false drains under load"),
    Bench("light1024", ("bench/light_scale_bench.py", "--name", "tscale", "--nodes", "1024"),
          "root, sim (5-15 min)", "run and status on 1,024 light nodes, memory"),
    Bench("up", ("bench/up_bench.py", "noop", "--workers", "4"), "root, sim (2-5 min)",
          "piherd up: first run and no-op"),
    Bench("fanout", ("-m", "bench.fanout", "--up", "--repeat", "3"), "root, sim (10-20 min)",
          "piherd run against clush, pdsh, parallel-ssh, ansible, bare asyncssh"),
    Bench("peers", ("-m", "bench.peers", "--repeat", "2", "--write", "--down"),
          "root, sim (an hour or more)",
          "piherd up against Ansible and pyinfra, and the apt floor"),
    Bench("image", ("bench/image_bench.py", "--nodes", "4"), "nothing (under a minute)",
          "piherd image per node: --out and --boot-dir"),
    Bench("blank", ("bench/blank_bench.py", "--workers", "3"), "root, sim (1-2 min)",
          "blank cards to idle in Slurm: image, flash, first boot, discover, up"),
    Bench("vm", ("bench/vm_bench.py", "--workers", "2"), "root, QEMU (about 5 min)",
          "VM nodes: image, boot to SSH, memory, piherd up with NFS"),
    Bench("netboot", ("bench/netboot_bench.py",), "root, QEMU (about 8 min)",
          "netboot: up of the head, netboot build, boot from the network, up, reset"),
    Bench("jobs", ("bench/jobs_bench.py", "/var/lib/piherd/sim/sim/cluster.toml"),
          "root, a sim cluster after piherd up (under a minute)",
          "srun --mpi=pmix, mpiexec -machinefile, and the next job after a failed one"),
)  # fmt: skip


def listing() -> str:
    lines = ["piherd benchmarks (make bench BENCH=NAME, or python -m bench NAME):", ""]
    for bench in BENCHES:
        lines.append(f"  {bench.name:<10} {bench.what}")
        lines.append(f"  {'':<10} needs {bench.needs}: python {' '.join(bench.argv)}")
    lines += [
        "",
        "Each records its rows in docs/benchmarks.md with --write-docs (fanout: --write).",
    ]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "list"):
        print(listing())
        return 0
    by_name = {b.name: b for b in BENCHES}
    name, extra = argv[0], [a for a in argv[1:] if a != "--"]
    if name not in by_name:
        print(f"no benchmark {name!r}\n\n{listing()}", file=sys.stderr)
        return 2
    command = [sys.executable, *by_name[name].argv, *extra]
    print("+", " ".join(command), flush=True)
    return subprocess.run(command, cwd=ROOT, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
