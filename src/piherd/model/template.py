"""Write a new, commented cluster.toml from a few answers (what `piherd init` asks)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from typing import TYPE_CHECKING

import tomlkit
from tomlkit.items import Table

from piherd.model.naming import planned_name

if TYPE_CHECKING:
    from piherd.model.service import InitTable, Service


@dataclass(frozen=True)
class Answers:
    """Everything `piherd init` needs; defaults are those of the loader."""

    nodes: int
    subnet: IPv4Network
    first: IPv4Address
    prefix: str = "node"
    width: int = 2
    start: int = 1
    head: str = ""  # the first node when empty
    gateway: IPv4Address | None = None
    dns: tuple[IPv4Address, ...] = ()
    router_pool: tuple[IPv4Address, IPv4Address] | None = None
    name: str = "picluster"
    domain: str = "cluster.lan"
    admin_user: str = "pi"
    os: str = "bookworm"
    ssh_key: str = "~/.ssh/id_ed25519.pub"
    macs: Mapping[str, str] = field(default_factory=dict)
    # The services' own answers (Service.init_flags), by InitFlag.dest.
    options: Mapping[str, object] = field(default_factory=dict)

    def option_text(self, dest: str, default: str) -> str:
        """A service's one-word answer (a choice), or `default` when not given."""
        value = self.options.get(dest)
        return value if isinstance(value, str) else default

    def option_on(self, dest: str) -> bool:
        """Whether a service's on/off flag was given."""
        return self.options.get(dest) is True

    def option_texts(self, dest: str) -> tuple[str, ...]:
        """A service's repeatable answer, in the order given."""
        value = self.options.get(dest)
        return tuple(v for v in value if isinstance(v, str)) if isinstance(value, tuple) else ()

    def option_range(self, dest: str) -> tuple[IPv4Address, IPv4Address] | None:
        """A service's address range answer "A-B", or None."""
        value = self.options.get(dest)
        if isinstance(value, tuple) and len(value) == 2:
            low, high = value
            if isinstance(low, IPv4Address) and isinstance(high, IPv4Address):
                return low, high
        return None


def put_commented(table: Table, key: str, value: object, comment: str) -> None:
    """`key = value  # comment` (tomlkit wraps bools and ints, which cannot take a comment)."""
    item = tomlkit.item(value)
    item.comment(comment)
    table.add(key, item)


def default_first(
    subnet: IPv4Network,
    count: int,
    pool: tuple[IPv4Address, IPv4Address] | None = None,
) -> IPv4Address:
    """`.11` of the subnet when the nodes fit after it, else the address after the gateway;
    moved past the router's DHCP pool when they would land in it."""
    hosts = subnet.num_addresses - 2
    first = subnet.network_address + (11 if hosts >= 11 + count else 2)
    if pool and first <= pool[1] and pool[0] <= first + count - 1:
        first = pool[1] + 1
    return first


def example_router_pool(
    subnet: IPv4Network, first: IPv4Address, count: int, gateway: IPv4Address
) -> tuple[IPv4Address, IPv4Address] | None:
    """A plausible home-router DHCP pool inside `subnet`, clear of the nodes and the gateway,
    for the commented example `init` writes: `.100-.199` where it fits (a /24), else the
    upper half of the hosts; None when the subnet has no room beside the nodes."""
    low_host = subnet.network_address + 1
    high_host = subnet.broadcast_address - 1
    hosts = subnet.num_addresses - 2
    if hosts >= 200:
        low, high = subnet.network_address + 100, subnet.network_address + 199
    else:
        low, high = subnet.network_address + 1 + hosts // 2, high_host
    last = first + count - 1
    if low <= last and first <= high:  # over the nodes: after them, or before them
        low, high = (last + 1, high) if last + 1 <= high else (low, first - 1)
    if low == gateway:
        low += 1
    if high == gateway:
        high -= 1
    if low > high or low < low_host or high > high_host:
        return None
    return low, high


def node_names(answers: Answers) -> list[str]:
    """The names the answers' naming plan gives, in order."""
    return [
        planned_name(answers.prefix, i, answers.width)
        for i in range(answers.start, answers.start + answers.nodes)
    ]


