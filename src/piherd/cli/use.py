"""`piherd use`: show or set the current cluster, the one commands read without -f."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from piherd.app.current_cluster import (
    CurrentError,
    choose,
    clear_setting,
    read_setting,
    resolve_cluster_ref,
    setting_path,
    write_setting,
)
from piherd.cli.common import fail, require_utf8


@click.command("use")
@click.argument("ref", required=False, metavar="[PATH|NAME]")
@click.option("--clear", is_flag=True, help="Forget the current cluster.")
@click.option("--json", "as_json", is_flag=True, help="Print the choice as JSON for scripts.")
def command(ref: str | None, clear: bool, as_json: bool) -> None:
    """Show or set the current cluster: the cluster.toml every command reads when it is
    given no -f, $PIHERD_CLUSTER is unset and there is no ./cluster.toml here.

    \b
    piherd use                     # which file commands read here, and why
    piherd use aux                 # a virtual cluster by name (`piherd sim up --name aux`)
    piherd use ~/pis/cluster.toml  # a cluster file
    piherd use --clear

    `piherd sim up` makes the cluster it starts current, `piherd sim down` forgets it.
    The setting is per user: $XDG_CONFIG_HOME/piherd/current (~/.config/piherd/current),
    one absolute path. `sim` subcommands act on the current virtual cluster too.
    """
    env = os.environ
    try:
        if clear:
            clear_setting(env)
        elif ref is not None:
            require_utf8([ref], "use")
            write_setting(env, resolve_cluster_ref(ref))
        current = read_setting(env)
        choice = choose(None, env, Path.cwd())
    except CurrentError as exc:
        fail(f"piherd use: {exc}")
    except OSError as exc:
        fail(f"piherd use: cannot write {setting_path(env)}: {exc.strerror}", 1)
    if as_json:
        here = {"file": str(choice.path), "source": choice.source}
        click.echo(json.dumps({"current": None if current is None else str(current), "here": here}))
        return
    click.echo(f"current cluster: {current if current is not None else 'none'}")
    if choice.source != "current":
        click.echo(f"here, commands read {choice.path} ({choice.source} comes first)")
