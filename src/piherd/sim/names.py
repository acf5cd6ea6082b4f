"""Pure naming plan of a virtual cluster: every resource is named after the cluster.

Links, namespaces, cgroups and directories all derive from the cluster name here, so
`down` and `leftovers()` find exactly what `up` created, never by a broad pattern.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from piherd.model.naming import planned_name

NAME_RE = re.compile(r"[a-z][a-z0-9-]{0,30}")
STATE_ROOT = Path("/var/lib/piherd/sim")
CACHE_ROOT = Path("/var/cache/piherd")
CGROUP_ROOT = Path("/sys/fs/cgroup")
FIRST_HOST = 11  # node01 = .11, as in the seeds' naming plans
POOL = (100, 199)  # the "home router" DHCP pool, as host offsets
PI4_MAC_PREFIX = "dc:a6:32"
# A Linux bridge takes at most 1,023 ports ("Exchange full" after that): a cluster larger
# than this gets more switches, each stacked on the first by an uplink cable.
PORTS_PER_SWITCH = 1000  # a Raspberry Pi 4 vendor prefix, so discovery code sees Pis


def check_name(name: str) -> str:
    """`name` when it is a usable cluster name; ValueError saying why otherwise."""
    if not NAME_RE.fullmatch(name):
        raise ValueError(
            f"sim cluster name {name!r} is not usable: use 1-31 lower-case letters, "
            "digits and '-', starting with a letter"
        )
    return name


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def short_name(name: str) -> str:
    """At most 6 characters naming the cluster inside 15-character link names."""
    if len(name) <= 6:
        return name
    return name[:2] + _digest(name).hex()[:4]


def node_name(index: int, count: int, prefix: str = "node") -> str:
    """node01, node02, ... (index 0 is the head); 3 digits from 100 nodes on."""
    return planned_name(prefix, index + 1, node_width(count))


def node_width(count: int) -> int:
    return max(2, len(str(count)))


def subnet_prefix(count: int) -> int:
    """The longest prefix whose subnet holds `count` nodes from .FIRST_HOST on, below
    the broadcast address: /24 up to 244 nodes, /22 up to 1,012, /21 up to 2,036..."""
    prefix = 24
    while FIRST_HOST + count - 1 > 2 ** (32 - prefix) - 2 and prefix > 16:
        prefix -= 1
    return prefix


def pick_subnet(name: str, count: int) -> IPv4Network:
    """A private subnet derived from the name: 10.<200-249>.<x>.0/24, larger (/23 ... /16)
    when `count` nodes do not fit; every size starts at the same address where it can."""
    digest = _digest(name)
    prefix = subnet_prefix(count)
    third = (digest[1] % 64) * 4
    if prefix < 24:
        third &= 256 - 2 ** (24 - prefix)  # aligned to the subnet's size
    return IPv4Network(f"10.{200 + digest[0] % 50}.{third}.0/{prefix}")


@dataclass(frozen=True)
class SimNames:
    """Names and addresses of one virtual cluster's resources (no I/O)."""

    cluster: str
    subnet: IPv4Network

    @property
    def short(self) -> str:
        return short_name(self.cluster)

    @property
    def bridge(self) -> str:
        return f"ph-{self.short}"

    def switch(self, index: int) -> str:
        """The switch (bridge) node `index` is plugged into: the first up to
        PORTS_PER_SWITCH nodes, then one more per PORTS_PER_SWITCH."""
        number = index // PORTS_PER_SWITCH
        return self.bridge if number == 0 else f"{self.stack_prefix}s{number}"

    def uplink(self, number: int) -> tuple[str, str]:
        """The cable from the first switch to switch `number` (its two ends)."""
        return f"{self.stack_prefix}u{number}", f"{self.stack_prefix}d{number}"

    @property
    def stack_prefix(self) -> str:
        """What the names of stacked switches and uplinks start with: "_" appears in no
        cluster's other names, so no other cluster's link can start with it."""
        return f"ph_{self.short}_"

    def veth(self, index: int) -> str:
        """Host side of node `index`'s cable (the node side is eth0 or host0)."""
        return f"ph{self.short}-{index}"

    @property
    def veth_prefix(self) -> str:
        return f"ph{self.short}-"

    def netns(self, node: str) -> str:
        return f"piherd-{self.cluster}-{node}"

    @property
    def netns_prefix(self) -> str:
        return f"piherd-{self.cluster}-"

    @property
    def cgroup(self) -> str:
        """Directory name of the cluster's cgroup in every hierarchy."""
        return f"piherd-{self.cluster}"

    @property
    def nft_table(self) -> str:
        return f"piherd-{self.cluster}"

    @property
    def gateway(self) -> IPv4Address:
        return self.subnet.network_address + 1

    def address(self, index: int) -> IPv4Address:
        """Static address of node `index` (0 = head)."""
        return self.subnet.network_address + FIRST_HOST + index

    def pool(self) -> tuple[IPv4Address, IPv4Address]:
        base = self.subnet.network_address
        return base + POOL[0], base + POOL[1]

    def dhcp_address(self, index: int) -> IPv4Address:
        """The router's fixed lease for node `index` (its bootstrap address)."""
        if index > POOL[1] - POOL[0]:
            raise ValueError(f"at most {POOL[1] - POOL[0] + 1} full nodes fit the DHCP pool")
        return self.subnet.network_address + POOL[0] + index

    @property
    def router_mac(self) -> str:
        """The switch's own (the router's) MAC: locally administered, fixed per cluster."""
        digest = _digest("router:" + self.cluster)
        return "02:" + ":".join(f"{b:02x}" for b in digest[:5])

    def mac(self, index: int) -> str:
        tag = _digest(self.cluster)[2]
        return f"{PI4_MAC_PREFIX}:{tag:02x}:{index >> 8:02x}:{index & 0xFF:02x}"


def state_dir(name: str, root: Path = STATE_ROOT) -> Path:
    return root / name