def _cluster(a: Answers) -> Table:
    t = tomlkit.table()
    put_commented(t, "name", a.name, "short name: lower-case letters, digits, '-'")
    put_commented(t, "domain", a.domain, "DNS domain: nodes are also <name>.<domain>")
    put_commented(t, "admin_user", a.admin_user, "the user piherd logs in as, with sudo")
    put_commented(t, "ssh_public_key", a.ssh_key, "installed for admin_user on every node")
    put_commented(t, "os", a.os, "default OS of the nodes: bullseye, bookworm or trixie")
    return t


def _network(a: Answers) -> Table:
    t = tomlkit.table()
    put_commented(t, "subnet", str(a.subnet), "the LAN the nodes live on")
    gateway = a.gateway or a.subnet.network_address + 1
    put_commented(t, "gateway", str(gateway), "the router")
    put_commented(t, "dns", [str(d) for d in (a.dns or (gateway,))], "name servers the nodes use")
    if a.router_pool:
        t.add(tomlkit.comment("the router's DHCP pool: node addresses must stay out of it"))
        t.add("router_dhcp_pool", f"{a.router_pool[0]}-{a.router_pool[1]}")
    else:
        t.add(tomlkit.comment("the router's DHCP pool, so piherd keeps nodes out of it, e.g.:"))
        example = example_router_pool(a.subnet, a.first, a.nodes, gateway)
        if example is not None:
            t.add(tomlkit.comment(f'router_dhcp_pool = "{example[0]}-{example[1]}"'))
    return t


def _naming(a: Answers, names: list[str]) -> Table:
    t = tomlkit.table()
    last = a.first + a.nodes - 1
    t.add(tomlkit.comment(f"{names[0]}..{names[-1]} on {a.first}..{last}: prefix + index"))
    t.add("prefix", a.prefix)
    put_commented(t, "width", a.width, "digits of the index, zero-padded (2: node01)")
    put_commented(t, "start", a.start, "index of the first node")
    put_commented(t, "count", a.nodes, "every node, the head included")
    put_commented(t, "first_address", str(a.first), "the others follow it, one by one")
    put_commented(t, "head", a.head or names[0], "serves time, storage and the Slurm controller")
    return t


def _init_table(wanted: InitTable) -> Table:
    table = tomlkit.table()
    if wanted.comment:
        table.add(tomlkit.comment(wanted.comment))
    for entry in wanted.entries:
        if entry.comment:
            put_commented(table, entry.key, entry.value, entry.comment)
        else:
            table.add(entry.key, entry.value)
    return table


def cluster_toml(a: Answers, services: Sequence[Service]) -> str:
    """The text of a commented cluster.toml for `a` (not validated here: load it).

    Each of `services` writes its own [services.NAME] table (Service.init_table).
    """
    names = node_names(a)
    doc = tomlkit.document()
    doc.add(tomlkit.comment("cluster.toml, written by `piherd init`. Every field is explained in"))
    doc.add(tomlkit.comment("docs/cluster-toml.md. Next: `piherd check`, then `piherd up`."))
    doc.add(tomlkit.nl())
    doc.add("cluster", _cluster(a))
    doc.add("network", _network(a))
    doc.add("naming", _naming(a, names))
    if a.macs:
        doc.add(tomlkit.comment("per-node overrides: any node can set address, mac, serial, role,"))
        doc.add(tomlkit.comment("groups, cpus, memory_mb, os, interface, network_stack, compute"))
        nodes = tomlkit.aot()
        for name in sorted(a.macs):
            entry = tomlkit.table()
            entry.add("name", name)
            entry.add("mac", a.macs[name])
            nodes.append(entry)
        doc.add("nodes", nodes)
    tables = tomlkit.table(is_super_table=True)
    for service in services:
        wanted = service.init_table(a)
        if wanted is not None:
            tables.add(service.name, _init_table(wanted))
    doc.add("services", tables)
    return tomlkit.dumps(doc)
