"""`piherd dashboard`: serve the live web dashboard and /metrics for the cluster."""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import socket
from pathlib import Path

import click

from piherd.cli.common import Seconds, cluster_file_option, fail, load_cluster, select_nodes
from piherd.web.app import Dashboard
from piherd.web.backend import cluster_backend
from piherd.web.guards import served_hosts

TOKEN_ENV = "PIHERD_DASHBOARD_TOKEN"  # noqa: S105 (the name of a variable)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and "localhost"."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_token(token: str | None, token_file: Path | None) -> str | None:
    """The token from --token-file, $PIHERD_DASHBOARD_TOKEN or --token (in that order).

    A source that is given must hold a token: an empty or blank one is refused, never
    taken for "no token".
    """
    if token_file is not None:
        try:
            text = token_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            fail(f"piherd dashboard: cannot read --token-file {token_file}: {why}")
        if not text:
            fail(f"piherd dashboard: --token-file {token_file} is empty")
        return text
    from_env = os.environ.get(TOKEN_ENV)
    if from_env is not None:
        if not from_env.strip():
            fail(f"piherd dashboard: ${TOKEN_ENV} is set but empty; set a token or unset it")
        return from_env.strip()
    if token is not None:
        if not token.strip():
            fail("piherd dashboard: --token is empty; give a token or leave --token out")
        return token.strip()
    return None


@click.command("dashboard")
@cluster_file_option
@click.argument("nodeset", required=False, default="@all")
@click.option("--bind", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8470, show_default=True)
@click.option(
    "--token",
    default=None,
    help=f"Require this token (header or ?token=); prefer ${TOKEN_ENV} or --token-file, "
    "which other users cannot see in the process list. Required unless --bind is loopback.",
)
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Read the token from this file (keep it mode 0600).",
)
@click.option(
    "--interval",
    type=Seconds(0.5),
    default=2.0,
    show_default=True,
    help="Seconds between health rounds.",
)
def command(
    cluster_file: Path,
    nodeset: str,
    bind: str,
    port: int,
    token: str | None,
    token_file: Path | None,
    interval: float,
) -> None:
    """Serve a live dashboard of NODESET (default @all) at http://BIND:PORT/.

    A grid of nodes coloured by health, load and temperature over the last hour, each
    node's reasons, the Slurm queue, and drain/resume buttons that act through Slurm.
    GET /metrics gives the same figures in Prometheus text format.
    """
    import uvicorn  # imported here: only this command needs the web server

    cluster = load_cluster(cluster_file)
    names = select_nodes(cluster, nodeset, "dashboard")
    secret = read_token(token, token_file)
    if not is_loopback(bind) and not secret:
        fail(
            f"piherd dashboard: --bind {bind} is reachable from other machines, so a token is "
            f"required: set ${TOKEN_ENV}, --token-file FILE or --token (or bind 127.0.0.1)"
        )
    dashboard = Dashboard(
        lambda: cluster_backend(cluster, names),
        interval=interval,
        token=secret,
        hosts=served_hosts(bind),
    )
    listener = _listen(bind, port)  # before the URL is printed: a busy port is exit 2
    shown = f"[{bind}]" if ":" in bind else bind
    click.echo(
        f"piherd dashboard on http://{shown}:{port}/" + (" (token required)" if secret else "")
    )
    config = uvicorn.Config(dashboard.app(), log_level="warning", lifespan="on")
    try:
        with contextlib.suppress(KeyboardInterrupt):
            uvicorn.Server(config).run(sockets=[listener])
    finally:
        listener.close()


def _listen(bind: str, port: int) -> socket.socket:
    """A listening socket on bind:port, or exit 2 saying the port is taken."""
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    try:
        return socket.create_server((bind, port), family=family, backlog=128)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            fail(
                f"piherd dashboard: port {port} on {bind} is already in use (another dashboard?); "
                "stop it or choose another with --port"
            )
        fail(f"piherd dashboard: cannot listen on {bind}:{port}: {exc.strerror}")
