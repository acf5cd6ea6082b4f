"""Read [network] and the [naming] plan: addresses, ranges and the planned node entries."""

from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv4Network, ip_address, ip_network
from typing import Any

from piherd.model.cluster import Network
from piherd.model.escape import shown
from piherd.model.reader import Reader

NETWORK_KEYS = ("subnet", "gateway", "dns", "router_dhcp_pool", "pi_mac_prefixes")
_MAC_PREFIX = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){0,5}")
NAMING_KEYS = ("prefix", "width", "start", "count", "first_address", "head")
# Far beyond any real cluster (the Los Alamos one had 750 Pis), low enough that a typo
# like `count = 1000000` cannot make every command slow.
MAX_NODES = 10_000
# Node names are DNS labels (at most 63 characters): a prefix and index that could never
# make one are refused before any name is built (a width of 10**9 would take gigabytes).
MAX_PREFIX = 62
MAX_WIDTH = 9
MAX_START = 10**8
_LAST_IPV4 = int(IPv4Address("255.255.255.255"))

PLAN = "naming"  # the origin path of nodes that come from the naming plan


def planned_name(prefix: str, index: int, width: int) -> str:
    """The name the [naming] plan gives node `index`: prefix + index, zero-padded to width."""
    return f"{prefix}{index:0{width}d}"


def address(reader: Reader, raw: object, path: str) -> IPv4Address | None:
    """An IPv4 address, or None with a located problem."""
    if not isinstance(raw, str):
        reader.problem(
            path, f"must be an IPv4 address in quotes, not {raw!r}", 'e.g. "192.168.1.10"'
        )
        return None
    try:
        value = ip_address(raw.strip())
    except ValueError:
        reader.problem(path, f"{raw!r} is not an IP address", 'e.g. "192.168.1.10"')
        return None
    if not isinstance(value, IPv4Address):
        reader.problem(path, f"{raw!r} is IPv6; piherd plans IPv4 LANs", "use an IPv4 address")
        return None
    return value


def address_range(reader: Reader, raw: object, path: str) -> tuple[IPv4Address, IPv4Address] | None:
    """An address range written "A-B" or ["A", "B"]."""
    parts = raw.split("-") if isinstance(raw, str) else raw
    if isinstance(parts, list) and len(parts) == 2 and all(isinstance(p, str) for p in parts):
        low, high = parts[0].strip(), parts[1].strip()
        if "." in low and high.isdigit():  # "192.168.1.100-199": the last octet only
            high = f"{low.rsplit('.', 1)[0]}.{high}"
        parts = [low, high]
    if not (isinstance(parts, list) and len(parts) == 2):
        reader.problem(path, f"must be a range, not {raw!r}", 'write "192.168.1.100-192.168.1.199"')
        return None
    before = len(reader.problems)
    low, high = (address(reader, p, path) for p in parts)
    if low is None or high is None:
        if len(reader.problems) > before + 1:  # both ends bad: one problem is enough
            del reader.problems[before + 1 :]
        return None
    if low > high:
        reader.problem(path, f"range starts after it ends ({low} > {high})", "swap the two ends")
        return None
    return low, high


