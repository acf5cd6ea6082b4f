"""The one-line machine description every benchmark section of docs/benchmarks.md starts with."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def machine() -> str:
    """Kernel, cores, memory and Python, e.g. `Linux 6.1, 2 cores, 23 GiB, Python 3.11.7`."""
    mem = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem = int(line.split()[1]) // 1048576
    return (
        f"{platform.system()} {platform.release()}, {os.cpu_count()} cores, {mem} GiB, "
        f"Python {platform.python_version()}"
    )
