"""The `discover` use case: sweep the LAN, read the neighbour table, match to nodes,
name new Pis (`--assign`) and record what was found in cluster.toml (`--write`)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from ipaddress import IPv4Address
from pathlib import Path

from piherd.discover.match import Found, Row, State, home_addresses, match
from piherd.discover.neighbours import neighbour_table
from piherd.discover.record import with_found
from piherd.discover.sweep import Answer, sweep
from piherd.model import Cluster
from piherd.model.writefile import replace_text
from piherd.services import load

SSH_PORT = 22  # a fresh Raspberry Pi OS listens here, whatever the cluster moves it to
# A /16 is 65,534 connects: about 4 minutes at 256 at once and a 1 s timeout.
MAX_SWEEP = 1 << 16


class DiscoverError(Exception):
    """The sweep cannot be made as asked (a subnet too large to sweep)."""


def sweep_targets(cluster: Cluster, *, whole_subnet: bool) -> list[IPv4Address]:
    """The router's DHCP pool (where a fresh Pi's lease is) and every node's addresses;
    the whole subnet when asked or when no pool is known."""
    net = cluster.network
    if whole_subnet or net.router_dhcp_pool is None:
        if net.subnet.num_addresses > MAX_SWEEP:
            raise DiscoverError(
                f"{net.subnet} has {net.subnet.num_addresses} addresses, too many to sweep; "
                "set network.router_dhcp_pool to the router's DHCP range"
            )
        return list(net.subnet.hosts())
    low, high = net.router_dhcp_pool
    targets = [IPv4Address(a) for a in range(int(low), int(high) + 1)]
    for node in cluster.nodes:
        targets += sorted(home_addresses(node))
    return list(dict.fromkeys(targets))


async def discover_round(
    cluster: Cluster, targets: Sequence[IPv4Address], *, timeout: float
) -> list[Row]:
    """One sweep of `targets`, then the neighbour table, matched to the cluster's nodes."""
    ports = list(dict.fromkeys((SSH_PORT, cluster.ssh_port)))
    started = time.monotonic()
    answers = await sweep(targets, ports[0], timeout=timeout)
    for port in ports[1:]:  # a node piherd set up may listen elsewhere
        again = [a for a in targets if answers.get(a) != Answer.SSH]
        later = await sweep(again, port, timeout=timeout)
        answers.update(
            {
                a: answer
                for a, answer in later.items()
                if answers.get(a) is None or answer == Answer.SSH
            }
        )
    wanted = set(targets)
    # The kernel counts whole seconds: one more, so an ARP answered as the sweep began counts.
    during = time.monotonic() - started + 1.0
    found = [
        Found(address, seen.mac, answers.get(address))
        for address, seen in neighbour_table(cluster.network.subnet).items()
        # A machine is there if it answered the sweep, or answered its ARP during it.
        if address in wanted and (address in answers or seen.confirmed_within(during))
    ]
    return match(cluster, found)


def to_record(cluster: Cluster, rows: Sequence[Row]) -> dict[str, dict[str, str]]:
    """What `--write` stores: the MAC of each node found, and its bootstrap address when
    it answered anywhere but at its own (static) address."""
    updates: dict[str, dict[str, str]] = {}
    for row in rows:
        if row.node is None or row.mac is None or row.address is None:
            continue
        if row.state not in (State.KNOWN, State.MOVED):
            continue
        node = cluster.node(row.node)
        values = {} if node.mac and node.mac.lower() == row.mac else {"mac": row.mac}
        if row.address != node.address and node.bootstrap_address != str(row.address):
            values["bootstrap_address"] = str(row.address)
        if values:
            updates[row.node] = values
    return updates


def named(rows: Sequence[Row], names: Mapping[str, str]) -> Iterator[Row]:
    """Rows with the names `--assign` gave to new Pis (by MAC)."""
    for row in rows:
        name = names.get(row.mac or "")
        if row.state == State.NEW and name:
            yield Row(State.MOVED, name, row.address, row.mac, row.ssh, "named by --assign")
        else:
            yield row


def record(path: Path, updates: Mapping[str, Mapping[str, str]]) -> Cluster:
    """Store `updates` in the cluster file: the new text is loaded (checked) before it
    replaces the old file. Returns the cluster as the new file describes it."""
    loaded: list[Cluster] = []
    text = with_found(path.read_text(encoding="utf-8"), updates)
    replace_text(path, text, check=lambda staged: loaded.append(load(staged)))
    return loaded[0]
