"""`piherd run` / `copy` / `groups` end to end on light sim nodes (real sshd per node).

One virtual cluster "trun" (a head and 19 workers, light nodes) serves the module; tests
that kill or partition nodes bring them back in `finally`.
"""

from __future__ import annotations

import asyncio
import json
import os
import pty
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from piherd import api
from piherd.sim.virtual_cluster import VirtualCluster

pytestmark = pytest.mark.sim

PIHERD = str(Path(sys.executable).parent / "piherd")
WORKERS = 19  # 20 nodes: one is 5%


@pytest.fixture(scope="module")
def vc(sim_names: set[str]) -> Iterator[VirtualCluster]:
    sim_names.add("trun")  # the session-end leftovers check looks at it
    cluster = VirtualCluster("trun", workers=WORKERS, light=True)
    try:
        asyncio.run(cluster.up())
        yield cluster
    finally:
        asyncio.run(cluster.down())


def piherd(
    vc: VirtualCluster, *args: str, timeout: float = 120, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the CLI; its stdin is a pipe holding `stdin`, or /dev/null."""
    return subprocess.run(
        [PIHERD, *args],
        env={**os.environ, "PIHERD_CLUSTER": str(vc.cluster_file)},
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def json_lines(text: str) -> dict[str, dict[str, object]]:
    records = [json.loads(line) for line in text.splitlines()]
    return {str(r["node"]): r for r in records}


def test_mixed_outputs_fold_under_node_sets(vc: VirtualCluster) -> None:
    script = 'case "$(hostname)" in node0[1-3]) echo small;; *) echo big; uname -s;; esac'
    done = piherd(vc, "run", "@all", "--", script)
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        f"{'-' * 15}\nnode[01-03] (3)\n{'-' * 15}\nsmall\n"
        f"{'-' * 16}\nnode[04-20] (17)\n{'-' * 16}\nbig\nLinux\n"
    )
    assert done.stderr.strip().splitlines()[-1] == "ok node[01-20]"


def test_no_fold_prefixes_and_keeps_stderr_apart(vc: VirtualCluster) -> None:
    done = piherd(vc, "run", "--no-fold", "node[02-03]", "--", "sh", "-c", "hostname; echo e >&2")
    assert done.returncode == 0
    assert done.stdout == "node02: node02\nnode03: node03\n"
    assert done.stderr.startswith("node02: e\nnode03: e\n")


def test_piped_stdin_goes_to_every_node_unless_no_stdin(vc: VirtualCluster) -> None:
    done = piherd(vc, "run", "node[02-04]", "--", "tr", "a-z", "A-Z", stdin="hi\nthere\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{'-' * 15}\nnode[02-04] (3)\n{'-' * 15}\nHI\nTHERE\n"
    script = "printf '%s:' \"$(hostname)\"; wc -c"
    lines = piherd(vc, "run", "--no-fold", "node[02-04]", "--", script, stdin="x" * 100_000)
    assert lines.stdout.splitlines() == [f"node0{i}: node0{i}:100000" for i in (2, 3, 4)]
    silent = piherd(vc, "run", "-n", "node[02-04]", "--", "cat", stdin="x\n")
    assert (silent.returncode, silent.stdout) == (0, "")


def on_a_terminal(vc: VirtualCluster, *args: str) -> tuple[int, str]:
    """Run the CLI with stdout and stderr on a pseudo-terminal (stdin /dev/null)."""
    main, tty = pty.openpty()
    try:
        process = subprocess.Popen(
            [PIHERD, *args],
            env={**os.environ, "PIHERD_CLUSTER": str(vc.cluster_file), "COLUMNS": "100"},
            stdin=subprocess.DEVNULL, stdout=tty, stderr=tty,
        )  # fmt: skip
        os.close(tty)
        chunks = []
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # EIO: the terminal's last writer is gone
                break
            if not chunk:
                break
            chunks.append(chunk)
        return process.wait(timeout=60), b"".join(chunks).decode(errors="replace")
    finally:
        os.close(main)


def test_progress_bar_on_a_terminal(vc: VirtualCluster, tmp_path: Path) -> None:
    rc, screen = on_a_terminal(vc, "run", "@all", "--", "true")
    assert (rc, "Traceback" in screen) == (0, False), screen
    assert "20/20" in screen and screen.rstrip().endswith("ok node[01-20]"), screen
    (tmp_path / "f").write_text("x\n")
    rc, screen = on_a_terminal(vc, "copy", str(tmp_path / "f"), "node[02-03]:/tmp/")
    assert (rc, "2/2" in screen, screen.rstrip().endswith("ok node[02-03]")) == (0, True, True)


def test_failures_attributed_killed_partitioned_and_failing(vc: VirtualCluster) -> None:
    killed, partitioned, failing = "node07", "node17", "node13"
    asyncio.run(vc.kill(killed))
    asyncio.run(vc.partition(partitioned))
    try:
        script = f'test "$(hostname)" != {failing}'
        done = piherd(vc, "run", "--json", "--timeout", "4", "@all", "--", "sh", "-c", script)
    finally:
        asyncio.run(vc.heal(partitioned))
        asyncio.run(vc.revive(killed))
    assert done.returncode == 3, done.stderr
    records = json_lines(done.stdout)
    assert len(records) == 20
    assert records[failing]["rc"] == 1 and records[failing]["error"] is None
    for down in (killed, partitioned):
        assert records[down]["rc"] is None
        assert str(records[down]["error"]).startswith("unreachable"), records[down]
    healthy = set(records) - {killed, partitioned, failing}
    assert all(records[n]["rc"] == 0 and records[n]["error"] is None for n in healthy)
    summary = done.stderr.strip().splitlines()[-1]
    assert summary == "ok node[01-06,08-12,14-16,18-20]  rc=1 node13  unreachable node[07,17]"


def test_timeout_stops_slow_nodes(vc: VirtualCluster) -> None:
    script = 'case "$(hostname)" in node02) sleep 60;; *) echo fast;; esac'
    done = piherd(vc, "run", "--json", "-t", "2", "node[02-04]", "--", "sh", "-c", script)
    assert done.returncode == 3
    records = json_lines(done.stdout)
    assert records["node02"]["error"] == "timeout after 2s" and records["node02"]["rc"] is None
    assert records["node03"]["stdout"] == "fast\n" and records["node04"]["rc"] == 0
    assert done.stderr.strip().splitlines()[-1] == "ok node[03-04]  timeout node02"


def test_json_schema(vc: VirtualCluster) -> None:
    done = piherd(vc, "run", "--json", "@head", "--", "sh", "-c", "echo out; echo err >&2; exit 4")
    assert done.returncode == 1
    (record,) = [json.loads(line) for line in done.stdout.splitlines()]
    assert list(record) == ["node", "rc", "stdout", "stderr", "error", "elapsed"]
    assert record["node"] == "node01" and record["rc"] == 4
    assert (record["stdout"], record["stderr"], record["error"]) == ("out\n", "err\n", None)
    assert isinstance(record["elapsed"], float) and record["elapsed"] > 0


def test_groups_and_set_operators(vc: VirtualCluster) -> None:
    done = piherd(vc, "run", "--json", "@all!@head", "--", "hostname")
    assert sorted(json_lines(done.stdout)) == [f"node{i:02d}" for i in range(2, 21)]
    done = piherd(vc, "run", "--json", "@workers&node[01-03]", "--", "hostname")
    records = json_lines(done.stdout)
    assert {n: r["stdout"] for n, r in records.items()} == {
        "node02": "node02\n",
        "node03": "node03\n",
    }
    done = piherd(vc, "run", "@nosuchgroup", "--", "true")
    assert done.returncode == 2 and "unknown group @nosuchgroup" in done.stderr


def test_clush_reads_the_exported_groups(vc: VirtualCluster, tmp_path: Path) -> None:
    groups_d = tmp_path / "groups.d"
    done = piherd(vc, "groups", "--clustershell", "--out", str(groups_d / "trun.yaml"))
    assert done.returncode == 0, done.stderr
    (tmp_path / "groups.conf").write_text(f"[Main]\ndefault: trun\nautodir: {groups_d}\n")
    (tmp_path / "clush.conf").write_text(
        f"[Main]\nfanout: 64\nconnect_timeout: 15\ncommand_timeout: 0\ncolor: never\n"
        f"ssh_options: -F {vc.files.ssh_config}\n"
    )
    env = {**os.environ, "CLUSTERSHELL_CFGDIR": str(tmp_path)}
    clush = subprocess.run(
        ["clush", "-N", "-g", "workers&rack-none", "true"], env=env, capture_output=True,
        text=True, timeout=60, check=False,
    )  # fmt: skip
    assert clush.returncode != 0  # an unknown group is an error for clush too
    clush = subprocess.run(
        ["clush", "-b", "-w", "@all!@workers", "hostname"], env=env, capture_output=True,
        text=True, timeout=60, check=False,
    )  # fmt: skip
    assert clush.returncode == 0, clush.stderr
    assert clush.stdout.strip().splitlines()[-1] == "node01"


def test_copy_and_gather_round_trip_with_modes(vc: VirtualCluster, tmp_path: Path) -> None:
    src = tmp_path / "site"
    (src / "bin").mkdir(parents=True)
    (src / "secret.key").write_text("s3cret\n")
    (src / "secret.key").chmod(0o600)
    (src / "bin" / "tool").write_text("#!/bin/sh\necho tool\n")
    (src / "bin" / "tool").chmod(0o755)
    (src / "README").write_text("hello\n")
    (src / "README").chmod(0o644)
    done = piherd(vc, "copy", str(src), "node[02-04]:/tmp/dest")
    assert done.returncode == 0, done.stderr
    ran = piherd(vc, "run", "--json", "node[02-04]", "--", "/tmp/dest/bin/tool")
    assert [r["stdout"] for r in json_lines(ran.stdout).values()] == ["tool\n"] * 3

    out = tmp_path / "gathered"
    done = piherd(vc, "copy", "--gather", "node[02-04]:/tmp/dest", str(out))
    assert done.returncode == 0, done.stderr
    for node in ("node02", "node03", "node04"):
        for rel, mode in (("secret.key", 0o600), ("bin/tool", 0o755), ("README", 0o644)):
            got = out / node / "dest" / rel
            assert got.read_bytes() == (src / rel).read_bytes()
            assert stat.S_IMODE(got.stat().st_mode) == mode, (node, rel)
    missing = piherd(vc, "copy", "--gather", "node02:/tmp/not-there", str(out))
    assert missing.returncode == 1 and "no such file" in missing.stderr


def test_python_api(vc: VirtualCluster) -> None:
    async def main() -> list[tuple[str, int | None, str]]:
        async with api.open_cluster(vc.cluster_file) as cluster:
            first = await cluster.run("@workers&node[02-03]", "uname -s", timeout=10)
            again = await cluster.run(["node02"], ["hostname"], timeout=10)
            return [(r.node, r.rc, r.stdout) for r in (*first, *again)]

    assert asyncio.run(main()) == [
        ("node02", 0, "Linux\n"),
        ("node03", 0, "Linux\n"),
        ("node02", 0, "node02\n"),
    ]
