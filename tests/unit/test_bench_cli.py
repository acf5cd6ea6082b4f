"""`python -m bench` (`make bench`): lists every benchmark script and refuses unknown names."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _bench(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_bench_lists_every_benchmark_script() -> None:
    listed = _bench()
    assert listed.returncode == 0, listed.stderr
    scripts = sorted(p.name for p in (ROOT / "bench").glob("*_bench.py"))
    assert scripts and all(f"bench/{s}" in listed.stdout for s in scripts)
    assert "-m bench.fanout" in listed.stdout
    assert "-m bench.peers" in listed.stdout


def test_bench_refuses_an_unknown_name() -> None:
    refused = _bench("nosuchbench")
    assert refused.returncode == 2 and "no benchmark 'nosuchbench'" in refused.stderr
