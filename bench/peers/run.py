"""One timed converge run (a fresh process, its output to a log) and what it changed."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.peers.tools import Invocation

ANSIBLE_RECAP = re.compile(
    r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M
)


@dataclass(frozen=True)
class Sample:
    repeat: int
    tool: str  # piherd, ansible, pyinfra, floor
    phase: str  # first, noop
    wall: float
    cpu: float  # user+sys of the tool and every process it waited for
    node_cpu: float  # CPU seconds all the sim's nodes used meanwhile (their cgroup)
    rc: int
    changed: int  # changes (piherd), changed tasks (ansible), changed operations (pyinfra)
    failed: int
    check: str  # the verification after the run ("" when not checked)
    load: float = 0.0  # 1-minute load average of the machine when the run started

    def json(self) -> str:
        return json.dumps(asdict(self))


def node_cpu(cluster: str) -> float:
    """CPU seconds used so far by every node of the sim cluster (cgroup v2 accounting of
    the cluster's cgroup, which keeps what reset nodes used)."""
    stat = Path(f"/sys/fs/cgroup/unified/piherd-{cluster}/cpu.stat")
    for line in stat.read_text().splitlines() if stat.exists() else []:
        if line.startswith("usage_usec "):
            return int(line.split()[1]) / 1e6
    return 0.0


def timed(invocation: Invocation, log: Path) -> tuple[float, float, int]:
    """Run once: wall seconds, client CPU seconds, exit status."""
    with log.open("wb") as out:
        started = time.monotonic()
        process = subprocess.Popen(
            invocation.argv, env=invocation.env, cwd=invocation.cwd, stdin=subprocess.DEVNULL,
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        _pid, status, usage = os.wait4(process.pid, 0)
        wall = time.monotonic() - started
    return wall, usage.ru_utime + usage.ru_stime, os.waitstatus_to_exitcode(status)


def changes(tool: str, log: Path) -> tuple[int, int]:
    """(changed, failed) as the tool reports them in its output."""
    text = log.read_text(errors="replace")
    if tool == "piherd":
        # stdout's JSON lines and stderr's notes share the log: the summary is the last
        # JSON line, not the last line.
        lines = [line for line in text.splitlines() if line.startswith('{"')]
        summary = json.loads(lines[-1]) if lines else {"nodes": {}, "failed": 9}
        return sum(n["changes"] for n in summary["nodes"].values()), summary["failed"]
    if tool == "ansible":
        rows = ANSIBLE_RECAP.findall(text)
        changed = sum(int(r[2]) for r in rows)
        return changed, sum(int(r[3]) + int(r[4]) for r in rows) + (9 if not rows else 0)
    if tool == "pyinfra":
        return pyinfra_changes(text)
    raise ValueError(tool)


def pyinfra_changes(text: str) -> tuple[int, int]:
    """pyinfra's closing "--> Results:" table, its Grand total row: operations per host
    that changed something (Success) and that failed (Error)."""
    for line in reversed(text.splitlines()):
        if line.strip().startswith("Grand total"):
            cells = line.split()[2:]  # Hosts, Success, Error, No Change
            numbers = [0 if cell == "-" else int(cell) for cell in cells]
            return numbers[1], numbers[2]
    return 0, 1
