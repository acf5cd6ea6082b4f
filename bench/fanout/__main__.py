"""bench/fanout: `piherd run` against clush, pdsh, parallel-ssh, ansible and bare asyncssh on
light sim nodes, side by side in one run; the table goes to docs/benchmarks.md.

    .venv/bin/python -m bench.fanout [--cluster tfan] [--sizes 16,64,256] [--repeat 3] [--write]

The sim cluster must be up with enough light nodes (the benchmark brings it up with
`--up`). Every sample is a fresh process and fresh connections (no ControlMaster).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.fanout import report
from bench.fanout.measure import Sample, measure, sshd_pids
from bench.fanout.tools import Setup, available, invocation

from piherd.sim.virtual_cluster import VirtualCluster

ROOT = Path(__file__).resolve().parents[2]


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.fanout", description=__doc__)
    parser.add_argument("--cluster", default="tfan")
    parser.add_argument("--sizes", default="16,64,256")
    parser.add_argument("--commands", default="true,hostname")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--fanout", type=int, default=64)
    parser.add_argument("--tools", default="", help="comma list; default: all available")
    parser.add_argument("--up", action="store_true", help="bring the sim cluster up first")
    parser.add_argument("--write", action="store_true", help="write docs/benchmarks.md")
    parser.add_argument("--no-failures", action="store_true", help="skip the attribution run")
    parser.add_argument("--samples", type=Path, help="only render a samples.jsonl of a run")
    parser.add_argument("--check", type=Path, help="with --samples: an attribution JSON")
    parser.add_argument("--label", default="", help="with --samples: the command that ran")
    parser.add_argument("--notes", type=Path, help="with --samples: markdown appended")
    parser.add_argument("--failures-only", action="store_true", help="only the attribution run")
    return parser.parse_args()


def attribution_check(vc: VirtualCluster, setup: Setup, nodes: list[str]) -> dict[str, object]:
    """5% of nodes killed, 5% exiting 1: is every failure attributed to the right node?"""
    count = max(1, len(nodes) // 20)
    killed, failing = nodes[1 : 1 + 2 * count : 2], nodes[2 : 2 + 2 * count : 2]
    pattern = "|".join(failing)
    script = f'case "$(hostname)" in {pattern}) exit 1;; esac'
    for node in killed:
        asyncio.run(vc.kill(node))
    try:
        argv = invocation("piherd", setup, nodes, script).argv
        argv[argv.index("--no-progress")] = "--json"
        argv[argv.index("--json") + 1 : argv.index("--json") + 1] = ["--timeout", "120"]
        argv[argv.index("--") :] = ["--", "sh", "-c", script]
        done = subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300,
            check=False,
        )  # fmt: skip
    finally:
        for node in killed:
            asyncio.run(vc.revive(node))
    records = {r["node"]: r for r in map(json.loads, done.stdout.splitlines())}

    def right(node: str) -> bool:
        record = records.get(node, {})
        if node in killed:
            return str(record.get("error", "")).startswith("unreachable")
        return record.get("error") is None and record.get("rc") == (1 if node in failing else 0)

    wrong = [n for n in nodes if not right(n)]
    return {
        "nodes": len(nodes), "killed": killed, "failing": failing, "exit": done.returncode,
        "misattributed": wrong, "summary": done.stderr.strip().splitlines()[-1:],
    }  # fmt: skip


def main() -> int:
    args = parse()
    sizes = [int(s) for s in args.sizes.split(",")]
    commands = args.commands.split(",")
    if args.samples is not None:
        return render_only(args, sizes, commands)
    vc = VirtualCluster(args.cluster, workers=max(sizes) - 1, light=True)
    if args.up:
        asyncio.run(vc.up(timeout=900))
    else:
        vc = VirtualCluster.attach(args.cluster)
    names = vc.node_names()
    if len(names) < max(sizes):
        print(f"sim {args.cluster} has {len(names)} nodes; need {max(sizes)} (use --up)")
        return 2
    tools = args.tools.split(",") if args.tools else available()
    workdir = Path(tempfile.mkdtemp(prefix="piherd-bench-fanout-"))
    files = vc.files
    setup = Setup(vc.cluster_file, files.ssh_config, files.known_hosts, files.private_key,
                  workdir, args.fanout)  # fmt: skip
    if args.failures_only:
        print(json.dumps(attribution_check(vc, setup, names[: max(sizes)])))
        return 0
    samples: list[Sample] = []
    cell = 0
    for rep in range(args.repeat):
        for size in sizes:
            nodes = names[:size]
            pids = sshd_pids([vc.state.node_dir(n) for n in nodes])
            for command in commands:
                # Each cell starts with the next tool: none always runs right after the
                # heavy ones (ansible) or first on a cold machine.
                cell += 1
                for tool in tools[cell % len(tools) :] + tools[: cell % len(tools)]:
                    run = invocation(tool, setup, nodes, command)
                    log = workdir / f"{tool}-{size}-{command}-{rep}.log"
                    sample = measure(tool, run, size, command, pids, log)
                    samples.append(sample)
                    with (workdir / "samples.jsonl").open("a") as saved:
                        saved.write(json.dumps(sample.__dict__) + "\n")
                    print(f"rep {rep} N={size} {command:8} {tool:14} wall {sample.wall:6.2f}s "
                          f"cpu {sample.cpu:6.2f}s rss {sample.rss_mb:6.1f}MB "
                          f"sshd {sample.sshd_cpu:6.2f}s rc {sample.rc}", flush=True)  # fmt: skip
    check = None if args.no_failures else attribution_check(vc, setup, names[: max(sizes)])
    if check is not None:
        print("failure attribution:", json.dumps(check))
    machine = _machine()
    command_line = ".venv/bin/python -m bench.fanout " + " ".join(sys.argv[1:]) + " (as root)"
    text = report.section(samples, tools, sizes, commands, machine, command_line, check)
    print(text)
    if args.write:
        report.write_section(ROOT / "docs" / "benchmarks.md", text)
    print(f"logs and samples in {workdir}")
    return 0


def render_only(args: argparse.Namespace, sizes: list[int], commands: list[str]) -> int:
    """Re-render the table of an earlier (possibly interrupted) run from its samples."""
    samples = [Sample(**json.loads(line)) for line in args.samples.read_text().splitlines()]
    tools = list(dict.fromkeys(s.tool for s in samples))
    check = json.loads(args.check.read_text()) if args.check else None
    text = report.section(samples, tools, sizes, commands, _machine(), args.label, check)
    if args.notes is not None:
        text = text.rstrip() + "\n\n" + args.notes.read_text().strip() + "\n"
    print(text)
    if args.write:
        report.write_section(ROOT / "docs" / "benchmarks.md", text)
    return 0


def _machine() -> str:
    return (
        f"{platform.node()}: Linux {platform.release()}, {_cores()} cores, "
        f"Python {platform.python_version()}, shared with other work"
    )


def _cores() -> int:
    return os.cpu_count() or 0


if __name__ == "__main__":
    sys.exit(main())
