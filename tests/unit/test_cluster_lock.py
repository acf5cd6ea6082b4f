"""The per-cluster lock of this machine (issue 12, class 11), between two real processes.

Another process holds the lock: a second taker is refused at once naming it (PID, host,
since, command), or waits and gets it once the first lets go; a holder that dies, even
by SIGKILL, leaves no stale lock. `up` and `watch` use it, and say so.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from piherd.app.cluster_lock import LockBusy, cluster_lock, lock_path
from piherd.cli.main import cli
from piherd.health.drain_policy import Event
from piherd.health.loop import WatchLog

HOLD = """
import sys
from piherd.app.cluster_lock import cluster_lock
with cluster_lock(sys.argv[1], sys.argv[2], command="piherd " + sys.argv[2]):
    print("held", flush=True)
    sys.stdin.read()  # until the test closes our stdin
"""


@pytest.fixture(autouse=True)
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def holder(request: pytest.FixtureRequest) -> Iterator[subprocess.Popen[str]]:
    cluster, purpose = getattr(request, "param", ("c1", "up"))
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, cluster, purpose],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=os.environ.copy(),
    )  # fmt: skip
    assert process.stdout is not None and process.stdout.readline() == "held\n"
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def test_a_second_taker_is_refused_naming_the_holder(holder: subprocess.Popen[str]) -> None:
    with pytest.raises(LockBusy) as caught, cluster_lock("c1", "up"):
        pytest.fail("the lock was held by the other process")
    assert caught.value.holder is not None
    assert (caught.value.holder.pid, caught.value.holder.host) == (holder.pid, socket.gethostname())
    message = str(caught.value)
    assert f"PID {holder.pid} on {socket.gethostname()}, since 20" in message
    assert message.startswith("cluster c1 (up) is locked by piherd up")
    with cluster_lock("c2", "up"), cluster_lock("c1", "watch"):
        pass  # other clusters and other purposes are free


def test_a_waiter_gets_the_lock_once_the_holder_lets_go(holder: subprocess.Popen[str]) -> None:
    assert holder.stdin is not None
    started = time.monotonic()
    holder.stdin.close()  # the holder ends soon; we wait meanwhile
    with cluster_lock("c1", "up", wait=20) as me:
        assert me.pid == os.getpid()
        assert lock_path("c1", "up").read_text().startswith(f'{{"pid": {os.getpid()}')
    assert time.monotonic() - started < 20
    assert lock_path("c1", "up").read_text() == ""  # released: nobody named


def test_a_waiter_gives_up_after_its_bound(holder: subprocess.Popen[str]) -> None:
    started = time.monotonic()
    told: list[object] = []
    with (
        pytest.raises(LockBusy, match=r"waited 0\.[6-9]\d*s"),
        cluster_lock("c1", "up", wait=0.6, on_wait=told.append),
    ):
        pass
    assert [getattr(h, "pid", None) for h in told] == [holder.pid]  # told once, who it is
    assert 0.5 < time.monotonic() - started < 5


def test_a_killed_holder_leaves_no_stale_lock(holder: subprocess.Popen[str]) -> None:
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    with cluster_lock("c1", "up"):
        pass


@pytest.mark.parametrize("holder", [("picluster", "watch")], indirect=True)
def test_a_second_watch_refuses(holder: subprocess.Popen[str], tmp_path: Path) -> None:
    cluster_file = Path(__file__).parents[2] / "examples" / "cluster.toml"  # "picluster"
    result = CliRunner().invoke(
        cli, ["watch", "-f", str(cluster_file), "--once", "--log-dir", str(tmp_path / "log")]
    )
    assert result.exit_code == 1, result.output
    assert "piherd watch: cluster picluster (watch) is locked by piherd watch " in result.output
    assert f"(PID {holder.pid} on " in result.output


def test_watch_log_lines_name_the_cluster(tmp_path: Path) -> None:
    echoed: list[str] = []
    WatchLog(tmp_path, echo=echoed.append, cluster="picluster").write(
        Event(0.0, "node02", "drain", "", "", ("under-voltage",), "piherd: under-voltage")
    )
    assert echoed == ["1970-01-01T00:00:00Z picluster node02 drain: piherd: under-voltage"]
    assert '"cluster": "picluster"' in (tmp_path / "watch.jsonl").read_text()
