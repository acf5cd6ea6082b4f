"""`piherd watch`: drain critical nodes in Slurm, resume them when healthy, log each change."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

import click

from piherd.app.cluster_lock import LockBusy, cluster_lock
from piherd.app.health_rounds import watch_cluster
from piherd.cli.common import Seconds, cluster_file_option, fail, load_cluster, select_nodes
from piherd.health.loop import WatchLog
from piherd.services.watch_service import render_unit


def default_log_dir() -> Path:
    """/var/log/piherd as root, else ~/.local/state/piherd."""
    if os.geteuid() == 0:
        return Path("/var/log/piherd")
    return Path.home() / ".local" / "state" / "piherd"


@click.command("watch")
@cluster_file_option
@click.argument("nodeset", required=False, default="@all")
@click.option(
    "--interval",
    type=Seconds(0.5),
    default=None,
    help="Seconds between rounds [default: health.watch_interval_s of cluster.toml].",
)
@click.option("--once", is_flag=True, help="Run one round, act on it, and exit.")
@click.option(
    "--dry-run", is_flag=True, help="Log what would be drained or resumed; change nothing."
)
@click.option(
    "--log-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where watch.jsonl and watch.log go [default: /var/log/piherd as root].",
)
@click.option(
    "--timeout",
    type=Seconds(0.5),
    default=3.0,
    show_default=True,
    help=(
        "Seconds a node has to answer before the probe counts as failed; never more "
        "than the interval, or 1.5 s when the interval is shorter."
    ),
)
@click.option(
    "--print-unit",
    is_flag=True,
    help="Print the systemd unit that runs watch on the head, and exit.",
)
@click.option(
    "--unreachable-after",
    type=click.IntRange(1, 1000),
    default=2,
    show_default=True,
    help=(
        "Failed rounds in a row (and at least 60 s) before a node that does not answer "
        "over SSH but whose kernel still takes a TCP connection (slow, not dead) is "
        "drained. A node that takes not even that is drained in the round it fails."
    ),
)
@click.option(
    "--resume-after",
    type=click.IntRange(1, 1000),
    default=2,
    show_default=True,
    help="Healthy rounds in a row before a node piherd drained is resumed.",
)
def command(
    cluster_file: Path,
    nodeset: str,
    interval: float | None,
    once: bool,
    dry_run: bool,
    log_dir: Path | None,
    timeout: float,
    print_unit: bool,
    unreachable_after: int,
    resume_after: int,
) -> None:
    """Watch NODESET (default @all) and keep Slurm in step with node health.

    A node that turns critical (under-voltage, over-temperature, unreachable, clock
    off, shared storage missing, read-only or full root) is drained with reason
    "piherd: <rule>"; it is resumed once healthy again. Nodes drained by anyone else
    (a reason without the "piherd:" prefix) are never resumed. Each change is printed
    and appended to LOG_DIR/watch.log and LOG_DIR/watch.jsonl, naming the cluster.
    One watch per cluster on a machine: a second one refuses, naming the first.
    """
    cluster = load_cluster(cluster_file)
    if print_unit:
        unit = render_unit(cluster)
        if unit is None:
            fail(f"{cluster_file}: [health] watch_enabled is false; set it to true first")
        click.echo(unit, nl=False)
        return
    names = select_nodes(cluster, nodeset, "watch")
    log = WatchLog(
        log_dir or default_log_dir(), echo=lambda line: click.echo(line), cluster=cluster.name
    )
    # One watch drains and resumes a cluster; a dry run changes nothing and needs no lock.
    locked = contextlib.ExitStack()
    if not dry_run:
        try:
            locked.enter_context(cluster_lock(cluster.name, "watch", command="piherd watch"))
        except LockBusy as exc:
            fail(f"piherd watch: {exc}; one watch per cluster", 1)
    with locked, contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            watch_cluster(
                cluster,
                names,
                interval=interval or cluster.health.watch_interval_s,
                log=log,
                once=once,
                dry_run=dry_run,
                timeout=timeout,
                unreachable_after=unreachable_after,
                resume_after=resume_after,
            )
        )
