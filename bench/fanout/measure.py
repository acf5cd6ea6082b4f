"""Measuring one tool run: wall time, the client's user+sys CPU and peak RSS (wait4), and
the CPU the nodes' sshd processes spent meanwhile (from /proc/<sshd>/stat)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.fanout.tools import Invocation

TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Sample:
    tool: str
    nodes: int
    command: str
    wall: float
    cpu: float  # client user+sys seconds, the tool and every process it waited for
    rss_mb: float  # peak RSS of the largest single process of the tool
    sshd_cpu: float  # seconds of CPU the nodes' sshd (and their children) used
    rc: int


def sshd_pids(node_dirs: Sequence[Path]) -> list[int]:
    """PIDs of the sshd listeners started with these nodes' sshd_config files."""
    wanted = {str(d / "sshd_config").encode() for d in node_dirs}
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        # A listener retitles itself: "sshd: /usr/sbin/sshd -D -e -f CONFIG [listener] ...".
        words = set(cmdline.replace(b"\0", b" ").split())
        if b"[listener]" in words and wanted & words:
            pids.append(int(entry.name))
    return pids


def sshd_cpu(pids: Sequence[int]) -> float:
    """CPU seconds of these sshd listeners plus their reaped per-connection children."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return total / TICK


def measure(
    tool: str, invocation: Invocation, nodes: int, command: str, pids: Sequence[int], log: Path
) -> Sample:
    """Run the tool once, its output to `log`."""
    before = sshd_cpu(pids)
    with log.open("wb") as out:
        started = time.monotonic()
        process = subprocess.Popen(
            invocation.argv, env=invocation.env, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        _pid, status, usage = os.wait4(process.pid, 0)
        wall = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    time.sleep(0.2)  # let the last sshd children be reaped by their listeners
    return Sample(
        tool, nodes, command, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024,
        sshd_cpu(pids) - before, process.returncode,
    )  # fmt: skip
