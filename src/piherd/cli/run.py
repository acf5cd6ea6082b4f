"""`piherd run NODESET -- COMMAND...`: one command on a node set, outputs folded like clush -b."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
from collections.abc import Callable, Collection, Coroutine, MutableMapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from piherd.app.remote import ClusterSession, on_session
from piherd.cli.common import (
    MAX_FANOUT,
    Seconds,
    cluster_file_option,
    fail,
    load_cluster,
    require_utf8,
    select_nodes,
)
from piherd.model import Cluster
from piherd.runner import fold
from piherd.transport.base import CommandResult

if TYPE_CHECKING:
    from rich.progress import Progress

# Characters that mean "this one word is a shell command line", as with ssh and clush.
_SHELL_CHARS = set(" \t\n|&;<>()$`\\\"'*?[]#~=%{}")

Tick = Callable[[CommandResult], None]
Job = Callable[
    [ClusterSession, MutableMapping[str, CommandResult], Tick],
    Coroutine[Any, Any, list[CommandResult]],
]


def words_argv(words: Sequence[str]) -> list[str]:
    """COMMAND words as argv; one word holding shell syntax runs under `sh -c` (like ssh)."""
    if len(words) == 1 and _SHELL_CHARS & set(words[0]):
        return ["sh", "-c", words[0]]
    return list(words)


def piped_input() -> bytes | None:
    """Standard input when it is a pipe or a file (sent to every node, as ssh does).

    A terminal, /dev/null, a closed stdin or one without a file descriptor (a test
    runner's) give None: nothing is read, nothing sent.
    """
    stdin = sys.stdin
    try:
        mode = os.fstat(stdin.fileno()).st_mode
    except (AttributeError, OSError, ValueError):  # None, closed, or no descriptor
        return None
    if not (stat.S_ISFIFO(mode) or stat.S_ISREG(mode)):
        return None
    return stdin.buffer.read() or None


def timing_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """--timeout, --fanout, --sudo, --json, --progress: shared by run and copy."""
    for option in reversed(
        [
            click.option(
                "-t", "--timeout", type=Seconds(0.1), default=None,
                help="Seconds each node has to connect and finish; it is stopped after.",
            ),
            click.option(
                "--fanout", type=click.IntRange(1, MAX_FANOUT), default=64, show_default=True,
                help="Nodes worked on at the same time.",
            ),
            click.option("--sudo", is_flag=True, help="Run as root on the nodes (sudo -n)."),
            click.option(
                "--json", "as_json", is_flag=True,
                help="One JSON object per node and line: node, rc, stdout, stderr, error, elapsed.",
            ),
            click.option(
                "--progress/--no-progress", default=None,
                help="Progress bar on stderr (default: when stderr is a terminal).",
            ),
        ]
    ):  # fmt: skip
        function = option(function)
    return function


def execute(
    cluster: Cluster,
    names: Sequence[str],
    job: Job,
    *,
    timeout: float | None,
    progress: bool,
    streamed: set[str] | None = None,
) -> tuple[list[CommandResult], bool]:
    """Run `job` over the cluster; (results in node order, interrupted by Ctrl-C or SIGTERM).

    With `streamed` (--json) each node's line is printed the moment it finishes and its
    name added there (report() then prints only the nodes that never finished).
    """
    collected: dict[str, CommandResult] = {}
    bar = _progress_bar() if progress else None
    bar_task = bar.add_task("nodes", total=len(names)) if bar is not None else None

    def tick(result: CommandResult) -> None:
        if streamed is not None:
            click.echo(json.dumps(fold.result_json(result), ensure_ascii=False))
            sys.stdout.flush()
            streamed.add(result.node)
        if bar is not None and bar_task is not None:
            bar.advance(bar_task)

    async def main() -> list[CommandResult]:
        return await on_session(cluster, lambda s: job(s, collected, tick), timeout=timeout)

    interrupted = False
    try:
        if bar is not None:
            bar.start()
        results = asyncio.run(main())
    except KeyboardInterrupt:
        interrupted = True
        results = [
            collected.get(name) or CommandResult(name, None, error="interrupted") for name in names
        ]
    finally:
        if bar is not None:
            bar.stop()
    return results, interrupted


def _progress_bar() -> Progress:
    # Imported here: rich costs ~0.1 s of start-up that a non-terminal run never needs.
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(
        TextColumn("[bold]piherd"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )


def report(
    results: Sequence[CommandResult],
    *,
    as_json: bool,
    folded: bool,
    streamed: Collection[str] = (),
) -> None:
    """Outputs on stdout (folded, prefixed or JSON), node stderr, reasons and summary on stderr.

    `streamed`: nodes whose JSON line execute() already printed as they finished.
    """
    if as_json:
        for result in (r for r in results if r.node not in streamed):
            click.echo(json.dumps(fold.result_json(result), ensure_ascii=False))
    else:
        render = fold.render_folded if folded else fold.render_prefixed
        click.echo(render({r.node: r.stdout for r in results}), nl=False)
        click.echo(render({r.node: r.stderr for r in results}), nl=False, err=True)
    for line in fold.error_lines(results):
        click.echo(line, err=True)
    click.echo(fold.summary_line(results), err=True)


@click.command("run", context_settings={"allow_interspersed_args": False})
@cluster_file_option
@timing_options
@click.option("--no-fold", is_flag=True, help="Print `node: line` for every line instead.")
@click.option(
    "-n", "--no-stdin", is_flag=True,
    help="Send nothing to the commands' stdin. By default piped stdin is read whole "
    "first and sent to every node (as ssh and clush do).",
)  # fmt: skip
@click.argument("nodeset")
@click.argument("command_words", metavar="[--] COMMAND...", nargs=-1, required=True)
def command(
    cluster_file: Path,
    timeout: float | None,
    fanout: int,
    sudo: bool,
    as_json: bool,
    progress: bool | None,
    no_fold: bool,
    no_stdin: bool,
    nodeset: str,
    command_words: tuple[str, ...],
) -> None:
    """Run COMMAND on every node of NODESET (`node[02-04]`, `@workers`, `@all!@head`).

    \b
    Identical outputs are printed once under their node set; stderr is kept apart;
    a summary line ends the run. Exit status: 0 all ok, 1 some command failed,
    3 some node unreachable or timed out, 2 bad input, 130 interrupted.
    One quoted word with shell syntax runs under `sh -c`:  piherd run @all -- 'df -h | tail -1'
    Piped stdin goes to every node:  piherd run @all -- tee /tmp/motd < motd  (-n: none)
    """
    if command_words[:1] == ("--",):  # click keeps "--" once args stop being interspersed
        command_words = command_words[1:]
    if not command_words:
        fail("piherd run: no COMMAND given (piherd run NODESET -- COMMAND...)")
    require_utf8((nodeset, *command_words), "run")
    cluster = load_cluster(cluster_file)
    names = select_nodes(cluster, nodeset, "run")
    argv = words_argv(command_words)
    data = None if no_stdin else piped_input()
    show = progress if progress is not None else (sys.stderr.isatty() and not as_json)

    async def job(
        session: ClusterSession,
        collected: MutableMapping[str, CommandResult],
        tick: Callable[[CommandResult], None],
    ) -> list[CommandResult]:
        return await session.run(
            names, argv, sudo=sudo, input=data, timeout=timeout, fanout=fanout,
            progress=tick, results=collected,
        )  # fmt: skip

    streamed: set[str] | None = set() if as_json else None
    results, interrupted = execute(
        cluster, names, job, timeout=timeout, progress=show, streamed=streamed
    )
    report(results, as_json=as_json, folded=not no_fold, streamed=streamed or ())
    sys.exit(fold.exit_code(results, interrupted=interrupted))
