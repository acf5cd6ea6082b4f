"""Faults of `run` and `copy` on light sim nodes (issue 12, class 10): "tflt", head + 2 workers.

A cable pulled mid-command ends as "connection lost" instead of a hang, and --json prints
the nodes that finished while the dead one is still being waited for; SIGTERM stops the
remote commands like Ctrl-C; a copy to a missing directory is one clear error every time.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from piherd.sim.virtual_cluster import VirtualCluster

pytestmark = pytest.mark.sim

PIHERD = str(Path(sys.executable).parent / "piherd")


@pytest.fixture(scope="module")
def vc(sim_cm: Callable[..., AbstractContextManager[VirtualCluster]]) -> Iterator[VirtualCluster]:
    with sim_cm("tflt", 2, light=True) as cluster:
        yield cluster


def start(vc: VirtualCluster, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PIHERD, *args],
        env={**os.environ, "PIHERD_CLUSTER": str(vc.cluster_file)},
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def piherd(vc: VirtualCluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PIHERD, *args],
        env={**os.environ, "PIHERD_CLUSTER": str(vc.cluster_file)},
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_a_pulled_cable_ends_as_connection_lost_and_finished_nodes_print_first(
    vc: VirtualCluster,
) -> None:
    script = 'case "$(hostname)" in node03) sleep 30;; *) echo quick;; esac'
    process = start(vc, "run", "--json", "@all", "--", script)
    assert process.stdout is not None
    try:
        time.sleep(3)  # every node connected and its command started
        asyncio.run(vc.partition("node03"))
        started = time.monotonic()
        early = [json.loads(process.stdout.readline()) for _ in range(2)]
        assert process.poll() is None  # still waiting for node03, yet both lines are out
        assert sorted((r["node"], r["stdout"]) for r in early) == [
            ("node01", "quick\n"),
            ("node02", "quick\n"),
        ]
        out, err = process.communicate(timeout=60)  # no --timeout given: keepalives end it
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        asyncio.run(vc.heal("node03"))
    assert time.monotonic() - started < 40
    (last,) = [json.loads(line) for line in out.splitlines()]
    assert last["node"] == "node03" and last["rc"] is None
    assert str(last["error"]).startswith("connection lost"), last
    assert process.returncode == 3, err
    assert err.strip().splitlines()[-1] == "ok node[01-02]  failed node03"


def remote_sleepers(vc: VirtualCluster) -> str:
    done = piherd(vc, "run", "--no-fold", "@all", "--", "sh", "-c", "pgrep -af 'sleep 31[7]' || :")
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_sigterm_stops_the_remote_commands_like_ctrl_c(vc: VirtualCluster) -> None:
    script = 'case "$(hostname)" in node01) echo head;; *) exec sleep 317;; esac'
    process = start(vc, "run", "--json", "@all", "--", script)
    assert process.stdout is not None
    try:
        # node01 has finished (its line is out: --json prints each node as it ends; on a
        # loaded machine its session may come up after the others'), and both sleep.
        first = json.loads(process.stdout.readline())
        deadline = time.monotonic() + 120
        while remote_sleepers(vc).count("sleep 317") < 2:
            assert time.monotonic() < deadline, "the remote commands never started"
            time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert (first["node"], first["stdout"]) == ("node01", "head\n")
    assert err.strip().splitlines()[-1] == "ok node01  interrupted node[02-03]"
    # The nodes end the commands once they see the session closed; on a loaded machine
    # that can take a moment. Left running for 15 s is a failure.
    deadline = time.monotonic() + 15
    while (left := remote_sleepers(vc)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert left == ""


def test_copy_to_a_missing_directory_is_one_clear_error_every_time(
    vc: VirtualCluster, tmp_path: Path
) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(4 << 20))  # far more than a pipe holds
    for _ in range(4):
        done = piherd(vc, "copy", "--json", str(big), "node[02-03]:/no/such/dir/")
        records = [json.loads(line) for line in done.stdout.splitlines()]
        assert done.returncode == 1, done.stderr
        assert [(r["rc"], r["error"], r["stderr"]) for r in records] == [
            (1, None, "/no/such/dir/: no such directory\n")
        ] * 2
    leftover = piherd(vc, "run", "@all", "--", "sh", "-c", "ls -a /tmp | grep piherd-tmp || :")
    assert leftover.stdout == ""
