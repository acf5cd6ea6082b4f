"""The cluster as typed, immutable data: nodes, network, groups and services."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Literal

from piherd.model.service import ServiceSet

Role = Literal["head", "worker"]

OS_RELEASES: tuple[str, ...] = ("bullseye", "bookworm", "trixie")
NETWORK_STACKS: tuple[str, ...] = ("networkmanager", "dhcpcd", "networkd")
# Raspberry Pi OS moved from dhcpcd to NetworkManager with bookworm.
DEFAULT_STACK: Mapping[str, str] = {
    "bullseye": "dhcpcd",
    "bookworm": "networkmanager",
    "trixie": "networkmanager",
}
BUILTIN_GROUPS: tuple[str, ...] = ("all", "head", "workers", "compute")


@dataclass(frozen=True)
class Network:
    """The cluster's LAN: where nodes live and what they must stay out of."""

    subnet: IPv4Network
    gateway: IPv4Address | None
    dns: tuple[IPv4Address, ...]
    router_dhcp_pool: tuple[IPv4Address, IPv4Address] | None = None
    # MAC prefixes `piherd discover` counts as Pis, beside Raspberry Pi's own.
    pi_mac_prefixes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Node:
    """One machine of the cluster, after the naming plan and overrides are applied."""

    name: str
    address: IPv4Address
    role: Role
    os: str
    interface: str
    network_stack: str
    groups: tuple[str, ...] = ()
    mac: str | None = None
    serial: str | None = None
    cpus: int | None = None
    memory_mb: int | None = None
    compute: bool = True
    # Where the node answers before piherd gave it its static address
    # (a DHCP lease, or name.local); None when it already has it.
    bootstrap_address: str | None = None

    @property
    def is_head(self) -> bool:
        return self.role == "head"


@dataclass(frozen=True)
class HealthRules:
    """Thresholds for `piherd status` and `piherd watch`."""

    temp_warn_c: float = 75.0
    temp_crit_c: float = 80.0
    clock_offset_crit_s: float = 1.0
    disk_warn_pct: float = 90.0
    disk_crit_pct: float = 98.0
    watch_enabled: bool = False
    # One round a second: a node that loses power is drained within ~4 s (docs/health.md);
    # clusters of hundreds of nodes set 5-10 s (each round probes every node).
    watch_interval_s: float = 1.0


@dataclass(frozen=True)
class Cluster:
    """A whole cluster, as loaded and validated from cluster.toml."""

    name: str
    domain: str
    admin_user: str
    network: Network
    nodes: tuple[Node, ...]
    groups: Mapping[str, tuple[str, ...]]  # every group, built-in ones included
    services: ServiceSet = field(default_factory=ServiceSet)
    health: HealthRules = HealthRules()
    ssh_public_key: str = ""  # path of the admin's public key, as written in the file
    ssh_port: int = 22
    secrets_dir: Path = Path("secrets")
    # Extra OpenSSH client config and known_hosts for this cluster (the sim writes both);
    # None means the user's own (~/.ssh/config, ~/.ssh/known_hosts).
    ssh_config: Path | None = None
    known_hosts: Path | None = None
    # The private key piherd logs in with; None means the usual ones (ssh_config, ~/.ssh).
    ssh_identity: Path | None = None
    source: Path | None = None

    # Derived views, computed once per Cluster object (cached_property writes the
    # instance's __dict__, which a frozen dataclass allows; `replace` makes a new object
    # with an empty cache). Renderers ask them once per node: at 10,000 nodes anything
    # that walks `nodes` per node is 10^8 steps.
    @cached_property
    def head(self) -> Node:
        return next(n for n in self.nodes if n.is_head)

    @cached_property
    def workers(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if not n.is_head)

    @cached_property
    def compute_nodes(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.compute)

    @cached_property
    def releases(self) -> frozenset[str]:
        """The OS releases the nodes run."""
        return frozenset(n.os for n in self.nodes)

    @cached_property
    def _by_name(self) -> Mapping[str, Node]:
        return {n.name: n for n in reversed(self.nodes)}  # the first of a name wins

    def node(self, name: str) -> Node:
        """The node called `name`; KeyError when there is none."""
        return self._by_name[name]

    def fqdn(self, node: Node) -> str:
        return f"{node.name}.{self.domain}" if self.domain else node.name
