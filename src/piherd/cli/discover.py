"""`piherd discover`: find the cluster's Pis on the LAN and match them to nodes by MAC."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from piherd.app.discovery import (
    DiscoverError,
    discover_round,
    named,
    record,
    sweep_targets,
    to_record,
)
from piherd.app.first_identity import IdentityError, give_host_keys, has_generic_cards
from piherd.cli.common import Seconds, cluster_file_option, fail, load_cluster, select_nodes
from piherd.discover.assign import Assigner
from piherd.discover.match import Row, State
from piherd.discover.record import RecordError
from piherd.model import Cluster
from piherd.model.escape import shown
from piherd.model.problems import ConfigError


def _row_dict(row: Row) -> dict[str, str | None]:
    return {
        "state": row.state.value,
        "node": row.node,
        "address": None if row.address is None else str(row.address),
        "mac": row.mac,
        "ssh": row.ssh,
        "detail": row.detail,
    }


def _table(rows: Sequence[Row]) -> Table:
    table = Table(box=None, pad_edge=False)
    for column in ("STATE", "NODE", "ADDRESS", "MAC", "SSH", "DETAIL"):
        table.add_column(column)
    for row in rows:
        address = "-" if row.address is None else str(row.address)
        table.add_row(
            row.state.value, row.node or "-", address, row.mac or "-", row.ssh, row.detail
        )
    return table


def _unnamed(cluster: Cluster, nodeset: str) -> list[str]:
    """The nodes of NODESET `--assign` may name: those with no MAC recorded."""
    names = select_nodes(cluster, nodeset, "discover")
    free = [n for n in names if not cluster.node(n).mac]
    if not free:
        fail(f"piherd discover: every node of {nodeset} has a MAC already; nothing to assign")
    return free


@click.command("discover")
@cluster_file_option
@click.option("--write", is_flag=True, help="Record each node's MAC and bootstrap address.")
@click.option("--watch", is_flag=True, help="Sweep again every --interval until Ctrl-C.")
@click.option(
    "--assign",
    "assign_set",
    metavar="NODESET",
    help="Name new Pis, in the order they come up, with the nodes of NODESET that have no MAC.",
)
@click.option("--subnet", "whole_subnet", is_flag=True, help="Sweep the whole subnet.")
@click.option("--interval", type=Seconds(1.0), default=5.0, show_default=True,
              help="Seconds between sweeps with --watch.")  # fmt: skip
@click.option("--timeout", type=Seconds(0.1), default=1.0, show_default=True,
              help="Seconds each address has to answer the sweep.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="One JSON object per round, for scripts.")
def command(
    cluster_file: Path,
    write: bool,
    watch: bool,
    assign_set: str | None,
    whole_subnet: bool,
    interval: float,
    timeout: float,
    as_json: bool,
) -> None:
    """Find the cluster's Raspberry Pis on the LAN and match them to its nodes.

    Sweeps the router's DHCP pool (network.router_dhcp_pool) and the nodes' own and
    bootstrap addresses, or the whole subnet with --subnet, by connecting to the SSH port
    (no root needed); then reads this machine's neighbour table for each answer's MAC.
    A machine counts as a Pi by its MAC's prefix (Raspberry Pi's own, plus
    network.pi_mac_prefixes). Each row is one of:

    \b
      known       a node's MAC at its address or bootstrap address, or a machine at
                  the address of a node with no MAC recorded yet
      moved       a node's MAC at another address (a new DHCP lease)
      mismatched  another machine at a node's address
      new         a Pi no node claims yet
      missing     a node with a MAC that did not answer

    \b
    piherd discover                         # one sweep, one table
    piherd discover --write                 # and record MACs and bootstrap addresses
    piherd discover --watch --assign @workers --write
                                            # power the Pis on one at a time: each
                                            # gets the next name as it comes up

    --write keeps cluster.toml's comments and layout, and checks the new file before it
    replaces the old one.
    """
    cluster = load_cluster(cluster_file)
    assigner = Assigner(_unnamed(cluster, assign_set)) if assign_set else None
    if assigner is not None and not watch:
        first = assigner.names[0]
        click.echo(f"naming one new Pi as {first} (--watch names several, one at a time)", err=True)
    try:
        targets = sweep_targets(cluster, whole_subnet=whole_subnet)
    except DiscoverError as exc:
        fail(f"piherd discover: {exc}")
    session = _Session(cluster_file, cluster, targets, timeout, assigner, write)
    show = _Show(as_json, watch)
    with contextlib.suppress(KeyboardInterrupt):
        while True:
            started = time.monotonic()
            show(session.round())
            if not watch:
                return
            time.sleep(max(0.0, interval - (time.monotonic() - started)))


@dataclass
class _Session:
    """Rounds of sweep, match, naming and recording, the cluster re-read after a write."""

    path: Path
    cluster: Cluster
    targets: list[IPv4Address]
    timeout: float
    assigner: Assigner | None
    write: bool

    def round(self) -> list[Row]:
        try:
            rows = asyncio.run(discover_round(self.cluster, self.targets, timeout=self.timeout))
        except (OSError, subprocess.SubprocessError) as exc:  # no `ip`, too many open files
            fail(f"piherd discover: the sweep failed: {shown(str(exc))}", 1)
        if self.assigner is not None:
            rows = self._named(rows, self.assigner)
        if self.write:
            self._record(to_record(self.cluster, rows))
        return rows

    def _named(self, rows: list[Row], assigner: Assigner) -> list[Row]:
        given, together = assigner.round([r.mac for r in rows if r.state == State.NEW and r.mac])
        for mac, name in given.items():
            if self.write and has_generic_cards(self.cluster):
                address = next(str(r.address) for r in rows if r.mac == mac)
                if not self._give_host_keys(name, address):
                    assigner.refuse(mac)
                    continue
            click.echo(f"{name}: {mac}", err=True)
        if together:
            macs = ", ".join(together)
            click.echo(f"{len(together)} unnamed Pis are up ({macs}): leave one on", err=True)
        return list(named(rows, assigner.given))

    def _give_host_keys(self, name: str, address: str) -> bool:
        """A generic card's Pi, named: its own host keys, if it proves it is one of ours."""
        try:
            prints = asyncio.run(give_host_keys(self.cluster, name, address))
        except IdentityError as exc:
            click.echo(
                f"{address}: not named {name}: {shown(str(exc), 300)[1:-1]} (a generic card of "
                "this cluster presents its first-boot host key)",
                err=True,
            )
            return False
        click.echo(f"{name}: its own host keys installed ({', '.join(prints)})", err=True)
        return True

    def _record(self, updates: dict[str, dict[str, str]]) -> None:
        if not updates:
            return
        try:
            self.cluster = record(self.path, updates)
        except (RecordError, ValueError) as exc:
            fail(f"piherd discover: {self.path}: not written: {shown(str(exc))}")
        except ConfigError as exc:  # what was found would make the file invalid
            fail(f"piherd discover: {self.path}: not written, it would read:\n{exc}")
        except OSError as exc:  # a read-only directory, a full disk: the old file stays
            fail(f"piherd discover: {self.path}: not written: {shown(str(exc))}", 1)
        for name, values in updates.items():
            fields = ", ".join(f"{k} = {v}" for k, v in values.items())
            click.echo(f"{self.path}: {name}: {fields}", err=True)


@dataclass
class _Show:
    """A table per round (with --watch: only the rows that changed), or JSON lines."""

    as_json: bool
    watch: bool
    console: Console = field(default_factory=Console)
    last: dict[str, str] = field(default_factory=dict)

    def __call__(self, rows: list[Row]) -> None:
        if self.as_json:
            line = {"time": round(time.time(), 3), "rows": [_row_dict(r) for r in rows]}
            click.echo(json.dumps(line))
            return
        now = {_key(r): _state(r) for r in rows}
        changed = [r for r in rows if self.last.get(_key(r)) != now[_key(r)]]
        self.last = now
        if changed or not self.watch:
            self.console.print(_table(changed if self.watch else rows))


def _key(row: Row) -> str:
    return row.mac or row.node or ""


def _state(row: Row) -> str:
    return f"{row.state} {row.node} {row.address}"
