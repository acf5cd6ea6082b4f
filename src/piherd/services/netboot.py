"""Network boot from the head: TFTP per Pi serial, one read-only NFS root, writes in memory.

The head runs dnsmasq as the Pis' boot server: beside a home router it answers as a
proxy (the router keeps handing out addresses; the head adds only the boot offer), and
where the head is the LAN's DHCP server (services.dnsmasq) it adds the offer to its own
answers. TFTP serves one directory per node, named by the board's serial number as
the Pi 4/5 bootloader asks for it (image/netboot_files.py). The firmware and kernel
files come from a Raspberry Pi OS boot partition; cmdline.txt is written here, per
node: it names the node's address and host name, the head's shared root and the init
that gives the node its writable layer.

Every netbooted node mounts the same root read-only over NFS (v3: what the kernel's
NFS root and initramfs-tools' nfsmount speak). piherd-overlay-init, run as the node's
first process, lays a tmpfs over it: the node writes as usual, the shared root never
changes, and a reboot brings the node back exactly as the root is. Nodes are identical
by construction; updating the root and rebooting them upgrades all at once.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Literal

from piherd.image.netboot_files import IPXE_SCRIPT, MODELS, per_node_file, tftp_directory
from piherd.model import Cluster, Node, expand
from piherd.model.checks import absolute_path, nodeset_members
from piherd.model.escape import has_unsafe_char, shown
from piherd.model.nodecheck import fold_names
from piherd.model.nodesets import NodeSetError
from piherd.model.reader import Reader
from piherd.model.service import Service
from piherd.model.specs import DirSpec, FileSpec, RenderContext, UnitSpec
from piherd.render.spec import RenderError, header, safe_path, text
from piherd.services.dnsmasq import DnsmasqSettings
from piherd.services.storage import NFS_SERVER_UNIT

CONF = "/etc/dnsmasq.d/piherd-netboot.conf"
EXPORTS = "/etc/exports.d/piherd-netboot.exports"
OVERLAY_INIT = "/usr/local/sbin/piherd-overlay-init"  # inside the shared root

# The node's first process (init= on its command line): the shared root stays
# read-only, a tmpfs takes the node's writes, then systemd starts on the overlay.
# The pattern of raspi-config's overlay file system, without rebuilding an initramfs.
_OVERLAY_INIT = r"""# The root is the head's shared NFS root, read-only; this node's writes go to a
# tmpfs laid over it and are gone at the next boot (piherd services.netboot).
PATH=/usr/sbin:/usr/bin:/sbin:/bin
readonly_root() {
    echo "piherd-overlay-init: $1; starting on the read-only root" >/dev/console
    exec /sbin/init
}
mount -t tmpfs -o mode=0755 piherd-layer /mnt || readonly_root "no tmpfs for the layer"
mkdir -p /mnt/lower /mnt/upper /mnt/work /mnt/root
mount --bind / /mnt/lower || readonly_root "cannot bind the root"
mount -t overlay -o lowerdir=/mnt/lower,upperdir=/mnt/upper,workdir=/mnt/work \
    piherd-root /mnt/root || readonly_root "no overlay file system"
# What the kernel or the initramfs mounted (/dev, /proc, /sys, /run) moves along: the
# bind above took the root alone. A kernel that mounted no /dev gets one here.
for d in dev proc sys run; do
    ! mountpoint -q "/$d" || mount --move "/$d" "/mnt/root/$d"
done
mountpoint -q /mnt/root/dev || mount -t devtmpfs devtmpfs /mnt/root/dev
mkdir -p /mnt/root/run/piherd-shared-root
cd /mnt/root || readonly_root "the overlay vanished"
pivot_root . run/piherd-shared-root || readonly_root "pivot_root failed"
exec chroot . /sbin/init "$@" <dev/console >dev/console 2>&1
"""


@dataclass(frozen=True)
class NetbootSettings:
    """[services.netboot]: which nodes boot from the head, and from what.

    `node_models` (node name -> "pi4"/"pi5") is derived once the nodes are known.
    """

    enabled: bool = False
    nodes: str = "@workers"
    models: tuple[tuple[str, str], ...] = ()  # (model, node set) from the models table
    dhcp: Literal["proxy", "full", ""] = ""  # "": full when services.dnsmasq serves DHCP
    tftp_root: str = "/srv/tftp"
    root: str = "/srv/netboot/root"
    node_models: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


def settings_of(cluster: Cluster) -> NetbootSettings:
    """The cluster's netboot settings."""
    return cluster.services.get(NetbootSettings)


def netbooted(cluster: Cluster) -> list[Node]:
    """The nodes that boot from the head, in the cluster's order."""
    names = settings_of(cluster).node_models
    return [n for n in cluster.nodes if n.name in names]


