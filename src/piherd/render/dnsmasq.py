"""dnsmasq on the head: DNS for every node, DHCP reservations by MAC, TFTP for netboot."""

from __future__ import annotations

from piherd.model import Cluster, Node
from piherd.render.spec import FileSpec, by_address, safe_path, text

CONF = "/etc/dnsmasq.d/piherd.conf"


def render(cluster: Cluster, node: Node) -> dict[str, FileSpec]:
    """/etc/dnsmasq.d/piherd.conf on the head when services.dnsmasq is enabled."""
    svc = cluster.services.dnsmasq
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
        if cluster.services.time.enabled:
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
