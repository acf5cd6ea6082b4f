"""`piherd bench hpl`: the cluster's HPL Gflops on one node and on a node set."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import click
from rich import box
from rich.console import Console
from rich.table import Table

from piherd.app.hpl import MAX_FRACTION, HplError, HplRun, as_dicts, hpl
from piherd.cli.common import (
    FiniteFloat,
    Seconds,
    cluster_file_option,
    fail,
    load_cluster,
    select_nodes,
)

EXIT_FAILED = 1


@click.group("bench")
def command() -> None:
    """Benchmarks of the cluster itself (run through Slurm, like any job)."""


def runs_table(runs: list[HplRun]) -> Table:
    """One row per run: size, time, Gflops, efficiency, hottest temperature, throttling."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("nodes", "ranks", "N", "NB", "PxQ", "time s", "Gflops", "efficiency",
                   "max temp C", "throttled"):  # fmt: skip
        table.add_column(column, overflow="fold")
    for run in runs:
        temps = [t for t in run.max_temp_c.values() if t is not None]
        bits = sorted({b for b in run.throttled.values() if b != "0x0"})
        table.add_row(
            run.nodes,
            str(run.ranks),
            str(run.n),
            str(run.nb),
            run.grid,
            f"{run.seconds:g}",
            f"{run.gflops:.3f}",
            "-" if run.efficiency is None else f"{run.efficiency:.0%}",
            f"{max(temps):.1f}" if temps else "-",
            ", ".join(bits) or "no",
        )
    return table


@command.command("hpl")
@cluster_file_option
@click.argument("nodeset", required=False, default="@compute")
@click.option(
    "--fraction",
    type=FiniteFloat(0.0, MAX_FRACTION, min_open=True),
    default=0.5,
    show_default=True,
    help="Share of each node's memory (as Slurm knows it) the matrix fills. 0.5-0.8 for "
    "real numbers; a small one (0.001) proves the plumbing in seconds.",
)
@click.option(
    "--timeout",
    type=Seconds(1),
    default=3600.0,
    show_default=True,
    help="Seconds each run may take.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON for scripts.")
def hpl_command(cluster_file: Path, nodeset: str, fraction: float, timeout: float,
                as_json: bool) -> None:  # fmt: skip
    """Run HPL (Debian's hpcc, through Slurm) on the first node of NODESET, then on all.

    Each run is one batch job with one MPI rank per CPU, N sized so the matrix fills
    --fraction of the nodes' memory. Reports Gflops, the efficiency of the big run
    against N x the one-node run, and each node's hottest temperature and throttling
    bits seen during the run (a Pi that throttles is the usual reason for a poor
    efficiency). hpcc is installed on nodes that lack it. Needs Slurm, Open MPI and
    the shared storage (the run's files go there).

    Exit status: 0 when every run finished, 1 when one failed, 2 on bad input.
    """
    cluster = load_cluster(cluster_file)
    names = select_nodes(cluster, nodeset, "bench hpl")
    try:
        runs = asyncio.run(hpl(cluster, names, fraction=fraction, timeout=timeout))
    except HplError as exc:
        fail(f"piherd bench hpl: {exc}", EXIT_FAILED)
    if as_json:
        click.echo(json.dumps({"runs": as_dicts(runs)}, indent=2))
        return
    console = Console() if Console().is_terminal else Console(width=160)
    console.print(runs_table(runs))
