"""Medians of the fan-out samples as the markdown section of docs/benchmarks.md."""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.fanout.measure import Sample
from bench.fanout.tools import OPENSSH_TOOLS

TITLE = "## piherd run (fan-out)"
LABEL = {
    "clush": "clush -b (ClusterShell)",
    "pdsh": "pdsh -R ssh",
    "pssh": "parallel-ssh",
    "ansible": "ansible -m raw (ControlMaster off)",
    "bare-asyncssh": "bare asyncssh (bench/fanout/bare_asyncssh.py)",
    "piherd": "**piherd run**",
}


def medians(samples: Sequence[Sample], tool: str, size: int, command: str) -> dict[str, float]:
    mine = [s for s in samples if (s.tool, s.nodes, s.command) == (tool, size, command)]
    if not mine:
        return {}
    return {
        "wall": statistics.median(s.wall for s in mine),
        "cpu": statistics.median(s.cpu for s in mine),
        "rss": statistics.median(s.rss_mb for s in mine),
        "sshd": statistics.median(s.sshd_cpu for s in mine),
        "failed": sum(s.rc != 0 for s in mine),
        "runs": len(mine),
    }


def section(
    samples: Sequence[Sample],
    tools: Sequence[str],
    sizes: Sequence[int],
    commands: Sequence[str],
    machine: str,
    command_line: str,
    check: dict[str, Any] | None,
) -> str:
    lines = [
        TITLE, "",
        f"Machine: {machine}. Light sim nodes (one sshd per network namespace), cold "
        "connections, fanout 64, median of the repeats; every tool in the same run, "
        "interleaved, each cell starting with the next tool. wall = whole process; client "
        "CPU = user+sys of the tool and every "
        "process it waited for (wait4); RSS = peak of its largest process; sshd/conn = "
        "CPU of the nodes' sshd per connection (the floor). Ratios: wall / fastest "
        "OpenSSH-based peer, wall / bare asyncssh.", "",
        f"Command: `{command_line}`", "",
    ]  # fmt: skip
    for command in commands:
        lines += [
            f"### `{command}`", "",
            "| N | tool | wall s | client CPU s | CPU ms/node | peak RSS MB | sshd ms/conn "
            "| vs fastest OpenSSH | vs bare asyncssh | runs (failed) |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]  # fmt: skip
        for size in sizes:
            stats = {t: medians(samples, t, size, command) for t in tools}
            peers = [stats[t]["wall"] for t in tools if t in OPENSSH_TOOLS and stats[t]]
            fastest = min(peers) if peers else None
            bare = stats.get("bare-asyncssh", {}).get("wall")
            for tool in tools:
                m = stats[tool]
                if not m:
                    continue
                vs_peer = f"{m['wall'] / fastest:.2f}x" if fastest else "-"
                vs_bare = f"{m['wall'] / bare:.2f}x" if bare else "-"
                lines.append(
                    f"| {size} | {LABEL.get(tool, tool)} | {m['wall']:.2f} | {m['cpu']:.2f} | "
                    f"{1000 * m['cpu'] / size:.1f} | {m['rss']:.0f} | "
                    f"{1000 * m['sshd'] / size:.0f} | {vs_peer} | {vs_bare} | "
                    f"{m['runs']:.0f} ({m['failed']:.0f}) |"
                )
        lines.append("")
    if check is not None:
        verdict = "every failure attributed to the right node" if not check["misattributed"] else (
            f"MISATTRIBUTED: {check['misattributed']}"
        )  # fmt: skip
        lines += [
            "Failure attribution (`piherd run --json`, "
            f"{check['nodes']} nodes, {len(check['killed'])} killed, "
            f"{len(check['failing'])} exiting 1): {verdict}; exit status {check['exit']}; "
            f"summary `{' '.join(check['summary'])}`.", "",
        ]  # fmt: skip
    return "\n".join(lines)


def write_section(path: Path, text: str) -> None:
    """Replace (or append) this section of docs/benchmarks.md, leaving the others alone."""
    current = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(TITLE)}\n.*?(?=^## |\Z)", re.S | re.M)
    block = text.rstrip() + "\n\n"
    if pattern.search(current):
        updated = pattern.sub(lambda _m: block, current, count=1)
    else:
        updated = current.rstrip() + "\n\n" + block
    path.write_text(updated.rstrip() + "\n")
