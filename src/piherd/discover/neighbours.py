"""This machine's neighbour table (`ip -json -s neigh`): which MAC answered at which address.

Read, never written, so no root is needed. Entries whose resolution failed (FAILED,
INCOMPLETE) name no machine and are left out. `confirmed_s` is how long ago the kernel
last confirmed the entry (an ARP reply, or traffic from the machine): an entry confirmed
during the sweep is a machine there now, while a REACHABLE entry may still be up to
half a minute old, from a machine that has gone since. Entries set by hand (PERMANENT)
have none.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

_NO_MACHINE = {"FAILED", "INCOMPLETE", "NOARP"}


@dataclass(frozen=True)
class Neighbour:
    mac: str  # lower case
    confirmed_s: float | None  # seconds since the kernel last confirmed it; None: never

    def confirmed_within(self, seconds: float) -> bool:
        return self.confirmed_s is not None and self.confirmed_s <= seconds


def parse_neighbours(text: str, subnet: IPv4Network) -> dict[IPv4Address, Neighbour]:
    """address -> Neighbour from `ip -json -s neigh show` output, within `subnet`."""
    table: dict[IPv4Address, Neighbour] = {}
    for entry in json.loads(text or "[]"):
        mac = entry.get("lladdr")
        states = set(entry.get("state", []))
        try:
            address = IPv4Address(entry.get("dst", ""))
        except ValueError:  # an IPv6 neighbour, or no address
            continue
        if isinstance(mac, str) and not states & _NO_MACHINE and address in subnet:
            confirmed = entry.get("confirmed")
            fresh = isinstance(confirmed, int | float) and "PERMANENT" not in states
            table[address] = Neighbour(mac.lower(), float(confirmed) if fresh else None)
    return table


def neighbour_table(subnet: IPv4Network) -> dict[IPv4Address, Neighbour]:
    """The kernel's current neighbour entries within `subnet`."""
    argv = ["ip", "-json", "-s", "-4", "neigh", "show"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=30)
    return parse_neighbours(out.stdout, subnet)
