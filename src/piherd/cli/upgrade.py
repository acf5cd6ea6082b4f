"""`piherd upgrade`: a rolling package upgrade through Slurm's drain, canary first."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import click
from rich.console import Console
from rich.table import Table

from piherd.app.cluster_lock import LockBusy, cluster_lock
from piherd.app.upgrade import new_outcomes, upgrade_cluster
from piherd.app.upgrade_steps import UpgradeOptions
from piherd.cli.common import (
    EXIT_INTERRUPTED,
    Seconds,
    cluster_file_option,
    fail,
    load_cluster,
    select_nodes,
)
from piherd.model import Cluster
from piherd.model.cluster import OS_RELEASES
from piherd.model.nodecheck import fold_names
from piherd.ops.rollout import FAILED, INTERRUPTED, BatchSize, NodeOutcome, parse_batch
from piherd.secrets import SecretsError, load_or_create_secrets
from piherd.services import netboot

EXIT_FAILED = 1
STOP_HINT = (
    "piherd upgrade: stopping (Ctrl-C): nodes waiting for their jobs go back into service "
    "unchanged; nodes being upgraded finish first. Ctrl-C again to cut them off (they then "
    "stay drained until the next `piherd upgrade`)."
)


class _BatchType(click.ParamType):  # type: ignore[type-arg]
    name = "N|P%"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, BatchSize):
            return value
        try:
            return parse_batch(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class PlainProgress:
    """One line per step, UTC time first, for terminals, logs and pipes."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out

    def _line(self, text: str) -> None:
        print(f"{time.strftime('%H:%M:%S', time.gmtime())} {text}", file=self.out, flush=True)

    def step(self, node: str, step: str, text: str) -> None:
        self._line(f"{node} {step}: {text}")

    def batch(self, index: int, nodes: Sequence[str], canary: bool) -> None:
        what = "canary" if canary else f"batch {index}"
        self._line(f"--- {what}: {', '.join(nodes)}")

    def note(self, text: str) -> None:
        self._line(text)


class JsonProgress:
    """JSON lines: {"event": "step"|"batch"|"note", ..., "time": epoch seconds}."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out

    def emit(self, record: dict[str, Any]) -> None:
        record["time"] = round(time.time(), 3)
        print(json.dumps(record, sort_keys=True), file=self.out, flush=True)

    def step(self, node: str, step: str, text: str) -> None:
        self.emit({"event": "step", "node": node, "step": step, "text": text})

    def batch(self, index: int, nodes: Sequence[str], canary: bool) -> None:
        self.emit({"event": "batch", "batch": index, "nodes": list(nodes), "canary": canary})

    def note(self, text: str) -> None:
        self.emit({"event": "note", "text": text})


def report_table(outcomes: Mapping[str, NodeOutcome], title: str = "piherd upgrade") -> Table:
    """One row per node, in rollout order: batch, state, packages, Slurm, reason."""
    table = Table(title=title)
    for column in ("node", "batch", "state", "packages", "slurm", "reason"):
        table.add_column(column, overflow="fold")
    for o in outcomes.values():
        batch = f"{o.batch} (canary)" if o.canary else str(o.batch)
        packages = ", ".join(o.packages) if o.packages else "-"
        table.add_row(o.node, batch, o.state, packages, o.slurm or "-", o.reason)
    return table


@contextlib.contextmanager
def on_ctrl_c(loop: asyncio.AbstractEventLoop, stop: asyncio.Event, hint: Any) -> Iterator[None]:
    """Ctrl-C (or SIGTERM) once: `stop`; twice: cancel the rollout's task."""
    task = asyncio.current_task()

    def on_signal() -> None:
        if not stop.is_set():
            stop.set()
            hint()
        elif task is not None:
            task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    try:
        yield
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


