"""The watch log (every event as a JSON line and a human line) and the watch loop."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path

from piherd.health.collect import Snapshot
from piherd.health.drain_policy import WatchMachine
from piherd.health.loop import WatchLog, human_line, watch_rounds
from piherd.health.probe import NodeHealth
from piherd.health.slurm_state import SlurmNode, drain_argv
from piherd.health.verdicts import Level, Verdict
from piherd.model import Cluster
from piherd.services import load

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cluster.toml"


def test_events_go_to_both_logs(tmp_path: Path) -> None:
    echoed: list[str] = []
    log = WatchLog(tmp_path / "logs", echo=echoed.append)
    machine = WatchMachine()
    uv = Verdict("node02", Level.CRITICAL, ("under-voltage",))
    _, events = machine.step(1795320000.0, [uv], {"node02": SlurmNode("node02", "idle")})
    for event in events:
        log.write(event)
    lines = (tmp_path / "logs" / "watch.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["kind"] for r in records] == ["level", "drain"]
    assert records[1]["reasons"] == ["under-voltage"] and records[1]["time"] == 1795320000.0
    human = (tmp_path / "logs" / "watch.log").read_text().splitlines()
    assert human == echoed
    assert human[1] == "2026-11-22T04:00:00Z node02 drain: piherd: under-voltage"
    assert human_line(events[0]) == (
        "2026-11-22T04:00:00Z node02 level: unknown -> critical: under-voltage"
    )


def test_no_directory_means_echo_only(tmp_path: Path) -> None:
    echoed: list[str] = []
    _, events = WatchMachine().step(0.0, [Verdict("n1", Level.WARN, (), ("throttled",))], None)
    log = WatchLog(None, echo=echoed.append)
    log.write(events[0])
    assert echoed == ["1970-01-01T00:00:00Z n1 level: unknown -> warn: throttled"]
    assert list(tmp_path.iterdir()) == []


class StubCollector:
    """Rounds from a fixed snapshot; records the commands run on the head."""

    def __init__(self, cluster: Cluster, snap: Snapshot) -> None:
        self.cluster = cluster
        self.snap = snap
        self.ran: list[tuple[str, list[str]]] = []

    async def round(self, names: Sequence[str], *, with_jobs: bool = False) -> Snapshot:
        return self.snap

    async def run_on(
        self, name: str, argv: Sequence[str], *, sudo: bool = False, timeout: float | None = None
    ) -> tuple[str | None, str, float]:
        self.ran.append((name, list(argv)))
        return None, "", 0.0


def test_watch_rounds_drains_through_the_collector_it_is_given(tmp_path: Path) -> None:
    """The loop owns no connections: the caller (app.health_rounds) passes the collector."""
    cluster = load(EXAMPLE)
    head, worker = cluster.head.name, cluster.workers[0].name
    verdict = Verdict(worker, Level.CRITICAL, ("under-voltage",))
    snap = Snapshot(
        time=10.0,
        health=(NodeHealth(worker, reachable=True),),
        verdicts={worker: verdict},
        slurm={worker: SlurmNode(worker, "idle")},
    )
    collector = StubCollector(cluster, snap)
    lines: list[str] = []
    asyncio.run(
        watch_rounds(
            collector,  # type: ignore[arg-type]
            [worker],
            interval=1.0,
            log=WatchLog(None, echo=lines.append),
            once=True,
        )
    )
    assert collector.ran == [(head, drain_argv(worker, "piherd: under-voltage"))]
    assert any(f"{worker} drain" in line for line in lines)
