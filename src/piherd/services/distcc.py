"""distcc: distccd on the workers for the cluster subnet only; the head compiles through them.

Each worker runs `distccd` from Debian's package as piherd's own unit
(`piherd-distccd.service`), listening on the node's cluster address only and accepting
clients from the cluster subnet only (`--allow`); Debian's own init script stays masked
so nothing else listens. The head (and every other client node) gets /etc/distcc/hosts
naming the workers with one slot per CPU, so `make -j CC="distcc gcc"` there spreads
the compiles over them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from piherd.model import Cluster, Node, expand
from piherd.model.checks import nodeset_members
from piherd.model.reader import Reader
from piherd.model.service import InitEntry, InitTable, Service
from piherd.model.specs import FileSpec, RenderContext, UnitSpec
from piherd.render.spec import by_address, node_cpus, text

if TYPE_CHECKING:
    from piherd.model.template import Answers

UNIT = "piherd-distccd.service"
UNIT_PATH = f"/etc/systemd/system/{UNIT}"
HOSTS = "/etc/distcc/hosts"
MAX_JOBS = 256


@dataclass(frozen=True)
class DistccSettings:
    """[services.distcc]: distributed compilation, off by default."""

    enabled: bool = False
    servers: str = "@workers"  # nodes that run distccd
    clients: str = "@head"  # nodes whose /etc/distcc/hosts lists the servers
    port: int = 3632
    jobs: int = 0  # compiles at once per server; 0 = the server's CPUs
    nice: int = 10  # distccd's niceness, so Slurm jobs on a worker keep the CPU first


def _members(cluster: Cluster, expression: str) -> list[str]:
    return expand(expression, cluster.groups, cluster.groups["all"])


def servers(cluster: Cluster) -> list[Node]:
    """The nodes that run distccd, by address."""
    names = set(_members(cluster, cluster.services.get(DistccSettings).servers))
    return by_address(n for n in cluster.nodes if n.name in names)


def _jobs(node: Node, ctx: RenderContext, settings: DistccSettings) -> int:
    return settings.jobs or node_cpus(node, ctx) or 1


def server_unit(cluster: Cluster, node: Node, ctx: RenderContext) -> FileSpec:
    """distccd as a systemd service: the node's address only, the subnet only."""
    settings = cluster.services.get(DistccSettings)
    argv = [
        "/usr/bin/distccd",
        "--daemon",
        "--no-detach",
        "--log-stderr",
        "--log-level=info",
        f"--listen={node.address}",
        f"--port={settings.port}",
        f"--allow={cluster.network.subnet}",
        f"--jobs={_jobs(node, ctx, settings)}",
        f"--nice={settings.nice}",
    ]
    return text(
        cluster,
        UNIT_PATH,
        [
            "[Unit]",
            "Description=distcc compile server for the cluster subnet (piherd)",
            "After=network-online.target",
            "Wants=network-online.target",
            "",
            "[Service]",
            "User=distccd",
            f"ExecStart={' '.join(argv)}",
            "Restart=on-failure",
            "NoNewPrivileges=yes",
            "ProtectSystem=full",
            "PrivateTmp=yes",
            "",
            "[Install]",
            "WantedBy=multi-user.target",
        ],
        restarts=(UNIT,),
    )


def client_hosts(cluster: Cluster, ctx: RenderContext) -> FileSpec:
    """/etc/distcc/hosts: every server with its job slots (no local compiles listed)."""
    settings = cluster.services.get(DistccSettings)
    entries = [f"{n.address}:{settings.port}/{_jobs(n, ctx, settings)}" for n in servers(cluster)]
    return text(
        cluster,
        HOSTS,
        [
            "# distcc servers of this cluster (services.distcc), address:port/slots.",
            "# Use: make -j<sum of slots> CC='distcc gcc'  (DISTCC_HOSTS overrides this file)",
            " ".join(entries),
        ],
    )


class DistccService(Service):
    """distccd on the workers (cluster subnet only); the head as the client."""

    name = "distcc"
    keys = ("enabled", "servers", "clients", "port", "jobs", "nice")

    def read(self, reader: Reader, table: dict[str, Any]) -> DistccSettings:
        path, d = "services.distcc", DistccSettings()
        return DistccSettings(
            enabled=reader.get(table, path, "enabled", bool, d.enabled),
            servers=reader.get(table, path, "servers", str, d.servers),
            clients=reader.get(table, path, "clients", str, d.clients),
            port=reader.number(table, path, "port", d.port, 1, 65535),
            jobs=reader.number(table, path, "jobs", d.jobs, 0, MAX_JOBS),
            nice=reader.number(table, path, "nice", d.nice, 0, 19),
        )

    def check(self, cluster: Cluster, reader: Reader) -> None:
        settings = cluster.services.get(DistccSettings)
        if not settings.enabled:
            return
        nodeset_members(cluster, reader, "services.distcc.servers", settings.servers)
        nodeset_members(cluster, reader, "services.distcc.clients", settings.clients)

    def init_table(self, answers: Answers) -> InitTable:
        del answers
        return InitTable(
            "distcc: the workers compile for the head (make -j CC='distcc gcc')",
            (InitEntry("enabled", False),),
        )

    def _is_server(self, cluster: Cluster, node: Node) -> bool:
        return node.name in _members(cluster, cluster.services.get(DistccSettings).servers)

    def _is_client(self, cluster: Cluster, node: Node) -> bool:
        return node.name in _members(cluster, cluster.services.get(DistccSettings).clients)

    def files(self, cluster: Cluster, node: Node, ctx: RenderContext) -> list[FileSpec]:
        specs = []
        if self._is_server(cluster, node):
            specs.append(server_unit(cluster, node, ctx))
        if self._is_client(cluster, node):
            specs.append(client_hosts(cluster, ctx))
        return specs

    def packages(self, cluster: Cluster, node: Node) -> list[str]:
        wanted = set()
        if self._is_server(cluster, node):
            wanted |= {"distcc", "gcc", "g++"}  # distccd runs only compilers it finds
        if self._is_client(cluster, node):
            wanted |= {"distcc", "gcc", "g++", "make"}
        return sorted(wanted)

    def units(self, cluster: Cluster, node: Node) -> list[UnitSpec]:
        if not (self._is_server(cluster, node) or self._is_client(cluster, node)):
            return []
        # Debian's init script would start a second distccd with its own settings.
        result = [UnitSpec("distcc.service", enable=False, masked=True)]
        if self._is_server(cluster, node):
            result.append(UnitSpec(UNIT))
        return result

    def health_units(self, cluster: Cluster, node: Node) -> tuple[str, ...]:
        return ("piherd-distccd",) if self._is_server(cluster, node) else ()
