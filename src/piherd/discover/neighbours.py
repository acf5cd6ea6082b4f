"""This machine's neighbour table (`ip -json neigh`): which MAC answered at which address.

Read, never written, so no root is needed. Entries whose resolution failed (FAILED,
INCOMPLETE) name no machine and are left out. `reachable` tells an entry the kernel
confirmed just now (REACHABLE, DELAY, PROBE: the sweep's own ARP) from one that may be
old (STALE) or was set by hand (PERMANENT).
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

_NO_MACHINE = {"FAILED", "INCOMPLETE", "NOARP"}
_FRESH = {"REACHABLE", "DELAY", "PROBE"}


@dataclass(frozen=True)
class Neighbour:
    mac: str  # lower case
    reachable: bool


def parse_neighbours(text: str, subnet: IPv4Network) -> dict[IPv4Address, Neighbour]:
    """address -> Neighbour from `ip -json neigh show` output, within `subnet`."""
    table: dict[IPv4Address, Neighbour] = {}
    for entry in json.loads(text or "[]"):
        mac = entry.get("lladdr")
        states = set(entry.get("state", []))
        try:
            address = IPv4Address(entry.get("dst", ""))
        except ValueError:  # an IPv6 neighbour, or no address
            continue
        if isinstance(mac, str) and not states & _NO_MACHINE and address in subnet:
            table[address] = Neighbour(mac.lower(), bool(states & _FRESH))
    return table


def neighbour_table(subnet: IPv4Network) -> dict[IPv4Address, Neighbour]:
    """The kernel's current neighbour entries within `subnet`."""
    argv = ["ip", "-json", "-4", "neigh", "show"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=30)
    return parse_neighbours(out.stdout, subnet)