@click.command("upgrade")
@cluster_file_option
@click.argument("nodeset", required=False, default="@workers")
@click.option(
    "--canary",
    type=click.IntRange(0, 1000),
    default=1,
    show_default=True,
    help="Nodes upgraded first, alone; the rollout goes on only if they pass.",
)
@click.option(
    "--batch",
    "batch",
    type=_BatchType(),
    default="1",
    show_default=True,
    help="Nodes upgraded at once after the canary: a count (4) or a share (25%).",
)
@click.option(
    "--reboot",
    type=click.Choice(["auto", "never"]),
    default="auto",
    show_default=True,
    help="auto: reboot a node that needs it (/run/reboot-required, a newer kernel).",
)
@click.option(
    "--requeue",
    is_flag=True,
    help="Requeue the jobs running on a drained node instead of waiting for them.",
)
@click.option(
    "--release",
    type=click.Choice(OS_RELEASES),
    default=None,
    help="A major release upgrade to this release (apt sources switched, "
    "full-upgrade, reboot). See docs/upgrade.md first.",
)
@click.option(
    "--drain-timeout",
    type=Seconds(0),
    default=0.0,
    show_default=True,
    help="Seconds to wait for a drained node's jobs; 0: as long as they run.",
)
@click.option(
    "--reboot-timeout",
    type=Seconds(10),
    default=600.0,
    show_default=True,
    help="Seconds a rebooting node has to answer SSH again.",
)
@click.option(
    "--gate-timeout",
    type=Seconds(1),
    default=300.0,
    show_default=True,
    help="Seconds an upgraded node has to pass the health gate.",
)
@click.option(
    "--wait",
    type=Seconds(0),
    default=0.0,
    show_default=True,
    help="Seconds to wait while a `piherd up` of this cluster runs (0: refuse).",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Show the batches, each node's Slurm state, jobs and pending packages "
    "(from its current package lists); change nothing.",
)
@click.option("--json", "as_json", is_flag=True, help="JSON lines of steps and a summary.")
def command(
    cluster_file: Path,
    nodeset: str,
    canary: int,
    batch: BatchSize,
    reboot: str,
    requeue: bool,
    release: str | None,
    drain_timeout: float,
    reboot_timeout: float,
    gate_timeout: float,
    wait: float,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Upgrade the packages of NODESET (default @workers) without killing jobs.

    \b
    The canary goes first, then the others, --batch at a time; the head (when in
    NODESET) goes last. For each node of a batch:
      1. drain it in Slurm (reason "piherd: upgrade"), wait for its jobs to end
         (or requeue them with --requeue);
      2. apt-get update, apt-get upgrade (noninteractive; edited config files kept);
      3. reboot when one is owed (--reboot auto), wait until SSH answers;
      4. `piherd up` of the batch, so files and services are as cluster.toml says;
      5. health gate: no critical health finding, slurmd active, slurmctld hearing
         from it, shared storage mounted;
      6. resume it in Slurm.
    The first batch with a failed node stops the rollout: the failed node stays
    drained with the reason, later nodes are not touched. A node an admin drained is
    upgraded but never resumed. `piherd watch` leaves nodes the upgrade drained alone.
    Ctrl-C: nodes still waiting for jobs go back into service unchanged, nodes being
    upgraded finish; a second Ctrl-C cuts those off (they stay drained, and the next
    `piherd upgrade` finishes them). Exit status: 0 every node upgraded, 1 the rollout
    stopped on a failure, 2 bad input, 130 interrupted.
    """
    cluster = load_cluster(cluster_file)
    names = select_nodes(cluster, nodeset, "upgrade")
    if netbooted := [n for n in names if n in netboot.settings_of(cluster).node_models]:
        fail(f"piherd upgrade: {fold_names(netbooted)} boot(s) from the head's shared root: "
             "their packages are the root's. Upgrade the head, then `piherd netboot build` "
             "and `piherd reset` (docs/netboot.md)")  # fmt: skip
    if release is not None:
        nodes = [n for n in cluster.nodes if n.name in names]
        if done := [n.name for n in nodes if _steps(n.os, release) < 1]:
            fail(f"piherd upgrade: --release {release}: {', '.join(done)} already run "
                 f"{release} or later (cluster.toml `os`)")  # fmt: skip
        if far := [n.name for n in nodes if _steps(n.os, release) > 1]:
            fail(f"piherd upgrade: --release {release}: {', '.join(far)} would skip a release; "
                 "Debian upgrades one release at a time")  # fmt: skip
    options = UpgradeOptions(
        canary=canary, batch=batch, reboot=reboot, requeue=requeue, release=release or "",
        dry_run=dry_run, drain_timeout=drain_timeout, reboot_timeout=reboot_timeout,
        gate_timeout=gate_timeout,
    )  # fmt: skip
    locked = contextlib.ExitStack()
    if not dry_run:
        try:  # the same lock as `piherd up`: the upgrade runs `up` on each batch
            locked.enter_context(
                cluster_lock(cluster.name, "up", wait=wait, command="piherd upgrade")
            )
        except LockBusy as exc:
            fail(f"piherd upgrade: {exc}; try again when it is done", EXIT_FAILED)
    with locked:
        run_rollout(cluster, names, options, as_json, command="piherd upgrade", hint=STOP_HINT)


def run_rollout(
    cluster: Cluster,
    names: list[str],
    options: UpgradeOptions,
    as_json: bool,
    *,
    command: str,
    hint: str,
) -> None:
    """Run the rollout (an upgrade, or a reset) with progress lines, Ctrl-C handling and
    the report, then exit with its status (0 when every node went through)."""
    try:
        secrets = load_or_create_secrets(cluster)
    except SecretsError as exc:
        fail(f"{command}: {exc}")
    progress: PlainProgress | JsonProgress = (
        JsonProgress(sys.stdout) if as_json else PlainProgress(sys.stdout)
    )
    outcomes = new_outcomes(cluster, names, options)

    async def main() -> str:
        stop = asyncio.Event()
        say = (lambda: progress.note(hint)) if as_json else (
            lambda: click.echo(hint, err=True))  # fmt: skip
        with on_ctrl_c(asyncio.get_running_loop(), stop, say):
            return await upgrade_cluster(cluster, options, progress, secrets, outcomes, stop)

    try:
        stopped = asyncio.run(main())
    # KeyboardInterrupt: a Ctrl-C after the rollout ended, before its handler was gone.
    except (asyncio.CancelledError, KeyboardInterrupt):
        print_summary(progress, outcomes, "cut off (Ctrl-C twice)", as_json, command)
        sys.exit(EXIT_INTERRUPTED)
    print_summary(progress, outcomes, stopped, as_json, command)
    if any(o.state in (FAILED, INTERRUPTED) for o in outcomes.values()):
        sys.exit(EXIT_FAILED)
    if stopped:
        sys.exit(EXIT_INTERRUPTED)


def _steps(current: str, target: str) -> int:
    """Releases from `current` to `target` (bookworm -> trixie: 1)."""
    return OS_RELEASES.index(target) - OS_RELEASES.index(current)


def print_summary(
    progress: PlainProgress | JsonProgress,
    outcomes: Mapping[str, NodeOutcome],
    stopped: str,
    as_json: bool,
    title: str = "piherd upgrade",
) -> None:
    """The report: a JSON summary event, or a table and a count per state."""
    if isinstance(progress, JsonProgress):
        progress.emit(
            {
                "event": "summary",
                "stopped": stopped,
                "nodes": [o.as_dict() for o in outcomes.values()],
            }
        )
        return
    del as_json
    Console(file=sys.stdout, width=160, no_color=not sys.stdout.isatty()).print(
        report_table(outcomes, title)
    )
    counts: dict[str, int] = {}
    for o in outcomes.values():
        counts[o.state] = counts.get(o.state, 0) + 1
    line = ", ".join(f"{n} {state}" for state, n in counts.items())
    print(line + (f"; rollout stopped: {stopped}" if stopped else ""), flush=True)
