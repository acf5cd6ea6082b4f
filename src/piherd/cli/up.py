"""`piherd up`: bring every node (or a node set) to what cluster.toml describes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from piherd.app.bring_up import up_cluster
from piherd.app.cluster_lock import LockBusy, LockHolder, cluster_lock
from piherd.app.ssh_access import AccessError, AccessPaths, write_ssh_config
from piherd.cli.common import (
    EXIT_INTERRUPTED,
    Seconds,
    cluster_file_option,
    fail,
    load_cluster,
    select_nodes,
)
from piherd.model import Cluster
from piherd.runner.apply import NodeResult, UpOptions
from piherd.runner.progress import JsonReporter, LiveReporter, PlainReporter, print_dry_run
from piherd.secrets import SecretsError, load_or_create_secrets

EXIT_FAILED = 1
INTERRUPTED_HINT = (
    "piherd up: interrupted (Ctrl-C). Every file on the nodes is whole, the old or the new "
    "one; restarts still owed are recorded on each node. Run `piherd up` again to finish."
)


@click.command("up")
@cluster_file_option
@click.argument("nodeset", required=False, default="@all")
@click.option(
    "--dry-run", is_flag=True, help="Show each change, its reason and diff; change nothing."
)
@click.option("--json", "as_json", is_flag=True, help="JSON lines of events and a summary.")
@click.option(
    "--ask-pass",
    is_flag=True,
    help="Prompt for the image's password, install the admin key, then turn password login off.",
)
@click.option(
    "--timeout",
    type=Seconds(5, 3600),
    default=60.0,
    show_default=True,
    help="Seconds to reach a node at its new address after a network change.",
)
@click.option(
    "--wait",
    type=Seconds(0),
    default=600.0,
    show_default=True,
    help="Seconds to wait while another `piherd up` of this cluster runs (0: refuse at once).",
)
@click.option(
    "--purge",
    is_flag=True,
    help="Also purge the packages piherd installed that no service needs any more.",
)
def command(
    cluster_file: Path,
    nodeset: str,
    dry_run: bool,
    as_json: bool,
    ask_pass: bool,
    timeout: float,
    wait: float,
    purge: bool,
) -> None:
    """Configure NODESET (default @all): packages, files, services, in dependency order.

    \b
    Every node at once: the workers write files, move to their address and install
    packages while the head sets up time, storage export, DNS/DHCP, package cache,
    munge and slurmctld; they wait for the head before their own units (time,
    storage mount, munge, slurmd), and before packages fetched through the head.
    Only what differs is changed; a second run changes nothing. What piherd created
    and no longer renders (files, units it started) is removed; packages with --purge.
    One `up` of a cluster at a time: a second waits for the first (--wait) and says
    who holds the cluster; each node is locked too while it is planned and changed.
    Exit status: 0 all nodes done, 1 some node failed (or the cluster stayed locked),
    2 bad input, 130 interrupted (Ctrl-C or SIGTERM: nodes keep whole files, and the
    next run finishes the job).
    """
    cluster = load_cluster(cluster_file)
    names = select_nodes(cluster, nodeset, "up")
    # Held from before the secrets are made to the end: one `up` of the cluster at a time.
    locked = contextlib.ExitStack()
    if not dry_run:
        try:
            locked.enter_context(_cluster_lock(cluster.name, wait))
        except LockBusy as exc:
            fail(f"piherd up: {exc}; try again when it is done", EXIT_FAILED)
    with locked:
        try:
            secrets = load_or_create_secrets(cluster)
        except SecretsError as exc:
            fail(f"piherd up: {exc}")
        password = None
        if ask_pass:
            password = click.prompt("Password of the nodes' admin user", hide_input=True, err=True)
        options = UpOptions(dry_run=dry_run, network_timeout=timeout, purge=purge)
        reporter = _reporter(names, as_json=as_json, dry_run=dry_run)
        live = reporter if isinstance(reporter, LiveReporter) else contextlib.nullcontext()
        results: dict[str, NodeResult] = {}  # filled as nodes go, kept on Ctrl-C
        try:
            with live:
                result = asyncio.run(
                    up_cluster(
                        cluster,
                        names,
                        options,
                        reporter,
                        secrets,
                        password=password,
                        results=results,
                    )
                )
        except KeyboardInterrupt:
            for name in names:
                if name not in results:
                    results[name] = NodeResult(name, "interrupted", reason="before any change")
            reporter.summary(results)
            click.echo(INTERRUPTED_HINT, err=True)
            sys.exit(EXIT_INTERRUPTED)
        if dry_run and not as_json:
            print_dry_run(sys.stdout, result.plans)
        reporter.summary(result.results)
        if not dry_run:
            _refresh_ssh_config(cluster)
        if result.failed:
            sys.exit(EXIT_FAILED)


def _refresh_ssh_config(cluster: Cluster) -> None:
    """Nodes may have moved to their static addresses: `piherd ssh-config`'s file follows."""
    try:
        path = asyncio.run(write_ssh_config(cluster, AccessPaths.of(os.environ)))
    except (AccessError, OSError) as exc:
        click.echo(f"piherd up: ssh config not refreshed: {exc}", err=True)
        return
    click.echo(f"ssh config refreshed: ssh -F {path} NODE (or: piherd ssh NODE)", err=True)


def _reporter(names: list[str], *, as_json: bool, dry_run: bool) -> Any:
    """JSON lines, a live table on a terminal, or plain lines (a dry run's on stderr)."""
    if as_json:
        return JsonReporter(sys.stdout, dry_run=dry_run)
    console = Console(stderr=False)
    if console.is_terminal and not dry_run:
        return LiveReporter(console, names)
    # A dry run keeps stdout for the plan; its progress lines go to stderr.
    return PlainReporter(sys.stderr if dry_run else sys.stdout, dry_run=dry_run)


def _cluster_lock(cluster: str, wait: float) -> contextlib.AbstractContextManager[LockHolder]:
    """This machine's `up` lock of the cluster, saying who holds it while waiting."""

    def waiting(holder: LockHolder | None) -> None:
        who = holder.describe() if holder is not None else "another piherd process"
        click.echo(
            f"piherd up: cluster {cluster} is locked by {who}; waiting up to {wait:g}s", err=True
        )

    return cluster_lock(cluster, "up", wait=wait, command="piherd up", on_wait=waiting)
