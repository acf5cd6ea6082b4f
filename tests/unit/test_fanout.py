"""Fan-out over local transports: attribution, deadlines, the fanout limit, cancellation,
node-set parsing with the cluster's groups, and `piherd run` usage errors."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from click.testing import CliRunner

from piherd.api import ClusterSession, command_argv
from piherd.cli import run as cli_run
from piherd.cli.main import cli
from piherd.model import NodeSetError
from piherd.runner.fanout import each_node, fan_out, run_command
from piherd.services import load
from piherd.transport.base import CommandResult, Transport, TransportError
from piherd.transport.local import LocalTransport

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cluster.toml"


def getter(down: set[str]) -> object:
    async def get(node: str) -> Transport:
        if node in down:
            raise TransportError(node, "unreachable (connection refused)")
        return LocalTransport(node)

    return get


def test_every_outcome_is_attributed_to_its_node() -> None:
    nodes = [f"n{i}" for i in range(1, 9)]
    argv = ["sh", "-c", 'case "$1" in n3|n5) exit 1;; *) echo ok;; esac', "sh"]

    async def main() -> list[CommandResult]:
        async def work(transport: Transport, remaining: float | None) -> CommandResult:
            return await transport.run([*argv, transport.node], timeout=remaining)

        return await fan_out(getter({"n7"}), nodes, work, fanout=3, timeout=10)  # type: ignore[arg-type]

    results = asyncio.run(main())
    assert [r.node for r in results] == nodes
    assert {r.node for r in results if r.rc == 1} == {"n3", "n5"}
    assert [r.node for r in results if r.error] == ["n7"]
    assert results[6].error == "unreachable (connection refused)" and results[6].rc is None
    assert all(r.stdout == "ok\n" for r in results if r.rc == 0)


def test_deadline_covers_the_command_and_names_the_users_timeout() -> None:
    async def main() -> list[CommandResult]:
        work = run_command(["sleep", "30"])
        return await fan_out(getter(set()), ["a", "b"], work, timeout=0.5)  # type: ignore[arg-type]

    results = asyncio.run(main())
    assert [(r.rc, r.error) for r in results] == [(None, "timeout after 0.5s")] * 2


def test_fanout_limit_is_respected(tmp_path: Path) -> None:
    log = tmp_path / "log"
    script = 'echo start >> "$1"; sleep 0.3; echo end >> "$1"'

    async def main() -> None:
        work = run_command(["sh", "-c", script, "sh", str(log)])
        await fan_out(getter(set()), [f"n{i}" for i in range(6)], work, fanout=2)  # type: ignore[arg-type]

    asyncio.run(main())
    running = peak = 0
    for line in log.read_text().split():
        running += 1 if line == "start" else -1
        peak = max(peak, running)
    assert peak == 2


def test_cancel_keeps_what_finished() -> None:
    collected: dict[str, CommandResult] = {}

    async def main() -> None:
        async def work(transport: Transport, remaining: float | None) -> CommandResult:
            seconds = "0" if transport.node == "fast" else "30"
            return await transport.run(["sleep", seconds])

        task = asyncio.ensure_future(
            fan_out(getter(set()), ["fast", "slow"], work, results=collected)  # type: ignore[arg-type]
        )
        for _ in range(1000):  # until "fast" is in (at most 10 s), not a fixed guess
            if "fast" in collected:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert list(collected) == ["fast"] and collected["fast"].rc == 0


def test_each_node_keeps_order_and_limit() -> None:
    running: list[int] = [0, 0]  # now, peak

    async def work(name: str) -> str:
        running[0] += 1
        running[1] = max(running[1], running[0])
        await asyncio.sleep(0.05 if name == "a" else 0.01)
        running[0] -= 1
        return name.upper()

    result = asyncio.run(each_node(["a", "b", "c", "d", "b"], work, limit=2))
    assert list(result.items()) == [("a", "A"), ("b", "B"), ("c", "C"), ("d", "D")]
    assert running[1] == 2
    assert asyncio.run(each_node([], work)) == {}
    with pytest.raises(ValueError, match="at least 1"):
        asyncio.run(each_node(["a"], work, limit=0))


def test_each_node_cancels_the_others_when_one_fails() -> None:
    stopped: list[str] = []

    async def work(name: str) -> None:
        if name == "bad":
            await asyncio.sleep(0.05)
            raise RuntimeError("boom")
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            stopped.append(name)
            raise

    with pytest.raises(RuntimeError, match="boom"):
        asyncio.run(asyncio.wait_for(each_node(["x", "bad", "y"], work), 10))
    assert sorted(stopped) == ["x", "y"]


def test_node_sets_with_groups_and_operators() -> None:
    cluster = load(EXAMPLE)
    session = ClusterSession(cluster, pool=None)  # type: ignore[arg-type]
    assert session.nodes("@all!@head") == ["node02", "node03", "node04"]
    assert session.nodes("@gpu&@rack2") == ["node04"]
    assert session.nodes("node[02-03],@infra") == ["node01", "node02", "node03"]
    assert session.nodes(["node02", "node04"]) == ["node02", "node04"]
    with pytest.raises(NodeSetError, match="unknown group @nope"):
        session.nodes("@nope")
    with pytest.raises(NodeSetError, match="not a node of this cluster: node99"):
        session.nodes("node99")


def test_command_forms() -> None:
    assert command_argv("uptime -p") == ["uptime", "-p"]
    assert command_argv(["echo", "a b"]) == ["echo", "a b"]
    assert cli_run.words_argv(["df -h | tail -1"]) == ["sh", "-c", "df -h | tail -1"]
    assert cli_run.words_argv(["echo", "a|b"]) == ["echo", "a|b"]
    with pytest.raises(ValueError, match="empty command"):
        command_argv("  ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "@nope", "--", "true"], "unknown group @nope"),
        (["run", "node99", "--", "true"], "not a node of this cluster"),
        (["run", "@all", "--"], "no COMMAND given"),
        (["copy", "a-file-that-is-not-there", "@all:/tmp"], "no such file"),
        (["copy", "--gather", "@all"], "need SRC"),
        (["copy", str(EXAMPLE), "no-colon"], "expected NODESET:PATH"),
        (["groups"], "choose --clustershell or --ansible"),
    ],
)
def test_usage_errors_exit_2(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, [args[0], "-f", str(EXAMPLE), *args[1:]])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
