"""dnsmasq on the head: DNS for every node, DHCP reservations by MAC, TFTP for netboot."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import TYPE_CHECKING, Any

from piherd.model import Cluster, Node
from piherd.model.checks import absolute_path
from piherd.model.naming import address_range
from piherd.model.nodecheck import fold_names, fold_values
from piherd.model.reader import Reader
from piherd.model.service import InitEntry, InitFlag, InitTable, Service
from piherd.model.specs import FileSpec, RenderContext, UnitSpec
from piherd.render.spec import by_address, safe_path, text
from piherd.services.time import TimeSettings

CONF = "/etc/dnsmasq.d/piherd.conf"

if TYPE_CHECKING:
    from piherd.model.template import Answers


@dataclass(frozen=True)
class DnsmasqSettings:
    """[services.dnsmasq]: DHCP reservations, DNS and TFTP (netboot) served by the head."""

    enabled: bool = False
    dhcp: bool = True
    dhcp_range: tuple[IPv4Address, IPv4Address] | None = None
    tftp: bool = False
    tftp_root: str = "/srv/tftp"


def render(cluster: Cluster, node: Node) -> dict[str, FileSpec]:
    """/etc/dnsmasq.d/piherd.conf on the head when services.dnsmasq is enabled."""
    svc = cluster.services.get(DnsmasqSettings)
    if not svc.enabled or not node.is_head:
        return {}
    net = cluster.network
    lines = [
        f"interface={node.interface}",
        # Follows the interface's address as it comes and goes (boot order safe).
        "bind-dynamic",
        "domain-needed",
        "bogus-priv",
    ]
    if cluster.domain:
        lines += [f"domain={cluster.domain}", f"local=/{cluster.domain}/"]
    lines += ["", "# Every node, forward and reverse."]
    for other in by_address(cluster.nodes):
        names = [cluster.fqdn(other), other.name] if cluster.domain else [other.name]
        lines.append(f"host-record={','.join(dict.fromkeys(names))},{other.address}")
    if svc.dhcp:
        lines += ["", "# DHCP: fixed addresses by MAC; other devices get the range, if any."]
        if svc.dhcp_range:
            low, high = svc.dhcp_range
            lines.append(f"dhcp-range={low},{high},{net.subnet.netmask},12h")
        else:
            lines.append(f"dhcp-range={net.subnet.network_address},static,{net.subnet.netmask},12h")
        # Without this dnsmasq announces itself as the router.
        lines.append(f"dhcp-option=option:router{f',{net.gateway}' if net.gateway else ''}")
        if cluster.services.is_on(TimeSettings):
            lines.append(f"dhcp-option=option:ntp-server,{node.address}")
        if cluster.domain:
            lines.append(f"dhcp-option=option:domain-search,{cluster.domain}")
        for other in by_address(cluster.nodes):
            if other.mac:
                lines.append(f"dhcp-host={other.mac.lower()},{other.name},{other.address}")
    if svc.tftp:
        root = safe_path(svc.tftp_root, "services.dnsmasq.tftp_root")
        lines += ["", "# TFTP for network boot.", "enable-tftp", f"tftp-root={root}"]
        if svc.dhcp:
            # Raspberry Pi boot ROMs netboot only when the offer carries this PXE service.
            lines.append('pxe-service=0,"Raspberry Pi Boot"')
    return {CONF: text(cluster, CONF, lines, restarts=("dnsmasq.service",))}


def _check(cluster: Cluster, reader: Reader) -> None:
    dnsmasq, net = cluster.services.get(DnsmasqSettings), cluster.network
    if dnsmasq.tftp:
        absolute_path(reader, "services.dnsmasq.tftp_root", dnsmasq.tftp_root)
    if not dnsmasq.dhcp:
        return
    span = dnsmasq.dhcp_range
    if span is None:
        if not any(n.mac for n in cluster.nodes):
            reader.problem(
                "services.dnsmasq.dhcp",
                "DHCP is on but has nothing to hand out: no dhcp_range and no node has a mac",
                'add mac = ".." to the nodes for reservations, set dhcp_range, or dhcp = false',
            )
        return
    low, high = span
    if not (low in net.subnet and high in net.subnet):
        reader.problem(
            "services.dnsmasq.dhcp_range",
            f"{low}-{high} is not inside {net.subnet}",
            "the head hands out addresses of the cluster LAN only",
        )
        return
    inside = [n for n in cluster.nodes if low <= n.address <= high]
    if inside:
        addresses = fold_values([str(n.address) for n in inside])
        reader.problem(
            "services.dnsmasq.dhcp_range",
            f"range {low}-{high} holds the static addresses of "
            f"{fold_names(n.name for n in inside)} ({addresses})",
            "keep the dynamic range apart from the nodes' addresses",
        )
    if net.gateway is not None and low <= net.gateway <= high:
        reader.problem(
            "services.dnsmasq.dhcp_range",
            f"range {low}-{high} holds the gateway {net.gateway}",
            "keep the dynamic range apart from the router's address",
        )
    pool = net.router_dhcp_pool
    if pool and low <= pool[1] and pool[0] <= high:
        reader.problem(
            "services.dnsmasq.dhcp_range",
            f"range {low}-{high} overlaps the router's DHCP pool {pool[0]}-{pool[1]}",
            "two DHCP servers must not hand out the same addresses",
        )


class DnsmasqService(Service):
    """dnsmasq on the head: DNS for every node, DHCP reservations by MAC, TFTP."""

    name = "dnsmasq"
    keys = ("enabled", "dhcp", "dhcp_range", "tftp", "tftp_root")
    init_flags = (
        InitFlag(
            "--dnsmasq",
            "DHCP reservations and DNS served by the head.",
            is_flag=True,
            field="services.dnsmasq.dhcp",
        ),
        InitFlag(
            "--dhcp-range",
            "dnsmasq's dynamic range A-B (outside the nodes' addresses).",
            is_range=True,
            field="services.dnsmasq.dhcp_range",
        ),
    )

    def read(self, reader: Reader, table: dict[str, Any]) -> DnsmasqSettings:
        path = "services.dnsmasq"
        return DnsmasqSettings(
            enabled=reader.get(table, path, "enabled", bool, False),
            dhcp=reader.get(table, path, "dhcp", bool, True),
            dhcp_range=(
                address_range(reader, table["dhcp_range"], f"{path}.dhcp_range")
                if "dhcp_range" in table
                else None
            ),
            tftp=reader.get(table, path, "tftp", bool, False),
            tftp_root=reader.get(table, path, "tftp_root", str, "/srv/tftp"),
        )

    def check(self, cluster: Cluster, reader: Reader) -> None:
        if cluster.services.is_on(DnsmasqSettings):
            _check(cluster, reader)

    def init_table(self, answers: Answers) -> InitTable:
        entries = [InitEntry("enabled", answers.option_on("dnsmasq"))]
        span = answers.option_range("dhcp_range")
        if span:
            low, high = span
            entries.append(InitEntry("dhcp_range", f"{low}-{high}"))
        return InitTable(
            "DHCP reservations (by mac), DNS and TFTP served by the head", tuple(entries)
        )

    def files(self, cluster: Cluster, node: Node, ctx: RenderContext) -> list[FileSpec]:
        del ctx
        return list(render(cluster, node).values())

    def packages(self, cluster: Cluster, node: Node) -> tuple[str, ...]:
        return ("dnsmasq",) if node.is_head else ()

    def units(self, cluster: Cluster, node: Node) -> list[UnitSpec]:
        return [UnitSpec("dnsmasq.service")] if node.is_head else []

    def packages_from_head(self, cluster: Cluster, node: Node) -> bool:
        # The head is the node's only resolver when the LAN lists none of its own.
        return not node.is_head and not cluster.network.dns
