"""Applying plans on the real local transport (files under a scratch dir, real sh/stat).

No systemd here (PID 1 is not systemd), so these plans carry files and directories only;
units are exercised on the sim (tests/integration/test_up.py).
"""

from __future__ import annotations

import asyncio
import grp
import os
import pwd
from collections.abc import Mapping
from pathlib import Path

import pytest

from piherd.facts.node_facts import NodeFacts
from piherd.model import Cluster
from piherd.ops.changes import Change, DesiredDir, DesiredFile, DesiredNode
from piherd.runner.apply import NodeResult, UpOptions, up
from piherd.services import load
from piherd.transport.base import Transport, TransportError
from piherd.transport.local import LocalTransport

EXAMPLE = Path(__file__).parents[2] / "examples" / "cluster.toml"
USER = pwd.getpwuid(os.getuid()).pw_name
GROUP = grp.getgrgid(os.getgid()).gr_name
# Every "node" is this machine: they cannot each keep a record at the one real path.
# Removals are planned as data (test_ops_removals.py) and applied on the sim.
NO_RECORD = ""


class LocalPool:
    """Every node is this machine; `down` nodes are unreachable."""

    def __init__(self, down: set[str] | None = None) -> None:
        self.down = down or set()
        self.forgotten: list[str] = []

    async def get(self, name: str) -> Transport:
        if name in self.down:
            raise TransportError(name, "unreachable (no route to host)")
        return LocalTransport(name)

    async def forget(self, name: str) -> None:
        self.forgotten.append(name)


class Events:
    def __init__(self) -> None:
        self.changes: list[tuple[str, str, str]] = []
        self.results: dict[str, NodeResult] = {}

    def phase(self, node: str, text: str) -> None:
        pass

    def change(self, node: str, change: Change) -> None:
        self.changes.append((node, change.kind, change.target))

    def done(self, result: NodeResult) -> None:
        self.results[result.node] = result


def builder(root: Path, text: str = "v1"):  # type: ignore[no-untyped-def]
    def build(cluster: Cluster, facts: Mapping[str, NodeFacts]) -> dict[str, DesiredNode]:
        nodes = {}
        for node in cluster.nodes:
            base = root / node.name
            nodes[node.name] = DesiredNode(
                node=node.name,
                hostname="",  # the test machine keeps its name
                dirs=(DesiredDir(str(base / "export"), 0o750, USER, GROUP),),
                files=(
                    DesiredFile(
                        str(base / "etc" / "a.conf"),
                        f"{text} {node.name}\n".encode(),
                        0o640,
                        USER,
                        GROUP,
                    ),
                    DesiredFile(str(base / "key"), b"secret\n", 0o600, USER, GROUP, secret=True),
                ),
            )
        return nodes

    return build


def run_up(root: Path, pool: LocalPool, text: str = "v1", dry: bool = False) -> tuple:  # type: ignore[type-arg]
    cluster = load(EXAMPLE)
    events = Events()
    names = [n.name for n in cluster.nodes]
    result = asyncio.run(
        up(
            cluster,
            pool,
            builder(root, text),
            events,
            UpOptions(dry_run=dry, record_path=NO_RECORD),
            names,
        )
    )
    return cluster, result, events


def test_first_run_changes_second_run_nothing(tmp_path: Path) -> None:
    _, first, _ = run_up(tmp_path, LocalPool())
    assert {r.status for r in first.results.values()} == {"changed"}
    conf = tmp_path / "node02" / "etc" / "a.conf"
    assert conf.read_text() == "v1 node02\n"
    assert oct(conf.stat().st_mode & 0o777) == "0o640"
    assert (tmp_path / "node02" / "export").is_dir()
    _, second, events = run_up(tmp_path, LocalPool())
    assert {r.status for r in second.results.values()} == {"unchanged"}
    assert events.changes == []
    assert all(p.empty for p in second.plans.values())


def test_dry_run_shows_diff_and_changes_nothing(tmp_path: Path) -> None:
    run_up(tmp_path, LocalPool())
    _, result, events = run_up(tmp_path, LocalPool(), text="v2", dry=True)
    conf = tmp_path / "node03" / "etc" / "a.conf"
    assert conf.read_text() == "v1 node03\n"
    (change,) = result.plans["node03"].changes
    assert "-v1 node03" in change.diff and "+v2 node03" in change.diff
    assert ("node03", "file", str(conf)) in events.changes


def test_one_node_down_others_finish(tmp_path: Path) -> None:
    _, result, _ = run_up(tmp_path, LocalPool(down={"node03"}))
    assert result.failed == ["node03"]
    assert "unreachable" in result.results["node03"].reason
    assert result.results["node02"].status == "changed"
    assert result.results["node04"].status == "changed"
    assert not (tmp_path / "node03").exists()
    # and the next run, with the node back, converges
    _, again, _ = run_up(tmp_path, LocalPool())
    assert again.results["node03"].status == "changed"
    assert again.results["node02"].status == "unchanged"


def test_failed_change_is_reported_with_reason(tmp_path: Path) -> None:
    (tmp_path / "node02").mkdir()
    (tmp_path / "node02" / "etc").write_text("a file where a directory must be\n")
    _, result, _ = run_up(tmp_path, LocalPool())
    assert result.failed == ["node02"]
    assert "mkdir" in result.results["node02"].reason
    assert result.results["node04"].status == "changed"


def test_node_subset_only_touches_those_nodes(tmp_path: Path) -> None:
    cluster = load(EXAMPLE)
    events = Events()
    options = UpOptions(record_path=NO_RECORD)
    result = asyncio.run(up(cluster, LocalPool(down={"node04"}), builder(tmp_path), events,
                            options, ["node02"]))  # fmt: skip
    assert set(result.results) == {"node02"}  # node04 being down is not node02's failure
    assert (tmp_path / "node02").is_dir()
    assert not (tmp_path / "node03").exists()


class CancelOnSecondChange(Events):
    """Ctrl-C as a reporter sees it: the run is cancelled while the head applies changes."""

    def __init__(self, head: str) -> None:
        super().__init__()
        self.head = head
        self.run: asyncio.Task[object] | None = None

    def change(self, node: str, change: Change) -> None:
        super().change(node, change)
        if node == self.head and sum(n == node for n, _, _ in self.changes) == 2:
            assert self.run is not None
            self.run.cancel()


def test_cancelled_run_tells_how_far_each_node_got(tmp_path: Path) -> None:
    cluster = load(EXAMPLE)
    head = cluster.head.name
    events = CancelOnSecondChange(head)
    results: dict[str, NodeResult] = {}
    names = [n.name for n in cluster.nodes]

    async def run() -> None:
        events.run = asyncio.current_task()
        await up(
            cluster, LocalPool(), builder(tmp_path), events, UpOptions(record_path=NO_RECORD),
            names, results,
        )  # fmt: skip

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(run())
    planned = results[head].planned
    assert (results[head].status, results[head].reason) == (
        "interrupted", f"after 1 of {planned} changes"
    )  # fmt: skip
    assert events.results[head].status == "interrupted"  # the reporter was told too
    # The workers started beside the head; each tells how far it got.
    for name, result in results.items():
        assert result.status == "interrupted", name
        assert result.reason == f"after {len(result.applied)} of {result.planned} changes"
        assert events.results[name].status == "interrupted"
    _, again, _ = run_up(tmp_path, LocalPool())  # and the next run finishes the job
    assert {r.status for r in again.results.values()} == {"changed"}