def full_dhcp(cluster: Cluster) -> bool:
    """True when the head's own DHCP server (services.dnsmasq) makes the boot offer."""
    svc = cluster.services.get(DnsmasqSettings)
    return svc.enabled and svc.dhcp


def kernel_command_line(cluster: Cluster, node: Node) -> str:
    """cmdline.txt of a netbooted node: its address and name, the shared root, the layer.

    The address is set by the kernel (ip=), not by DHCP or NetworkManager: a node whose
    root is on the network must never take its interface down.
    """
    net, head, svc = cluster.network, cluster.head, settings_of(cluster)
    root = safe_path(svc.root, "services.netboot.root")
    gateway = str(net.gateway) if net.gateway else ""
    if svc.node_models.get(node.name) == "ipxe":
        # A PC's serial port; classic interface names, as the node's interface (eth0).
        consoles = ["console=tty0", "console=ttyS0,115200", "net.ifnames=0"]
    else:
        consoles = ["console=serial0,115200", "console=tty1"]
    words = [
        *consoles,
        "root=/dev/nfs",
        f"nfsroot={head.address}:{root},vers=3,tcp,nolock",
        f"ip={node.address}::{gateway}:{net.subnet.netmask}:{node.name}:{node.interface}:off",
        "ro",
        "rootwait",
        f"init={OVERLAY_INIT}",
    ]
    return " ".join(words)


def _dnsmasq_conf(cluster: Cluster, node: Node) -> FileSpec:
    svc = settings_of(cluster)
    tftp_root = safe_path(svc.tftp_root, "services.netboot.tftp_root")
    lines = []
    if not cluster.services.is_on(DnsmasqSettings):
        lines += [
            "# Boot server only: DNS stays with the LAN's resolver.",
            "port=0",
            f"interface={node.interface}",
            "bind-dynamic",
        ]
    if not full_dhcp(cluster):
        lines += [
            "# The LAN's router hands out addresses; the head adds only the boot offer.",
            f"dhcp-range={cluster.network.subnet.broadcast_address},proxy",
        ]
    models = set(svc.node_models.values())
    pi = "0," if "ipxe" not in models else "tag:!ipxe,0,"
    if "ipxe" in models:
        lines += [
            # iPXE says so in option 175; it loads the first script, which chains to the
            # machine's own directory by its serial (a dotted name gets no ".0" added).
            "dhcp-match=set:ipxe,175",
            f'pxe-service=tag:ipxe,x86PC,"piherd iPXE",{IPXE_SCRIPT}',
        ]
    if models - {"ipxe"}:
        # Raspberry Pi bootloaders netboot only when the offer carries this PXE service.
        lines.append(f'pxe-service={pi}"Raspberry Pi Boot"')
    lines += ["enable-tftp", f"tftp-root={tftp_root}"]
    return text(cluster, CONF, lines, restarts=("dnsmasq.service",))


def _export_hosts(cluster: Cluster) -> list[str]:
    """The subnet when every other node netboots; otherwise each netbooted node's address."""
    booting = netbooted(cluster)
    if len(booting) == len(cluster.nodes) - 1:
        return [str(cluster.network.subnet)]
    return [f"{n.address}/32" for n in sorted(booting, key=lambda n: n.address)]


def export_fsid(root: str) -> int:
    """A stable, non-zero NFS fsid for the shared root (0 is NFSv4's pseudo root)."""
    return zlib.crc32(root.encode()) % 0x7FFFFFFF or 1


def _exports(cluster: Cluster) -> FileSpec:
    root = safe_path(settings_of(cluster).root, "services.netboot.root")
    # no_root_squash: root on the node must read its own root-only files (/etc/shadow).
    # fsid: the nodes' file handles name the export by this number, not by the inode of
    # its top directory, so they stay valid when `piherd netboot build` swaps a new tree
    # in (the old one is kept until the next build): running nodes go on until reset.
    options = f"ro,no_root_squash,no_subtree_check,async,fsid={export_fsid(root)}"
    entries = " ".join(f"{host}({options})" for host in _export_hosts(cluster))
    lines = [
        "# The netbooted nodes' shared root, read-only (services.netboot).",
        f"{root} {entries}",
    ]
    return text(cluster, EXPORTS, lines, reloads=(NFS_SERVER_UNIT,))


def _one_line(path: str, line: str) -> FileSpec:
    """A file of exactly one line (cmdline.txt has no room for piherd's header)."""
    if has_unsafe_char(line):
        raise RenderError(f"{path}: the line would hold a control character: {shown(line)}")
    return FileSpec(path, f"{line}\n".encode(), 0o644, "root", "root")


