"""`piherd status`: one table of the whole cluster, Pi health and Slurm state included."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import click
from rich import box
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from piherd.app.health_rounds import health_collector, status_round
from piherd.cli.common import Seconds, cluster_file_option, fail, load_cluster, select_nodes
from piherd.health import report
from piherd.health.collect import Snapshot
from piherd.health.verdicts import Level
from piherd.model import Cluster

LEVEL_STYLE = {Level.OK: "green", Level.WARN: "yellow", Level.CRITICAL: "bold red"}
EXIT_CRITICAL = 1


def render_table(snap: Snapshot) -> Table:
    """The status table: one row per node, the health column coloured by level."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, expand=False)
    # On a narrow terminal every column wraps (fold) rather than losing its end.
    for column in (
        "node",
        "role",
        "up",
        "uptime",
        "load 1/5/15",
        "temp",
        "throttling",
        "memory",
        "root",
        "clock",
        "storage",
        "slurm",
        "reboot",
        "health",
    ):
        table.add_column(column, overflow="fold")
    for h in snap.health:
        verdict = snap.verdicts[h.node]
        style = LEVEL_STYLE[verdict.level]
        health = verdict.level.label + (
            f": {'; '.join(verdict.reasons)}" if verdict.reasons else ""
        )
        if not h.reachable and h.error:
            health += f" ({h.error})"
        table.add_row(
            Text(h.node, style=style),
            snap.roles.get(h.node, ""),
            Text("yes", style="green") if h.reachable else Text("NO", style="bold red"),
            report.fmt_uptime(h.uptime_s),
            report.fmt_load(h),
            report.fmt_temp(h),
            h.throttling.describe() if h.reachable else "-",
            report.fmt_mem(h),
            report.fmt_root(h),
            report.fmt_clock(h),
            report.fmt_storage(h),
            report.fmt_slurm(h),
            Text("needed", style="yellow") if h.reboot_needed else "-",
            Text(health, style=style),
        )
    return table


def summary(snap: Snapshot) -> str:
    counts = {level: 0 for level in Level}
    for verdict in snap.verdicts.values():
        counts[verdict.level] += 1
    nodes = f"{len(snap.health)} node{'' if len(snap.health) == 1 else 's'}"
    text = (
        f"{nodes}: {counts[Level.OK]} ok, {counts[Level.WARN]} warn, "
        f"{counts[Level.CRITICAL]} critical ({snap.elapsed:.2f}s)"
    )
    if snap.slurm_error:
        text += f"; Slurm: {snap.slurm_error}"
    return text


async def watch_live(
    cluster: Cluster, names: Sequence[str], timeout: float, interval: float, console: Console
) -> None:
    """Refresh the table in place until interrupted, over one warm connection pool."""
    async with health_collector(cluster, timeout=timeout) as collector:
        with Live(console=console, auto_refresh=False) as live:
            while True:
                snap = await collector.round(names)
                grid = Table.grid()
                grid.add_row(render_table(snap))
                grid.add_row(Text(summary(snap), style="dim"))
                live.update(grid, refresh=True)
                await asyncio.sleep(interval)


@click.command("status")
@cluster_file_option
@click.argument("nodeset", required=False, default="@all")
@click.option("--json", "as_json", is_flag=True, help="Print the round as JSON for scripts.")
@click.option("--watch", "live", is_flag=True, help="Refresh the table in place (Ctrl-C stops).")
@click.option(
    "--interval",
    type=Seconds(0.5),
    default=2.0,
    show_default=True,
    help="Seconds between refreshes with --watch.",
)
@click.option(
    "--timeout",
    type=Seconds(0.5),
    default=5.0,
    show_default=True,
    help="Seconds a node has to connect, and then to answer, before it counts as unreachable.",
)
def command(
    cluster_file: Path, nodeset: str, as_json: bool, live: bool, interval: float, timeout: float
) -> None:
    """Show the health of NODESET (default @all): one row per node.

    Columns: role, reachable, uptime, load, CPU temperature, throttling (under-voltage,
    frequency capped, throttled, soft temperature limit; now and since boot), memory,
    root filesystem use and read-only state, clock offset from the head, shared storage,
    Slurm state and reason, whether a reboot is needed (a newer kernel installed, or
    packages asking for one in /run/reboot-required), and the health verdict with its
    reasons.

    Exit status: 0 when no node is critical, 1 when one is, 2 on bad input.
    """
    cluster = load_cluster(cluster_file)
    names = select_nodes(cluster, nodeset, "status")
    if live and as_json:
        fail("piherd status: --watch and --json cannot be combined")
    if live:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(watch_live(cluster, names, timeout, interval, Console()))
        return
    snap = asyncio.run(status_round(cluster, names, timeout=timeout))
    if as_json:
        click.echo(json.dumps(report.snapshot_dict(snap), indent=2))
    else:
        console = Console()
        if not console.is_terminal:
            console = Console(width=200)  # logs and pipes: one line per node, no wrapping
        console.print(render_table(snap))
        console.print(summary(snap), style="dim")
    if any(v.level == Level.CRITICAL for v in snap.verdicts.values()):
        sys.exit(EXIT_CRITICAL)
