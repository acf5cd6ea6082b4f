"""The watch log: every event as a JSON line and a human line, with time and reason."""

from __future__ import annotations

import json
from pathlib import Path

from piherd.health.loop import WatchLog, human_line
from piherd.health.rules import Level, Verdict
from piherd.health.slurm import SlurmNode
from piherd.health.watch import WatchMachine


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
