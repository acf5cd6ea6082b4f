"""Helpers every command shares: finding and loading cluster.toml, exiting with clear errors."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NoReturn

import click

from piherd.app.current_cluster import CurrentError, choose
from piherd.model import Cluster, ConfigError, NodeSetError, expand
from piherd.model.escape import shown
from piherd.services import load

EXIT_USAGE = 2  # bad input: a broken cluster.toml, an unknown node set, a bad flag
EXIT_INTERRUPTED = 130  # Ctrl-C: 128 + SIGINT, as shells report it
DAY_S = 86400.0  # the longest interval or timeout any option takes
MAX_FANOUT = 1024  # nodes worked on at once: beyond it, file descriptors run out first


class FiniteFloat(click.FloatRange):
    """A number within a range; unlike click.FloatRange, NaN is refused."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        converted = super().convert(value, param, ctx)
        if math.isnan(converted):
            self.fail(f"{value!r} is not a number", param, ctx)
        return converted


class Seconds(FiniteFloat):
    """A number of seconds within [low, high]; NaN refused."""

    name = "seconds"

    def __init__(self, low: float, high: float = DAY_S) -> None:
        super().__init__(min=low, max=high)


def chosen_cluster_file(explicit: Path | None) -> Path:
    """The cluster file to read (app.current_cluster.choose); says so on stderr when it
    comes from the current-cluster setting, or exits 2 when that setting is unusable."""
    try:
        choice = choose(explicit, os.environ, Path.cwd())
    except CurrentError as exc:
        fail(f"piherd: {exc}; fix it with `piherd use PATH|NAME` or `piherd use --clear`")
    if choice.implicit:
        click.echo(
            f"piherd: cluster {choice.path} (the current cluster; -f, $PIHERD_CLUSTER or "
            "`piherd use` choose another)",
            err=True,
        )
    return choice.path


def _resolve_file(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path:
    return chosen_cluster_file(value)


def cluster_file_option(function: click.decorators.FC) -> click.decorators.FC:
    """`-f/--file`: the cluster file; else $PIHERD_CLUSTER, ./cluster.toml, the current one."""
    return click.option(
        "-f",
        "--file",
        "cluster_file",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        callback=_resolve_file,
        show_default="$PIHERD_CLUSTER, else ./cluster.toml, else the current cluster (piherd use)",
        help="The cluster file to read.",
    )(function)


def fail(message: str, status: int = EXIT_USAGE) -> NoReturn:
    """Print `message` to stderr (no traceback) and exit with `status`."""
    click.echo(message.rstrip(), err=True)
    sys.exit(status)


def load_cluster(path: Path) -> Cluster:
    """Load and validate `path`, or print every problem and exit 2."""
    try:
        return load(path)
    except ConfigError as exc:
        fail(exc.render())


def require_utf8(words: Iterable[str], command: str) -> None:
    """Exit 2 naming the first argument that is not UTF-8 text (undecodable bytes on the
    command line arrive as lone surrogates, which no node could be sent)."""
    for word in words:
        try:
            word.encode("utf-8")
        except UnicodeEncodeError:
            fail(
                f"piherd {command}: the argument {shown(word)} is not UTF-8 text",
                EXIT_USAGE,
            )


def select_nodes(cluster: Cluster, nodeset: str, command: str) -> list[str]:
    """Expand NODESET with the cluster's groups, or exit 2 naming what is wrong."""
    try:
        names = expand(nodeset, cluster.groups, known=cluster.groups["all"])
    except NodeSetError as exc:
        fail(f"piherd {command}: {exc}")
    if not names:
        fail(f"piherd {command}: node set {nodeset!r} is empty")
    return names
