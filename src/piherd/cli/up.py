"""`piherd up`: bring every node (or a node set) to what cluster.toml describes."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from piherd.bundle import watch_service_inputs
from piherd.cli.common import (
    EXIT_INTERRUPTED,
    cluster_file_option,
    fail,
    load_cluster,
    select_nodes,
)
from piherd.model import Cluster
from piherd.ops import askpass
from piherd.ops.desired import DesiredState, Remembered
from piherd.runner.apply import NodeResult, UpOptions, UpResult, up
from piherd.runner.progress import JsonReporter, LiveReporter, PlainReporter, print_dry_run
from piherd.secrets import Secrets, SecretsError, load_or_create_secrets
from piherd.transport.base import TransportError
from piherd.transport.pool import ConnectionPool

EXIT_FAILED = 1
INTERRUPTED_HINT = (
    "piherd up: interrupted (Ctrl-C). Every file on the nodes is whole, the old or the new "
    "one; restarts still owed are recorded on each node. Run `piherd up` again to finish."
)
REMEMBERED = "known-facts.json"  # in the secrets directory (0700): see ops.desired.Remembered


def _save(path: Path, text: str) -> None:
    """Write `path` atomically (temp file, then rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


async def _up(
    cluster: Cluster,
    names: list[str],
    options: UpOptions,
    reporter: Any,
    password: str | None,
    secrets: Secrets,
    results: dict[str, NodeResult],
) -> UpResult:
    async with ConnectionPool(cluster) as pool:
        failed: dict[str, NodeResult] = {}
        if password is not None:
            failed = await _first_contact(cluster, pool, names, password, reporter)
            results.update(failed)
        ready = [n for n in names if n not in failed]
        memory = Path(cluster.secrets_dir) / REMEMBERED
        remembered = Remembered.from_json(memory.read_text()) if memory.exists() else None
        bundle, cluster_toml = watch_service_inputs(cluster)
        build = DesiredState(secrets, remembered, piherd_bundle=bundle, cluster_toml=cluster_toml)
        result = await up(cluster, pool, build, reporter, options, ready, results)
        if not options.dry_run:
            _save(memory, build.remembered.to_json())
        return result


async def _first_contact(
    cluster: Cluster, pool: ConnectionPool, names: list[str], password: str, reporter: Any
) -> dict[str, NodeResult]:
    """--ask-pass: key installed by password, key login verified, password login off."""
    key = askpass.public_key_line(cluster)
    failed: dict[str, NodeResult] = {}

    async def one(name: str) -> None:
        reporter.phase(name, "installing the admin key (password login)")
        try:
            await askpass.install_key_by_password(cluster, name, password, key)
            transport = await pool.get(name)  # a key login: proves the key works
            await askpass.disable_password_login(transport)
        except TransportError as exc:
            failed[name] = NodeResult(name, "failed", reason=exc.reason)
            reporter.done(failed[name])

    await asyncio.gather(*(one(n) for n in names))
    return failed


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
    type=click.FloatRange(5, 3600),
    default=60.0,
    show_default=True,
    help="Seconds to reach a node at its new address after a network change.",
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
    purge: bool,
) -> None:
    """Configure NODESET (default @all): packages, files, services, in dependency order.

    \b
    The head goes first (time, storage export, DNS/DHCP, package cache, munge,
    slurmctld), then the workers in parallel (time, storage mount, munge, slurmd).
    Only what differs is changed; a second run changes nothing. What piherd created
    and no longer renders (files, units it started) is removed; packages with --purge.
    Exit status: 0 all nodes done, 1 some node failed, 2 bad input, 130 interrupted
    (Ctrl-C: nodes keep whole files, and the next run finishes the job).
    """
    cluster = load_cluster(cluster_file)
    names = select_nodes(cluster, nodeset, "up")
    try:
        secrets = load_or_create_secrets(cluster)
    except SecretsError as exc:
        fail(f"piherd up: {exc}")
    password = None
    if ask_pass:
        password = click.prompt("Password of the nodes' admin user", hide_input=True, err=True)
    options = UpOptions(dry_run=dry_run, network_timeout=timeout, purge=purge)
    console = Console(stderr=False)
    reporter: Any
    if as_json:
        reporter = JsonReporter(sys.stdout)
    elif console.is_terminal and not dry_run:
        reporter = LiveReporter(console, names)
    else:
        # A dry run keeps stdout for the plan; its progress lines go to stderr.
        reporter = PlainReporter(sys.stderr if dry_run else sys.stdout)
    live = reporter if isinstance(reporter, LiveReporter) else contextlib.nullcontext()
    results: dict[str, NodeResult] = {}  # filled as nodes go, kept on Ctrl-C
    try:
        with live:
            result = asyncio.run(_up(cluster, names, options, reporter, password, secrets, results))
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
    if result.failed:
        sys.exit(EXIT_FAILED)
