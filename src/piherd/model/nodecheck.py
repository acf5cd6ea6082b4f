"""Per-node rules; a problem shared by many nodes is folded into one naming the node set."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Set
from ipaddress import IPv4Address

from ClusterShell.NodeSet import NodeSetException

from piherd.model.cluster import BUILTIN_GROUPS, NETWORK_STACKS, OS_RELEASES, Cluster, Node
from piherd.model.nodesets import fold
from piherd.model.origin import Origin
from piherd.model.reader import Reader

LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")  # one RFC 1123 label (fullmatch)
_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")
_SERIAL = re.compile(r"[0-9a-f]{8}|[0-9a-f]{16}")
_INTERFACE = re.compile(r"[A-Za-z0-9_.\-]{1,15}")
# A DNS name or dotted IPv4 address: what may follow `server` in chrony.conf or an ssh host.
HOST = re.compile(
    r"(?=.{1,253}\Z)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
_SHOWN = 4  # values listed in a folded problem before "..."


def fold_names(names: Iterable[str]) -> str:
    """Node-set text for `names`; a plain list when they are not valid node names."""
    listed = list(names)
    try:
        return fold(listed)
    except NodeSetException:
        more = ", ..." if len(listed) > _SHOWN else ""
        return ", ".join(listed[:_SHOWN]) + more


def fold_values(values: list[str]) -> str:
    """`192.168.1.190-199` for runs of consecutive addresses; other values listed."""
    try:
        addresses = sorted({IPv4Address(v) for v in values})
    except ValueError:
        unique = sorted(set(values))
        more = ", ..." if len(unique) > _SHOWN else ""
        return ", ".join(unique[:_SHOWN]) + more
    runs: list[list[IPv4Address]] = []
    for a in addresses:
        if runs and int(a) == int(runs[-1][1]) + 1:
            runs[-1][1] = a
        else:
            runs.append([a, a])
    parts = []
    for low, high in runs:
        if low == high:
            parts.append(str(low))
        elif str(low).rsplit(".", 1)[0] == str(high).rsplit(".", 1)[0]:
            parts.append(f"{low}-{str(high).rsplit('.', 1)[1]}")
        else:
            parts.append(f"{low}-{high}")
    more = ",..." if len(parts) > _SHOWN else ""
    return ",".join(parts[:_SHOWN]) + more


class NodeIssues:
    """Collects (field, what, hint) per node, then reports each once for all its nodes."""

    def __init__(self) -> None:
        self._found: dict[tuple[str, str, str], list[tuple[str, str]]] = {}

    def add(self, field: str, what: str, hint: str, node: str, value: str = "") -> None:
        self._found.setdefault((field, what, hint), []).append((node, value))

    def report(self, reader: Reader) -> None:
        for (field, what, hint), items in self._found.items():
            who = fold_names(n for n, _ in items)
            values = [v for _, v in items if v]
            if values:
                who = f"{who} ({fold_values(values)})"
            reader.problem(field, f"{who}: {what}", hint)


def check_nodes(
    cluster: Cluster, origins: Mapping[str, Origin], reader: Reader, unaddressed: Set[str]
) -> None:
    """Every per-node rule, then duplicates across nodes."""
    issues = NodeIssues()
    for node in cluster.nodes:
        origin = origins[node.name]
        _check_identity(node, origin, issues)
        if node.name not in unaddressed:
            _check_address(cluster, node, origin, issues)
    issues.report(reader)
    _check_heads(cluster, origins, reader)
    _check_duplicates(cluster, origins, reader, unaddressed)


def _check_identity(node: Node, origin: Origin, issues: NodeIssues) -> None:
    if not LABEL.fullmatch(node.name):
        issues.add(
            origin.field("name"),
            "not a valid hostname (RFC 1123)",
            "lower-case letters, digits and '-', at most 63, not starting or ending with '-'",
            node.name,
        )
    if node.mac is not None and not _MAC.fullmatch(node.mac.lower()):
        issues.add(
            origin.field("mac"),
            f"{node.mac!r} is not a MAC address",
            'write six hex pairs with colons, e.g. "dc:a6:32:01:02:03"',
            node.name,
        )
    if node.serial is not None and not _SERIAL.fullmatch(node.serial.lower()):
        issues.add(
            origin.field("serial"),
            f"{node.serial!r} is not a Pi serial number",
            "8 or 16 hex digits, as in /proc/device-tree/serial-number",
            node.name,
        )
    if node.os not in OS_RELEASES:
        issues.add(
            origin.field("os"),
            f"unsupported OS {node.os!r}",
            f"use one of {', '.join(OS_RELEASES)}",
            node.name,
        )
    if node.network_stack not in NETWORK_STACKS:
        issues.add(
            origin.field("network_stack"),
            f"unknown network stack {node.network_stack!r}",
            f"use one of {', '.join(NETWORK_STACKS)}, or leave it out to follow the OS",
            node.name,
        )
    if not _INTERFACE.fullmatch(node.interface):
        issues.add(
            origin.field("interface"),
            f"{node.interface!r} is not an interface name",
            'e.g. "eth0" on a Pi, "end0" on some boards',
            node.name,
        )
    if node.bootstrap_address is not None and not HOST.fullmatch(node.bootstrap_address):
        issues.add(
            origin.field("bootstrap_address"),
            f"{node.bootstrap_address!r} is neither an address nor a host name",
            'e.g. "192.168.1.57" (its DHCP lease) or "raspberrypi.local"',
            node.name,
        )
    for group in node.groups:
        if group in BUILTIN_GROUPS:
            issues.add(
                origin.field("groups"),
                f"@{group} is built in; a node cannot be added to it",
                "built-in groups follow role and compute; use another group name",
                node.name,
            )
        elif not LABEL.fullmatch(group):
            issues.add(
                origin.field("groups"),
                f"invalid group name {group!r}",
                "lower-case letters, digits and '-'",
                node.name,
            )


def _check_address(cluster: Cluster, node: Node, origin: Origin, issues: NodeIssues) -> None:
    net = cluster.network
    where, addr = origin.field("address"), node.address
    value = str(addr)
    if addr not in net.subnet:
        issues.add(
            where,
            f"address outside the subnet {net.subnet}",
            "pick addresses inside the subnet, or widen the subnet",
            node.name,
            value,
        )
    elif addr in (net.subnet.network_address, net.subnet.broadcast_address):
        kind = "network" if addr == net.subnet.network_address else "broadcast"
        issues.add(
            where,
            f"address is the subnet's {kind} address",
            "hosts cannot use it; pick another address",
            node.name,
            value,
        )
    elif addr == net.gateway:
        issues.add(
            where,
            "address is the gateway's",
            "the router already has it; pick another address",
            node.name,
            value,
        )
    elif net.router_dhcp_pool and net.router_dhcp_pool[0] <= addr <= net.router_dhcp_pool[1]:
        low, high = net.router_dhcp_pool
        issues.add(
            where,
            f"address inside the router's DHCP pool {low}-{high}",
            "the router could hand it to another device; pick addresses outside the pool",
            node.name,
            value,
        )


def _check_heads(cluster: Cluster, origins: Mapping[str, Origin], reader: Reader) -> None:
    heads = [n for n in cluster.nodes if n.is_head]
    if not heads:
        reader.problem(
            "naming.head",
            "the cluster has no head node",
            'set head = "node01" under [naming], or role = "head" on one node',
        )
    for node in heads[1:]:
        reader.problem(
            origins[node.name].field("role"),
            f"{node.name} is a second head (the head is {heads[0].name})",
            'a cluster has one head: set role = "worker"',
        )


def _check_duplicates(
    cluster: Cluster, origins: Mapping[str, Origin], reader: Reader, unaddressed: Set[str]
) -> None:
    seen: dict[str, dict[object, str]] = {"address": {}, "mac": {}, "serial": {}}
    for node in cluster.nodes:
        for attr, first in seen.items():
            value = getattr(node, attr)
            if value is None or (attr == "address" and node.name in unaddressed):
                continue
            key = value.lower() if isinstance(value, str) else value
            if key in first:
                reader.problem(
                    origins[node.name].field(attr),
                    f"duplicate {attr}: {node.name} has the same {attr} {value} as {first[key]}",
                    f"every node needs its own {attr}",
                )
            else:
                first[key] = node.name
