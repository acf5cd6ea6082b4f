"""Progress of `piherd up`: live per-node table on a terminal, plain lines otherwise, JSON.

All three take the same events (phase, change, done) from runner/apply.py and end with a
summary (changed / unchanged / failed per node, with the reason for each failure).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import IO, Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from piherd.ops.changes import Change, Plan
from piherd.runner.apply import WOULD_CHANGE, NodeResult

STATUS_STYLE = {
    "changed": "yellow",
    WOULD_CHANGE: "yellow",
    "unchanged": "green",
    "failed": "bold red",
    "interrupted": "bold magenta",
}


def summary_table(results: Mapping[str, NodeResult]) -> Table:
    """One row per node: status, changes applied/planned, time, failure reason."""
    table = Table(title="piherd up", show_lines=False)
    for column in ("node", "status", "changes", "time", "reason"):
        table.add_column(column, overflow="fold")
    for name in sorted(results):
        r = results[name]
        style = STATUS_STYLE.get(r.status, "")
        changes = f"{len(r.applied)}/{r.planned}" if r.applied or r.planned else "0"
        table.add_row(name, f"[{style}]{r.status}[/]", changes, f"{r.elapsed:.1f}s", r.reason)
    return table


def summary_counts(results: Mapping[str, NodeResult], dry_run: bool = False) -> dict[str, int]:
    """Nodes per status ("would change" instead of "changed" in a dry run); "interrupted"
    appears only after a Ctrl-C."""
    counts = {WOULD_CHANGE if dry_run else "changed": 0, "unchanged": 0, "failed": 0}
    for r in results.values():
        counts[r.status] = counts.get(r.status, 0) + 1
    return counts


def summary_line(results: Mapping[str, NodeResult], dry_run: bool = False) -> str:
    """`2 changed, 1 unchanged, 0 failed` (`, 1 interrupted` after a Ctrl-C); a dry run's
    reads `1 would change, 2 unchanged, 0 failed`."""
    counts = summary_counts(results, dry_run)
    return ", ".join(f"{n} {status}" for status, n in counts.items())


class PlainReporter:
    """One line per event, for logs and pipes."""

    def __init__(self, out: IO[str], *, verbose_diffs: bool = False, dry_run: bool = False) -> None:
        self.out = out
        self.verbose_diffs = verbose_diffs
        self.dry_run = dry_run

    def phase(self, node: str, text: str) -> None:
        print(f"{node}: {text}", file=self.out, flush=True)

    def change(self, node: str, change: Change) -> None:
        print(f"{node}: {change.describe()}", file=self.out, flush=True)
        if self.verbose_diffs and change.diff:
            for line in change.diff.splitlines():
                print(f"{node}:   {line}", file=self.out)

    def done(self, result: NodeResult) -> None:
        tail = f": {result.reason}" if result.reason else ""
        print(f"{result.node}: {result.status}{tail}", file=self.out, flush=True)

    def summary(self, results: Mapping[str, NodeResult]) -> None:
        Console(file=self.out, width=120, no_color=True).print(summary_table(results))
        print(summary_line(results, self.dry_run), file=self.out)


class JsonReporter:
    """JSON lines: one object per event, then {"event": "summary", ...}."""

    def __init__(self, out: IO[str], *, dry_run: bool = False) -> None:
        self.out = out
        self.dry_run = dry_run

    def _emit(self, record: dict[str, Any]) -> None:
        record["time"] = round(time.time(), 3)
        print(json.dumps(record, sort_keys=True), file=self.out, flush=True)

    def phase(self, node: str, text: str) -> None:
        self._emit({"event": "phase", "node": node, "text": text})

    def change(self, node: str, change: Change) -> None:
        self._emit(
            {
                "event": "change",
                "node": node,
                "kind": change.kind.value,
                "target": change.target,
                "reason": change.reason,
                "diff": change.diff,
            }
        )

    def done(self, result: NodeResult) -> None:
        self._emit(
            {
                "event": "node",
                "node": result.node,
                "status": result.status,
                "changes": len(result.applied),
                "planned": result.planned,
                "reason": result.reason,
                "elapsed": round(result.elapsed, 3),
            }
        )

    def summary(self, results: Mapping[str, NodeResult]) -> None:
        self._emit(
            {
                "event": "summary",
                # keys: changed (would_change in a dry run), unchanged, failed
                **{
                    k.replace(" ", "_"): n for k, n in summary_counts(results, self.dry_run).items()
                },
                "nodes": {
                    n: {"status": r.status, "changes": len(r.applied), "reason": r.reason}
                    for n, r in sorted(results.items())
                },
            }
        )


class LiveReporter:
    """A rich Live table, one row per node, updated as events arrive."""

    def __init__(self, console: Console, nodes: list[str]) -> None:
        self.console = console
        self.state: dict[str, list[str]] = {n: ["waiting", "", "0"] for n in nodes}
        self.live = Live(self._table(), console=console, refresh_per_second=8, transient=True)

    def _table(self) -> Table:
        table = Table(show_header=True, header_style="bold")
        for column in ("node", "state", "last change", "done"):
            table.add_column(column, overflow="ellipsis", no_wrap=True)
        for name, (state, last, count) in sorted(self.state.items()):
            table.add_row(name, state, last, count)
        return table

    def __enter__(self) -> LiveReporter:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.__exit__(None, None, None)

    def _update(self) -> None:
        self.live.update(self._table())

    def phase(self, node: str, text: str) -> None:
        self.state.setdefault(node, ["", "", "0"])[0] = text
        self._update()

    def change(self, node: str, change: Change) -> None:
        row = self.state.setdefault(node, ["", "", "0"])
        row[1] = f"{change.kind.value} {change.target}"
        row[2] = str(int(row[2]) + 1)
        self._update()

    def done(self, result: NodeResult) -> None:
        row = self.state.setdefault(result.node, ["", "", "0"])
        row[0] = f"{result.status}: {result.reason}" if result.reason else result.status
        self._update()

    def summary(self, results: Mapping[str, NodeResult]) -> None:
        self.console.print(summary_table(results))
        self.console.print(summary_line(results))


def print_dry_run(out: IO[str], plans: Mapping[str, Plan]) -> None:
    """Per node: each change, its reason and its unified diff."""
    for name in sorted(plans):
        plan = plans[name]
        count = len(plan.changes)
        print(f"== {name}: {count} change{'' if count == 1 else 's'}", file=out)
        for change in plan.changes:
            print(f"  {change.describe()}", file=out)
            for line in change.diff.splitlines():
                print(f"    {line}", file=out)
