"""`piherd check`: validate cluster.toml and report every problem at once."""

from __future__ import annotations

import json
from pathlib import Path

import click

from piherd.cli.common import EXIT_USAGE, chosen_cluster_file
from piherd.model import ConfigError, fold
from piherd.services import load


@click.command("check")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print problems as JSON for scripts.")
def command(file: Path | None, as_json: bool) -> None:
    """Validate a cluster file (default: $PIHERD_CLUSTER, else ./cluster.toml, else the
    current cluster that `piherd sim up` or `piherd use` set).

    Every problem is listed with file, line, field, what is wrong and how to fix it.
    Exit status: 0 when the file is valid, 2 when it is not.
    """
    path = chosen_cluster_file(file)
    try:
        cluster = load(path)
    except ConfigError as exc:
        if as_json:
            problems = [
                {
                    "file": p.file,
                    "line": p.line,
                    "field": p.field,
                    "message": p.message,
                    "hint": p.hint,
                }
                for p in exc.problems
            ]
            click.echo(json.dumps({"valid": False, "problems": problems}, indent=2))
        else:
            click.echo(exc.render(), err=True)
        raise SystemExit(EXIT_USAGE) from None
    services = [s.name for s in cluster.services.enabled() if s.name]
    if as_json:
        click.echo(
            json.dumps(
                {
                    "valid": True,
                    "nodes": len(cluster.nodes),
                    "head": cluster.head.name,
                    "services": services,
                },
                indent=2,
            )
        )
        return
    key = Path(cluster.ssh_public_key).expanduser()
    if cluster.ssh_public_key and not key.is_file():
        # Not an error: the file is valid, and the key may be made later (ssh-keygen).
        click.echo(
            f"{path}: note: cluster.ssh_public_key {key} does not exist yet; "
            "`piherd up` needs it (ssh-keygen -t ed25519)",
            err=True,
        )
    click.echo(
        f"{path}: ok: cluster {cluster.name!r}, {len(cluster.nodes)} nodes "
        f"({fold(n.name for n in cluster.nodes)}), head {cluster.head.name}, "
        f"services: {', '.join(services) or 'none'}"
    )
