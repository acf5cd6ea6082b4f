"""`piherd copy SRC... NODESET:DEST` and `piherd copy --gather NODESET:SRC DEST`."""

from __future__ import annotations

import sys
from collections.abc import Callable, MutableMapping
from pathlib import Path

import click

from piherd.app.remote import ClusterSession
from piherd.cli.common import cluster_file_option, fail, load_cluster, require_utf8, select_nodes
from piherd.cli.run import execute, report, timing_options
from piherd.runner import fold
from piherd.transport.base import CommandResult


def split_remote(text: str) -> tuple[str, str]:
    """`NODESET:PATH` -> (nodeset, path); exit 2 when there is no colon or a part is empty."""
    nodeset, colon, path = text.partition(":")
    if not colon or not nodeset or not path:
        fail(f"piherd copy: expected NODESET:PATH, got {text!r}")
    return nodeset, path


@click.command("copy")
@cluster_file_option
@timing_options
@click.option("--gather", is_flag=True, help="Fetch NODESET:SRC from every node into DEST/<node>/.")
@click.argument("paths", metavar="SRC... NODESET:DEST | --gather NODESET:SRC DEST", nargs=-1)
def command(
    cluster_file: Path,
    timeout: float | None,
    fanout: int,
    sudo: bool,
    as_json: bool,
    progress: bool | None,
    gather: bool,
    paths: tuple[str, ...],
) -> None:
    """Copy files and directories to a node set, or gather them from it (modes kept).

    \b
    piherd copy slurm.conf munge.key 'node[02-04]:/etc/slurm/'
    piherd copy --sudo ./site/ @workers:/opt/site
    piherd copy --gather @all:/var/log/syslog ./logs     # -> ./logs/<node>/syslog
    Exit status as for `piherd run`: 0 ok, 1 failed on some node, 3 unreachable, 2 bad input.
    """
    if len(paths) < 2 or (gather and len(paths) != 2):
        fail("piherd copy: need SRC... NODESET:DEST, or --gather NODESET:SRC DEST")
    require_utf8(paths, "copy")
    cluster = load_cluster(cluster_file)
    if gather:
        nodeset, source = split_remote(paths[0])
        dest = Path(paths[1])
        if dest.exists() and not dest.is_dir():
            fail(f"piherd copy: {dest} exists and is not a directory")
    else:
        nodeset, remote = split_remote(paths[-1])
        sources = [Path(p) for p in paths[:-1]]
        missing = [str(p) for p in sources if not p.exists() and not p.is_symlink()]
        if missing:
            fail(f"piherd copy: no such file or directory: {', '.join(missing)}")
    names = select_nodes(cluster, nodeset, "copy")
    show = progress if progress is not None else (sys.stderr.isatty() and not as_json)

    async def job(
        session: ClusterSession,
        collected: MutableMapping[str, CommandResult],
        tick: Callable[[CommandResult], None],
    ) -> list[CommandResult]:
        if gather:
            return await session.gather(
                names, source, dest, sudo=sudo, timeout=timeout, fanout=fanout,
                progress=tick, results=collected,
            )  # fmt: skip
        return await session.copy(
            sources, names, remote, sudo=sudo, timeout=timeout, fanout=fanout,
            progress=tick, results=collected,
        )  # fmt: skip

    streamed: set[str] | None = set() if as_json else None
    results, interrupted = execute(
        cluster, names, job, timeout=timeout, progress=show, streamed=streamed
    )
    report(results, as_json=as_json, folded=True, streamed=streamed or ())
    sys.exit(fold.exit_code(results, interrupted=interrupted))
