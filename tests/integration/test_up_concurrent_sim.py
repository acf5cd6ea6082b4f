"""Two `up` at once (issue 12, class 11) on fresh full sim nodes: "tflt2", head + 1 worker.

From this machine the second `up` waits for the first (naming it) and then changes
nothing; an `up` as if from another machine (its own lock directory) finds the nodes
locked and names the holder. Daemons are started or restarted at most once in all.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from piherd.sim.virtual_cluster import VirtualCluster

pytestmark = pytest.mark.sim

PIHERD = str(Path(sys.executable).parent / "piherd")


@pytest.fixture(scope="module")
def vc(sim_cm: Callable[..., AbstractContextManager[VirtualCluster]]) -> Iterator[VirtualCluster]:
    with sim_cm("tflt2", 1) as cluster:
        yield cluster


def start_up(vc: VirtualCluster, cache: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    return subprocess.Popen(
        [PIHERD, "up", "-f", str(vc.cluster_file), "--json"],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def finish(process: subprocess.Popen[str]) -> tuple[int, list[dict[str, Any]], str]:
    out, err = process.communicate(timeout=1500)
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return process.returncode, events, err


def test_two_ups_at_once_restart_daemons_once(vc: VirtualCluster, tmp_path: Path) -> None:
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    first = start_up(vc, here)
    try:
        time.sleep(3)
        second = start_up(vc, here)  # same machine: waits for the first
        time.sleep(12)  # the first holds its nodes by now (it is still installing)
        other = start_up(vc, elsewhere)  # "another machine": the nodes are locked
        rc_other, other_events, _ = finish(other)
        rc1, events1, err1 = finish(first)
        rc2, events2, err2 = finish(second)
    finally:
        for process in (first, second, other):
            if process.poll() is None:
                process.kill()
                process.wait()
    assert rc1 == 0, err1[-3000:]
    assert rc2 == 0, err2[-3000:]
    assert f"is locked by piherd up (PID {first.pid} on " in err2
    assert [e for e in events2 if e["event"] == "change"] == []  # the first did it all
    assert rc_other == 1
    reasons = {n: r["reason"] for n, r in other_events[-1]["nodes"].items()}
    assert set(reasons) == {"node01", "node02"}
    assert all(
        r.startswith(f"locked by piherd up (PID {first.pid} on ") for r in reasons.values()
    ), reasons
    assert [e for e in other_events if e["event"] == "change"] == []
    starts = [
        (e["node"], e["target"])
        for e in events1 + events2 + other_events
        if e["event"] == "change" and e["kind"] in ("start", "restart", "reload")
    ]
    assert len(starts) == len(set(starts)), starts
