"""`piherd identify NODE`: blink a node's LEDs until stopped, to find it in the rack."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from piherd.app.identify import IdentifyError, identify, stop_identify
from piherd.cli.common import Seconds, cluster_file_option, fail, load_cluster, select_nodes


@click.command("identify")
@cluster_file_option
@click.argument("node")
@click.option(
    "--seconds",
    type=Seconds(1.0),
    default=None,
    help="Stop after this many seconds [default: until Ctrl-C].",
)
@click.option("--off", is_flag=True, help="Stop a node's blinking (one a lost session left).")
def command(cluster_file: Path, node: str, seconds: float | None, off: bool) -> None:
    """Blink NODE's LEDs (the identify pattern of [services.leds]) until stopped.

    Needs [services.leds] enabled = true and `piherd up` done: the LED agent on the node
    shows `identify` while /run/piherd-leds/identify exists; this command creates it and
    removes it again on Ctrl-C, at --seconds, or with --off.
    """
    cluster = load_cluster(cluster_file)
    names = select_nodes(cluster, node, "identify")
    if len(names) != 1:
        fail(f"piherd identify: name one node, not {len(names)}")
    try:
        if off:
            asyncio.run(stop_identify(cluster, names[0]))
            return
        if seconds is None:
            click.echo(f"{names[0]}: blinking; Ctrl-C to stop", err=True)
        asyncio.run(identify(cluster, names[0], seconds))
    except IdentifyError as exc:
        fail(f"piherd identify: {exc}", 1)
