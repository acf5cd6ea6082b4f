"""piherd's fixed start-up against the bare asyncssh script: one node, many runs.

    .venv/bin/python -m bench.fanout.startup [--cluster tfan] [--runs 15]

Prints the median wall and client CPU (wait4) of `piherd run NODE -- true` and of
bare_asyncssh.py on the same node, then what piherd imports and does beyond asyncssh,
timed in a fresh interpreter that imports asyncssh first (the two share that cost).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.fanout.measure import measure
from bench.fanout.tools import Setup, invocation

from piherd.sim.virtual_cluster import VirtualCluster

# Run in a fresh interpreter: the cost of each step once asyncssh (shared) is loaded.
PHASES = """
import json, sys, time
from pathlib import Path
steps = {}
def step(name, start):
    steps[name] = round((time.process_time() - start) * 1000, 1)
t = time.process_time(); import asyncssh; step("asyncssh (both pay it)", t)
t = time.process_time(); import click; step("click", t)
t = time.process_time(); import piherd.model; step("the cluster model", t)
t = time.process_time(); import piherd.app.remote, piherd.cli.run; step("transport and runner", t)
from piherd.cli.common import load_cluster
t = time.process_time(); load_cluster(Path(sys.argv[1])); step("loading cluster.toml", t)
print(json.dumps(steps))
"""


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fanout.startup", description=__doc__)
    parser.add_argument("--cluster", default="tfan", help="a running sim (light is enough)")
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    vc = VirtualCluster.attach(args.cluster)
    files = vc.files
    workdir = Path(tempfile.mkdtemp(prefix="piherd-bench-startup-"))
    setup = Setup(vc.cluster_file, files.ssh_config, files.known_hosts, files.private_key,
                  workdir, 64)  # fmt: skip
    node = vc.node_names()[0]
    for tool in ("bare-asyncssh", "piherd"):
        runs = [
            measure(tool, invocation(tool, setup, [node], "true"), 1, "true", [],
                    workdir / f"{tool}-{i}.log")
            for i in range(args.runs)
        ]  # fmt: skip
        wall = statistics.median(r.wall for r in runs)
        cpu = statistics.median(r.cpu for r in runs)
        print(f"{tool:14} one node, median of {args.runs}: wall {wall:.3f} s, CPU {cpu:.3f} s")
    phases = subprocess.run(
        [sys.executable, "-c", PHASES, str(vc.cluster_file)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    for name, ms in json.loads(phases.stdout).items():
        print(f"  {name}: {ms} ms CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
