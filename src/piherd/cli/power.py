"""`piherd power on|off|cycle|status NODESET`: switch nodes through their power controllers."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from piherd.app.power_control import PowerOutcome, PowerSetupError, power
from piherd.cli.common import cluster_file_option, fail, load_cluster, require_utf8, select_nodes
from piherd.model.escape import has_unsafe_char

MAX_REASON = 200

EPILOG = """\b
Controllers come from [services.power] in cluster.toml (drivers: ipmi, poe-snmp,
clusterhat, turingpi, command, ssh, sim); their passwords and communities from
secrets_dir/power/NAME (0600). Every on, off and cycle is logged, with who and why, to
$PIHERD_POWER_LOG or ~/.local/state/piherd/power.log (one JSON line each).

\b
Examples:
  piherd power status @all
  piherd power cycle node07 --reason "hung after kernel panic" --wait
  piherd power on @workers --wait --json
"""


def _line(outcome: PowerOutcome) -> str:
    if not outcome.ok:
        return f"{outcome.node}: {outcome.action} FAILED: {outcome.error}"
    if outcome.action == "status":
        return f"{outcome.node}: {outcome.state}"
    if outcome.action == "wait":
        return f"{outcome.node}: up (SSH answers)"
    return f"{outcome.node}: {outcome.action} ({outcome.driver})"


def _check_reason(reason: str) -> str:
    if len(reason) > MAX_REASON or has_unsafe_char(reason):
        fail(f"piherd power: --reason must be one line of at most {MAX_REASON} characters")
    return reason


def _go(
    action: str,
    cluster_file: Path,
    nodeset: str,
    reason: str,
    wait: bool,
    as_json: bool,
    log: Path | None,
) -> None:
    require_utf8([nodeset, reason], "power")
    reason = _check_reason(reason)
    cluster = load_cluster(cluster_file)
    names = select_nodes(cluster, nodeset, "power")

    def show(outcome: PowerOutcome) -> None:
        if (sys.stderr if not outcome.ok and not as_json else sys.stdout) is None:
            return  # started with that descriptor closed (Slurm's SuspendProgram is)
        if as_json:
            click.echo(json.dumps(outcome.as_dict(), sort_keys=True))
        else:
            click.echo(_line(outcome), err=not outcome.ok)

    try:
        outcomes = asyncio.run(
            power(cluster, names, action, reason=reason, wait=wait, log_path=log, progress=show)
        )
    except PowerSetupError as exc:
        fail(f"piherd power: {cluster_file}: {exc}")
    if not all(o.ok for o in outcomes):
        raise SystemExit(1)


def _options(with_wait: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        function = click.option(
            "--json", "as_json", is_flag=True, help="One JSON object per line."
        )(function)
        function = click.option(
            "--log",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help="The power log [default: $PIHERD_POWER_LOG or ~/.local/state/piherd/power.log].",
        )(function)
        if with_wait:
            function = click.option(
                "--wait",
                is_flag=True,
                help="Wait until each node's SSH answers (services.power.wait_timeout_s).",
            )(function)
            function = click.option(
                "--reason", default="", help="Why: written to the power log with your user name."
            )(function)
        function = click.argument("nodeset")(function)
        return cluster_file_option(function)

    return decorate


@click.group("power", epilog=EPILOG)
def command() -> None:
    """Power nodes on or off, cycle them, or ask their power state."""


@command.command("on", epilog=EPILOG)
@_options(with_wait=True)
def on(
    cluster_file: Path, nodeset: str, reason: str, wait: bool, as_json: bool, log: Path | None
) -> None:
    """Power NODESET on, one node every services.power.stagger_s seconds."""
    _go("on", cluster_file, nodeset, reason, wait, as_json, log)


@command.command("cycle", epilog=EPILOG)
@_options(with_wait=True)
def cycle(
    cluster_file: Path, nodeset: str, reason: str, wait: bool, as_json: bool, log: Path | None
) -> None:
    """Power NODESET off, wait services.power.cycle_off_s, power it on again (staggered)."""
    _go("cycle", cluster_file, nodeset, reason, wait, as_json, log)


@command.command("off", epilog=EPILOG)
@_options(with_wait=False)
@click.option("--reason", default="", help="Why: written to the power log with your user name.")
def off(cluster_file: Path, nodeset: str, reason: str, as_json: bool, log: Path | None) -> None:
    """Cut NODESET's power (the ssh driver shuts down cleanly instead)."""
    _go("off", cluster_file, nodeset, reason, False, as_json, log)


@command.command("status", epilog=EPILOG)
@_options(with_wait=False)
def status(cluster_file: Path, nodeset: str, as_json: bool, log: Path | None) -> None:
    """Print each node's power state as its controller reports it: on, off or unknown."""
    _go("status", cluster_file, nodeset, "", False, as_json, log)