def _ipxe_script(cluster: Cluster, path: str, lines: list[str]) -> FileSpec:
    """An iPXE script: its magic first, then piherd's header (iPXE reads # as a comment)."""
    for line in lines:
        if has_unsafe_char(line) or "$" in line:  # iPXE would expand ${...}
            raise RenderError(f"{path}: the line would change the script: {shown(line)}")
    body = "#!ipxe\n" + header(cluster) + "".join(f"{line}\n" for line in lines)
    return FileSpec(path, body.encode(), 0o644, "root", "root")


def _node_boot_file(cluster: Cluster, tftp_root: str, node: Node, serial: str) -> FileSpec:
    """What piherd writes into the node's directory: cmdline.txt for a Pi; for iPXE, a
    script that loads the kernel and initramfs beside it with the same command line."""
    model = settings_of(cluster).node_models.get(node.name, "pi4")
    path = f"{tftp_root}/{tftp_directory(serial)}/{per_node_file(model)}"
    line = kernel_command_line(cluster, node)
    if model != "ipxe":
        return _one_line(path, line)
    # Relative names resolve against this script's own directory.
    return _ipxe_script(cluster, path, [f"kernel vmlinuz {line}", "initrd initrd.img", "boot"])


def render(cluster: Cluster, node: Node) -> dict[str, FileSpec]:
    """The head's boot server files, one cmdline.txt per netbooted node, the overlay init."""
    svc = settings_of(cluster)
    if not svc.enabled or not node.is_head:
        return {}
    tftp_root = safe_path(svc.tftp_root, "services.netboot.tftp_root")
    root = safe_path(svc.root, "services.netboot.root")
    specs = [_dnsmasq_conf(cluster, node), _exports(cluster)]
    for other in netbooted(cluster):
        if other.serial is None:  # refused by check(); nothing to name the directory by
            continue
        specs.append(_node_boot_file(cluster, tftp_root, other, other.serial))
    if "ipxe" in svc.node_models.values():
        # iPXE's first script, the same for all: on to the machine's own directory.
        chain = _ipxe_script(cluster, f"{tftp_root}/{IPXE_SCRIPT}", [])
        body = chain.content + b"chain ${serial}/" + IPXE_SCRIPT.encode() + b"\n"
        specs.append(replace(chain, content=body))
    init = f"#!/bin/sh\n{header(cluster)}{_OVERLAY_INIT}".encode()
    specs.append(FileSpec(f"{root}{OVERLAY_INIT}", init, 0o755, "root", "root"))
    return {s.path: s for s in specs}


def _read(reader: Reader, table: dict[str, Any]) -> NetbootSettings:
    path, default = "services.netboot", NetbootSettings()
    dhcp = reader.get(table, path, "dhcp", str, "")
    if "dhcp" in table and dhcp not in ("proxy", "full"):
        reader.problem(
            f"{path}.dhcp",
            f"{shown(dhcp)} is not a DHCP mode",
            '"proxy" beside a home router, "full" when the head serves DHCP (services.dnsmasq)',
        )
        dhcp = ""
    models: list[tuple[str, str]] = []
    raw = reader.get(table, path, "models", dict, {})
    for model, expression in raw.items():
        if model not in MODELS:
            reader.problem(
                f"{path}.models.{model}",
                f"unknown model {shown(model)}",
                f"netboot serves {', '.join(MODELS)}",
            )
        elif not isinstance(expression, str):
            reader.problem(f"{path}.models.{model}", "must be a node set in quotes")
        else:
            models.append((model, expression))
    return NetbootSettings(
        enabled=reader.get(table, path, "enabled", bool, False),
        nodes=reader.get(table, path, "nodes", str, default.nodes),
        models=tuple(models),
        dhcp=dhcp,  # type: ignore[arg-type]
        tftp_root=reader.get(table, path, "tftp_root", str, default.tftp_root),
        root=reader.get(table, path, "root", str, default.root),
    )


def _models_of(settings: NetbootSettings, cluster: Cluster, booting: list[str]) -> dict[str, str]:
    """Each netbooted node's model: the models table's, else a Pi 4."""
    names = cluster.groups["all"]
    found = dict.fromkeys(booting, "pi4")
    for model, expression in settings.models:
        try:
            chosen = set(expand(expression, cluster.groups, names))
        except NodeSetError:  # reported by check()
            continue
        for name in booting:
            if name in chosen:
                found[name] = model
    return found