def network(reader: Reader, data: dict[str, Any]) -> Network | None:
    """The [network] table; None when the subnet is missing or unusable."""
    table = reader.table(data, "network", "network", NETWORK_KEYS)
    gateway = address(reader, table["gateway"], "network.gateway") if "gateway" in table else None
    dns_raw = reader.strings(table, "network", "dns", ())
    dns = tuple(a for d in dns_raw if (a := address(reader, d, "network.dns")))
    pool = (
        address_range(reader, table["router_dhcp_pool"], "network.router_dhcp_pool")
        if "router_dhcp_pool" in table
        else None
    )
    raw = table.get("subnet")
    if raw is None:
        reader.problem(
            "network.subnet" if "network" in data else "network",
            "the cluster's subnet is missing",
            'add subnet = "192.168.1.0/24" under [network]',
        )
        return None
    if not isinstance(raw, str):
        reader.problem(
            "network.subnet", f"must be a network in quotes, not {raw!r}", 'e.g. "192.168.1.0/24"'
        )
        return None
    try:
        subnet = ip_network(raw.strip(), strict=True)
    except ValueError as exc:
        hint = 'write the network address and prefix, e.g. "192.168.1.0/24"'
        if "host bits set" in str(exc):
            hint = f'the network address of that subnet is "{ip_network(raw, strict=False)}"'
        reader.problem("network.subnet", f"{raw!r} is not a network: {exc}", hint)
        return None
    if not isinstance(subnet, IPv4Network):
        reader.problem("network.subnet", "IPv6 subnets are not supported", "use an IPv4 subnet")
        return None
    prefixes = reader.strings(table, "network", "pi_mac_prefixes", ())
    for prefix in prefixes:
        if not _MAC_PREFIX.fullmatch(prefix.lower()):
            reader.problem(
                "network.pi_mac_prefixes",
                f"{prefix!r} is not the start of a MAC address",
                'write one to six hex pairs, e.g. "dc:a6:32"',
            )
    good = tuple(p.lower() for p in prefixes if _MAC_PREFIX.fullmatch(p.lower()))
    return Network(subnet, gateway, dns, pool, good)


def _plan_in_bounds(
    reader: Reader, table: dict[str, Any], prefix: str, width: int, start: int, count: int
) -> bool:
    """Whether width, start, prefix and count make a plan; each problem reported."""
    ok = True
    if width < 1:
        reader.problem(
            "naming.width", f"must be at least 1, not {width}", "width = 2 gives node01, node02..."
        )
        ok = False
    elif width > MAX_WIDTH:
        reader.problem(
            "naming.width", f"must be at most {MAX_WIDTH}, not {width}", "width = 2 gives node01"
        )
        ok = False
    if not 0 <= start <= MAX_START:
        reader.problem(
            "naming.start", f"must be between 0 and {MAX_START}, not {start}", "start = 1 is usual"
        )
        ok = False
    if len(prefix) > MAX_PREFIX:
        reader.problem(
            "naming.prefix",
            f"{shown(prefix)} is longer than {MAX_PREFIX} characters",
            'a node name is at most 63 characters; e.g. prefix = "node"',
        )
        ok = False
    if count == -1 and type(table["count"]) is not int:
        ok = False  # its type is already reported
    elif count < 1 or count > MAX_NODES:
        reader.problem(
            "naming.count",
            f"must be between 1 and {MAX_NODES}, not {count}",
            "count is the number of nodes, the head included",
        )
        ok = False
    elif ok and len(str(start + count - 1)) > width:
        last = start + count - 1
        reader.problem(
            "naming.width",
            f"{width} digit{'s' if width != 1 else ''} cannot number {count} nodes "
            f"from {start} (the last is {prefix}{last})",
            f"set width = {len(str(last))} or plan fewer nodes",
        )
    return ok


def planned_nodes(reader: Reader, data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Raw node entries from the naming plan, keyed by name, before overrides."""
    table = reader.table(data, "naming", "naming", NAMING_KEYS)
    if not table:
        return {}
    prefix = reader.get(table, "naming", "prefix", str, "node")
    width = reader.get(table, "naming", "width", int, 2)
    start = reader.get(table, "naming", "start", int, 1)
    count = reader.get(table, "naming", "count", int, -1)
    if "count" not in table:
        reader.problem("naming", "the number of nodes is missing", "add count = 4 under [naming]")
        return {}
    ok = _plan_in_bounds(reader, table, prefix, width, start, count)
    first_raw = table.get("first_address")
    if first_raw is None:
        reader.problem(
            "naming.first_address" if table else "naming",
            "the address of the first node is missing",
            'add first_address = "192.168.1.11"; the other nodes follow it',
        )
        return {}
    first = address(reader, first_raw, "naming.first_address")
    if first is None or not ok:
        return {}
    if int(first) + count - 1 > _LAST_IPV4:
        reader.problem(
            "naming.first_address",
            f"{count} addresses from {first} run past 255.255.255.255",
            "start lower, inside the cluster's subnet",
        )
        return {}
    plan: dict[str, dict[str, Any]] = {}
    for offset in range(count):
        name = planned_name(prefix, start + offset, width)
        plan[name] = {"name": name, "address": str(first + offset)}
    return plan
