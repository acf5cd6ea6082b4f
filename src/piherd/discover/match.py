"""Found machines matched to the cluster's nodes, by MAC address: one row per machine,
and one per node with a MAC that was not seen.

States:
- known: a node's MAC, at the node's address or its bootstrap address; or a machine at
  the address of a node with no MAC recorded (`--write` records it);
- moved: a node's MAC at another address (`--write` records it as the bootstrap address);
- mismatched: another machine at a node's address (a different MAC than recorded);
- new: a Pi no node claims yet (`--assign` names them);
- missing: a node with a MAC that did not answer.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from enum import StrEnum
from ipaddress import IPv4Address

from piherd.discover.pi_macs import is_pi
from piherd.discover.sweep import Answer
from piherd.model import Cluster, Node


class State(StrEnum):
    KNOWN = "known"
    MOVED = "moved"
    MISMATCHED = "mismatched"
    NEW = "new"
    MISSING = "missing"


@dataclass(frozen=True)
class Found:
    """One machine seen on the LAN: its address, MAC and what its SSH port did."""

    address: IPv4Address
    mac: str
    answer: Answer | None  # None: only in the neighbour table


@dataclass(frozen=True)
class Row:
    """A line of discover's table."""

    state: State
    node: str | None
    address: IPv4Address | None
    mac: str | None
    ssh: str  # "open", "closed" or "-"
    detail: str = ""


def _ssh(answer: Answer | None) -> str:
    return {Answer.SSH: "open", Answer.REFUSED: "closed"}.get(answer, "-") if answer else "-"


def home_addresses(node: Node) -> set[IPv4Address]:
    """Where a node may answer: its address, and its bootstrap address."""
    homes = {node.address}
    if node.bootstrap_address:
        # A host name is not an address this table could compare.
        with contextlib.suppress(ValueError):
            homes.add(IPv4Address(node.bootstrap_address))
    return homes


def match(cluster: Cluster, found: list[Found]) -> list[Row]:
    """Rows in the order of the cluster's nodes, then new machines by address."""
    by_mac = {n.mac.lower(): n for n in cluster.nodes if n.mac}
    by_home = {a: n for n in cluster.nodes for a in home_addresses(n)}
    extra = cluster.network.pi_mac_prefixes
    rows: dict[str, Row] = {}
    new: list[Row] = []
    for machine in sorted(found, key=lambda f: f.address):
        node = by_mac.get(machine.mac)
        ssh = _ssh(machine.answer)
        if node is not None:
            if machine.address in home_addresses(node):
                row = Row(State.KNOWN, node.name, machine.address, machine.mac, ssh)
            else:
                detail = f"expected at {', '.join(sorted(map(str, home_addresses(node))))}"
                row = Row(State.MOVED, node.name, machine.address, machine.mac, ssh, detail)
            rows.setdefault(node.name, row)
            continue
        owner = by_home.get(machine.address)
        if owner is not None and owner.mac and owner.mac.lower() != machine.mac:
            detail = f"{owner.name} has MAC {owner.mac.lower()}"
            new.append(Row(State.MISMATCHED, None, machine.address, machine.mac, ssh, detail))
        elif (
            owner is not None
            and not owner.mac
            and owner.name not in rows
            and (machine.answer == Answer.SSH or is_pi(machine.mac, extra))
        ):
            unrecorded = "MAC not recorded yet"
            rows[owner.name] = Row(
                State.KNOWN, owner.name, machine.address, machine.mac, ssh, unrecorded
            )
        elif is_pi(machine.mac, extra):
            new.append(Row(State.NEW, None, machine.address, machine.mac, ssh))
    ordered = []
    for node in cluster.nodes:
        if node.name in rows:
            ordered.append(rows[node.name])
        elif node.mac:
            ordered.append(Row(State.MISSING, node.name, None, node.mac.lower(), "-"))
    return ordered + new
