"""The sim's LAN: a bridge (the switch), a veth "cable" and a netns per node.

A cluster larger than one bridge's ports (1,023) gets more bridges, each stacked on the
first by an uplink cable (SimNames.switch, PORTS_PER_SWITCH).

Nothing is routed off the machine: no NAT, no default route handed out, and an nft
table named after the cluster drops anything the host would forward from the bridge.
"""

# Small local files (state dir, /proc, /sys): blocking access is intended and brief.

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from piherd.sim.names import PORTS_PER_SWITCH, SimNames
from piherd.sim.proc import SimError, run

NETNS_DIR = Path("/run/netns")


@dataclass(frozen=True)
class NodeLink:
    """One node's cable: its index, name, interface name inside and MAC."""

    index: int
    node: str
    ifname: str  # eth0 (light) or host0 (nspawn's name)
    mac: str
    address: IPv4Address | None  # set statically (light); None = DHCP inside (full)


def link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def netns_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


async def _batch(lines: Sequence[str], netns: str | None = None) -> None:
    if not lines:
        return
    argv = ["ip", *(["-n", netns] if netns else []), "-batch", "-"]
    await run(argv, input=("\n".join(lines) + "\n").encode(), timeout=300)


async def _check_subnet_free(names: SimNames) -> None:
    """Refuse a subnet another interface (another sim, the real LAN) already uses."""
    _, out, _ = await run(["ip", "-4", "-o", "addr", "show"])
    for line in out.splitlines():
        fields = line.split()
        ifname, cidr = fields[1], fields[3]
        if ifname != names.bridge and IPv4Network(cidr, strict=False).overlaps(names.subnet):
            raise SimError(
                f"subnet {names.subnet} overlaps {cidr} on {ifname}: "
                "pick another with --subnet (e.g. 10.230.4.0/24)"
            )


async def bridge_up(names: SimNames) -> None:
    """The switch with the router's address (.1); idempotent."""
    await _check_subnet_free(names)
    prefix = names.subnet.prefixlen
    if not link_exists(names.bridge):
        await _batch(
            [
                # A fixed MAC, which the nodes' permanent ARP entries name (nodes_up).
                f"link add {names.bridge} address {names.router_mac} type bridge",
                f"addr add {names.gateway}/{prefix} dev {names.bridge}",
                f"link set {names.bridge} up",
            ]
        )
    ruleset = (
        f"table inet {names.nft_table} {{\n"
        "  chain forward {\n"
        "    type filter hook forward priority 0; policy accept;\n"
        # Routed traffic only: with br_netfilter loaded, frames bridged between two
        # nodes also pass this hook, with the bridge as both in- and out-interface.
        f'    iifname "{names.bridge}" oifname != "{names.bridge}" drop\n'
        f'    oifname "{names.bridge}" iifname != "{names.bridge}" drop\n'
        "  }\n"
        "}\n"
    )
    await run(["nft", "delete", "table", "inet", names.nft_table], check=False)
    await run(["nft", "-f", "-"], input=ruleset.encode())


