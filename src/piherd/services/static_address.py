"""The node's static address in its OS's network stack: NetworkManager, dhcpcd or networkd."""

from __future__ import annotations

import uuid
from ipaddress import IPv4Address

from piherd.model import Cluster, Node
from piherd.model.service import Service
from piherd.model.specs import FileSpec, RenderContext
from piherd.render.spec import text
from piherd.services.dnsmasq import DnsmasqSettings
from piherd.services.netboot import settings_of as netboot_settings

# dhcpcd.conf as Raspberry Pi OS bullseye ships it, minus comments; piherd writes the
# whole file so that a stale static block from an earlier edit cannot survive.
_DHCPCD_DEFAULTS = (
    "hostname",
    "clientid",
    "persistent",
    "option rapid_commit",
    "option domain_name_servers, domain_name, domain_search, host_name",
    "option classless_static_routes",
    "option interface_mtu",
    "require dhcp_server_identifier",
    "slaac private",
)


def dns_servers(cluster: Cluster, node: Node) -> list[IPv4Address]:
    """The resolvers a node uses: the head first when it serves DNS (dnsmasq), then the LAN's."""
    servers = list(cluster.network.dns)
    if cluster.services.is_on(DnsmasqSettings) and not node.is_head:
        servers.insert(0, cluster.head.address)
    return list(dict.fromkeys(servers))


def render(cluster: Cluster, node: Node) -> dict[str, FileSpec]:
    """One file for the node's network stack (see model.DEFAULT_STACK); none for a node
    that boots from the network, whose kernel sets its address (services.netboot)."""
    if node.name in netboot_settings(cluster).node_models:
        return {}
    if node.network_stack == "dhcpcd":
        spec = _dhcpcd(cluster, node)
    elif node.network_stack == "networkd":
        spec = _networkd(cluster, node)
    else:
        spec = _networkmanager(cluster, node)
    return {spec.path: spec}


def _prefixed(cluster: Cluster, node: Node) -> str:
    return f"{node.address}/{cluster.network.subnet.prefixlen}"


def _networkmanager(cluster: Cluster, node: Node) -> FileSpec:
    name = f"piherd-{node.interface}"
    # A stable uuid: the same profile on every render, different per node and interface.
    profile_id = uuid.uuid5(uuid.NAMESPACE_DNS, f"{node.interface}.{cluster.fqdn(node)}")
    gateway = cluster.network.gateway
    dns = dns_servers(cluster, node)
    lines = [
        "[connection]",
        f"id={name}",
        f"uuid={profile_id}",
        "type=ethernet",
        f"interface-name={node.interface}",
        "autoconnect=true",
        # Above the image's own "Wired connection 1"/"preconfigured" profiles.
        "autoconnect-priority=100",
        "",
        "[ethernet]",
        "",
        "[ipv4]",
        "method=manual",
        f"address1={_prefixed(cluster, node)}" + (f",{gateway}" if gateway else ""),
    ]
    if dns:
        lines.append("dns=" + "".join(f"{a};" for a in dns))
    if cluster.domain:
        lines.append(f"dns-search={cluster.domain};")
    if not gateway:
        lines.append("never-default=true")
    lines += ["", "[ipv6]", "method=ignore"]
    return text(
        cluster,
        f"/etc/NetworkManager/system-connections/{name}.nmconnection",
        lines,
        mode=0o600,  # NetworkManager ignores keyfiles that others can read
        reloads=("NetworkManager.service",),
    )


def _dhcpcd(cluster: Cluster, node: Node) -> FileSpec:
    gateway = cluster.network.gateway
    dns = dns_servers(cluster, node)
    lines = [*_DHCPCD_DEFAULTS, "", f"interface {node.interface}"]
    lines.append(f"static ip_address={_prefixed(cluster, node)}")
    if gateway:
        lines.append(f"static routers={gateway}")
    if dns:
        lines.append(f"static domain_name_servers={' '.join(str(a) for a in dns)}")
    return text(cluster, "/etc/dhcpcd.conf", lines, restarts=("dhcpcd.service",))


def _networkd(cluster: Cluster, node: Node) -> FileSpec:
    gateway = cluster.network.gateway
    lines = ["[Match]", f"Name={node.interface}", "", "[Network]"]
    lines.append(f"Address={_prefixed(cluster, node)}")
    if gateway:
        lines.append(f"Gateway={gateway}")
    lines += [f"DNS={a}" for a in dns_servers(cluster, node)]
    if cluster.domain:
        lines.append(f"Domains={cluster.domain}")
    lines += ["LinkLocalAddressing=no", "IPv6AcceptRA=no"]
    return text(
        cluster,
        f"/etc/systemd/network/10-piherd-{node.interface}.network",
        lines,
        restarts=("systemd-networkd.service",),
    )


class NetworkService(Service):
    """Always on: the node's static address, in the network stack its OS uses."""

    def files(self, cluster: Cluster, node: Node, ctx: RenderContext) -> list[FileSpec]:
        del ctx
        return list(render(cluster, node).values())
