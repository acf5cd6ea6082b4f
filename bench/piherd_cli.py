"""The piherd command of this environment, run as a user runs it, for the sim benchmarks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PIHERD = str(Path(sys.executable).parent / "piherd")


def piherd(*args: str, timeout: float = 1800) -> str:
    """stdout of `piherd ARGS...`; the benchmark stops with piherd's stderr when it fails."""
    proc = subprocess.run([PIHERD, *args], capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise SystemExit(f"piherd {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc.stdout