async def switches_up(names: SimNames, count: int) -> None:
    """The extra switches `count` nodes need, each with its uplink to the first; idempotent."""
    lines: list[str] = []
    for number in range(1, (count - 1) // PORTS_PER_SWITCH + 1):
        switch = names.switch(number * PORTS_PER_SWITCH)
        up, down = names.uplink(number)
        if not link_exists(switch):
            lines += [f"link add {switch} type bridge", f"link set {switch} up"]
        if not link_exists(up):
            lines += [
                f"link add {up} type veth peer name {down}",
                f"link set {up} master {names.bridge} up",
                f"link set {down} master {switch} up",
            ]
    await _batch(lines)


def extra_switches(names: SimNames) -> list[str]:
    """The cluster's stacked switches and uplink ends that exist now (by their names)."""
    ours = (f"{names.stack_prefix}s", f"{names.stack_prefix}u")
    return sorted(p.name for p in Path("/sys/class/net").iterdir() if p.name.startswith(ours))


async def nodes_up(names: SimNames, links: Sequence[NodeLink]) -> None:
    """Create netns + cable for each node not wired yet (batched: hundreds of nodes)."""
    todo = [link for link in links if not link_exists(names.veth(link.index))]
    await switches_up(names, max((link.index + 1 for link in links), default=0))
    host: list[str] = []
    for link in todo:
        ns = names.netns(link.node)
        if not netns_exists(ns):
            host.append(f"netns add {ns}")
        veth = names.veth(link.index)
        host.append(f"link add {veth} type veth peer name {link.ifname} netns {ns}")
        host.append(f"link set {veth} master {names.switch(link.index)} up")
    # Static nodes get a permanent ARP entry on the router side. The host's ARP table is
    # shared by every sim and the real LAN, and entries beyond gc_thresh3 (1,024 by
    # default) fail with "neighbor table overflow": 1,024 light nodes lost half their
    # connections. Permanent entries do not count against it (Linux 5.0 on), and the
    # host's sysctls stay untouched. A real flat LAN of 1,000 nodes needs gc_thresh3
    # raised on the admin machine instead (docs/sim.md).
    host += [
        f"neigh replace {link.address} lladdr {link.mac} dev {names.bridge} nud permanent"
        for link in links
        if link.address is not None
    ]
    await _batch(host)
    for link in todo:
        inside = [
            "link set lo up",
            f"link set {link.ifname} address {link.mac}",
            f"link set {link.ifname} up",
        ]
        if link.address is not None:
            inside.append(f"addr add {link.address}/{names.subnet.prefixlen} dev {link.ifname}")
            inside.append(_router_neighbour(names, link))
        await _batch(inside, names.netns(link.node))


def _router_neighbour(names: SimNames, link: NodeLink) -> str:
    """A light node's permanent ARP entry for the router (this machine). Without it, the
    first connection to each of 1,024 fresh nodes made it broadcast an ARP request,
    which the switch floods to all 1,024 ports: a million frames in a second, the
    kernel's per-CPU backlog (netdev_max_backlog, 1,000) overflowed, and a cold
    `piherd run @all` lost 15-31 nodes to SYN retransmits and connect timeouts."""
    return (
        f"neigh replace {names.gateway} lladdr {names.router_mac} dev {link.ifname} nud permanent"
    )


async def forget_addresses(names: SimNames, node: str, ifname: str) -> None:
    """A Pi's NIC keeps no address across a power-off: clear what the node's last boot
    configured (a static address `up` gave it stays on the netns' interface otherwise)."""
    await _batch([f"addr flush dev {ifname}"], names.netns(node))


async def nic_off(names: SimNames, link: NodeLink) -> None:
    """The node's NIC loses power with it: its addresses go and its link goes down, so
    nothing answers at its address any more, not even a TCP reset from its namespace
    (which outlives the node's processes)."""
    ns = names.netns(link.node)
    if netns_exists(ns):
        await _batch([f"addr flush dev {link.ifname}", f"link set {link.ifname} down"], ns)


async def nic_on(names: SimNames, link: NodeLink) -> None:
    """The NIC of a node being powered on: link up, and a light node's static address
    (a full node's DHCP client sets its own); idempotent."""
    lines = [f"link set {link.ifname} up"]
    if link.address is not None:
        lines.append(f"addr replace {link.address}/{names.subnet.prefixlen} dev {link.ifname}")
        lines.append(_router_neighbour(names, link))  # a link going down dropped it
    await _batch(lines, names.netns(link.node))


async def node_down(
    names: SimNames, index: int, node: str, address: IPv4Address | None = None
) -> None:
    """Remove one node's cable and namespace (by name), and its ARP entry when static."""
    if address is not None and link_exists(names.bridge):
        await run(["ip", "neigh", "del", str(address), "dev", names.bridge], check=False)
    if link_exists(names.veth(index)):
        await run(["ip", "link", "del", names.veth(index)], check=False)
    if netns_exists(names.netns(node)):
        await run(["ip", "netns", "del", names.netns(node)], check=False)


async def nodes_down(names: SimNames, nodes: Sequence[tuple[int, str]]) -> None:
    """node_down for many nodes. Deleting the namespaces first lets the kernel destroy
    their cables in one batch (deleting veths one by one waits an RCU grace each)."""
    gone = [f"netns del {names.netns(n)}" for _, n in nodes if netns_exists(names.netns(n))]
    if gone:
        await run(["ip", "-force", "-batch", "-"], input=("\n".join(gone) + "\n").encode(),
                  check=False, timeout=300)  # fmt: skip
    deadline = time.monotonic() + 20
    while any(link_exists(names.veth(i)) for i, _ in nodes):
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    left = [f"link del {names.veth(i)}" for i, _ in nodes if link_exists(names.veth(i))]
    if left:
        await run(["ip", "-force", "-batch", "-"], input=("\n".join(left) + "\n").encode(),
                  check=False, timeout=300)  # fmt: skip


async def bridge_down(names: SimNames) -> None:
    await run(["nft", "delete", "table", "inet", names.nft_table], check=False)
    for link in extra_switches(names):  # an uplink's end takes its peer along
        await run(["ip", "link", "del", link], check=False)
    if link_exists(names.bridge):
        await run(["ip", "link", "del", names.bridge], check=False)


async def set_cable(names: SimNames, index: int, plugged: bool) -> None:
    """Pull (down) or plug (up) node `index`'s cable at the switch."""
    await run(["ip", "link", "set", names.veth(index), "up" if plugged else "down"])


def cable_plugged(names: SimNames, index: int) -> bool:
    try:
        flags = int(Path("/sys/class/net", names.veth(index), "flags").read_text(), 16)
    except OSError:
        return False
    return bool(flags & 1)