def _check(cluster: Cluster, reader: Reader) -> None:
    svc, path = settings_of(cluster), "services.netboot"
    booting = nodeset_members(cluster, reader, f"{path}.nodes", svc.nodes)
    absolute_path(reader, f"{path}.tftp_root", svc.tftp_root)
    absolute_path(reader, f"{path}.root", svc.root)
    if cluster.head.name in booting:
        reader.problem(
            f"{path}.nodes",
            f"{cluster.head.name} is the head, which serves the boot; it cannot boot from itself",
            'leave the head out, e.g. nodes = "@workers"',
        )
    seen: dict[str, str] = {}
    for node in cluster.nodes:
        if node.name not in booting or node.is_head:
            continue
        if node.serial is None:
            reader.problem(
                f"{path}.nodes",
                f"{node.name} boots from the network but has no serial",
                f'add serial = ".." to {node.name}\'s [[nodes]] entry: the Pi asks for its '
                "files by it (cat /proc/device-tree/serial-number, or the bootloader's "
                "screen)",
            )
            continue
        directory = tftp_directory(node.serial)
        if directory in seen:
            reader.problem(
                f"{path}.nodes",
                f"{node.name} and {seen[directory]} share the serial directory {directory}",
                "each Pi's serial number is its own: check the serial of both nodes",
            )
        seen[directory] = node.name
    for model, expression in svc.models:
        listed = nodeset_members(cluster, reader, f"{path}.models.{model}", expression)
        strays = [name for name in listed if name not in svc.node_models]
        if strays:
            reader.problem(
                f"{path}.models.{model}",
                f"{fold_names(strays)}: not in services.netboot.nodes, so never netbooted",
                "list only netbooted nodes in models, or add them to nodes",
            )
    dnsmasq = cluster.services.get(DnsmasqSettings)
    if dnsmasq.enabled and dnsmasq.tftp:
        reader.problem(
            "services.dnsmasq.tftp",
            "netboot serves TFTP itself (services.netboot.tftp_root)",
            "remove tftp and tftp_root from [services.dnsmasq]",
        )
    if svc.dhcp == "full" and not full_dhcp(cluster):
        reader.problem(
            f"{path}.dhcp",
            '"full" needs the head to serve DHCP, and services.dnsmasq does not',
            'enable [services.dnsmasq] with dhcp = true, or use dhcp = "proxy"',
        )
    if svc.dhcp == "proxy" and full_dhcp(cluster):
        reader.problem(
            f"{path}.dhcp",
            "the head serves DHCP itself (services.dnsmasq); a proxy beside it is not needed",
            'use dhcp = "full", or leave dhcp out',
        )


class NetbootService(Service):
    """The head serves network boot: dnsmasq (proxy or full DHCP, TFTP) and an NFS root."""

    name = "netboot"
    keys = ("enabled", "nodes", "models", "dhcp", "tftp_root", "root")

    def read(self, reader: Reader, table: dict[str, Any]) -> NetbootSettings:
        return _read(reader, table)

    def derive(self, settings: NetbootSettings, cluster: Cluster) -> NetbootSettings:
        if not settings.enabled:  # nobody netboots: node_models stays empty
            return settings
        try:
            members = set(expand(settings.nodes, cluster.groups, cluster.groups["all"]))
        except NodeSetError:  # reported by check()
            members = set()
        booting = [n.name for n in cluster.nodes if n.name in members and not n.is_head]
        models = MappingProxyType(_models_of(settings, cluster, booting))
        return replace(settings, node_models=models)

    def check(self, cluster: Cluster, reader: Reader) -> None:
        if cluster.services.is_on(NetbootSettings):
            _check(cluster, reader)

    def files(self, cluster: Cluster, node: Node, ctx: RenderContext) -> list[FileSpec]:
        del ctx
        return list(render(cluster, node).values())

    def packages(self, cluster: Cluster, node: Node) -> tuple[str, ...]:
        # rsync: `piherd netboot build` copies the head's system with it.
        return ("dnsmasq", "nfs-kernel-server", "rsync") if node.is_head else ()

    def units(self, cluster: Cluster, node: Node) -> list[UnitSpec]:
        if not node.is_head:
            return []
        return [UnitSpec(NFS_SERVER_UNIT), UnitSpec("dnsmasq.service")]

    def directories(self, cluster: Cluster, node: Node) -> tuple[DirSpec, ...]:
        if not node.is_head:
            return ()
        svc = settings_of(cluster)
        tftp_root = safe_path(svc.tftp_root, "services.netboot.tftp_root")
        root = safe_path(svc.root, "services.netboot.root")
        serials = sorted(tftp_directory(n.serial) for n in netbooted(cluster) if n.serial)
        return (
            DirSpec(tftp_root),
            *(DirSpec(f"{tftp_root}/{s}") for s in serials),
            DirSpec(root),
            DirSpec("/etc/exports.d"),
        )

    def health_units(self, cluster: Cluster, node: Node) -> tuple[str, ...]:
        return ("dnsmasq.service", NFS_SERVER_UNIT) if node.is_head else ()
