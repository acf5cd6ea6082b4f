"""Pure rendering of what a virtual cluster hands to the rest of piherd.

cluster.toml (so every other command works on the sim unchanged), an OpenSSH client
config (`ssh -F ssh_config node01`) and known_hosts with every node's host key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit

from piherd.sim.names import SimNames, node_width

DOMAIN = "sim.lan"
# Where slurmd finds cgroup v1 hierarchies inside a full node; the renderer mounts
# freezer, cpuset, memory and devices under it (docs/sim.md, "Slurm in a sim node").
CGROUP_V1_MOUNTPOINT = "/run/piherd-cgroup"


@dataclass(frozen=True)
class SimNode:
    """One node as the cluster file and SSH config see it."""

    index: int
    name: str
    address: str  # static address (what piherd will give it)
    reach: str  # the address it answers at now (DHCP lease for full nodes)
    host_keys: tuple[str, ...]  # "type base64"
    mac: str = ""
    serial: str = ""  # a netbooted node's (its TFTP directory)


@dataclass(frozen=True)
class SimFiles:
    """Paths the cluster file points at."""

    private_key: Path
    public_key: Path
    ssh_config: Path
    known_hosts: Path


def render_cluster(
    names: SimNames,
    nodes: Sequence[SimNode],
    files: SimFiles,
    *,
    light: bool,
    blank: bool = False,
    release: str = "bookworm",
    vm: bool = False,
    netboot: bool = False,
) -> str:
    """cluster.toml text for the virtual cluster. Blank nodes are listed by name and MAC
    (their address comes from their image, their host keys from `piherd image`). VM nodes
    have a kernel of their own: NFS storage, a clock chrony may set, Slurm's default
    cgroups."""
    network: dict[str, Any] = {"subnet": str(names.subnet), "gateway": str(names.gateway)}
    if not light:
        low, high = names.pool()
        network["router_dhcp_pool"] = f"{low}-{high}"
    doc: dict[str, Any] = {
        "cluster": {
            "name": names.cluster,
            "domain": DOMAIN,
            "admin_user": "root" if light else "pi",
            "ssh_public_key": str(files.public_key),
            "ssh_config": str(files.ssh_config),
            "known_hosts": str(files.known_hosts),
            "interface": "eth0" if light or vm else "host0",
            "os": release,
        },
        "network": network,
        "naming": {
            "prefix": "node",
            "width": node_width(len(nodes)),
            "count": len(nodes),
            "first_address": str(names.address(0)),
        },
        "services": {
            "time": {"container": True},
            "storage": {"kind": "sshfs"},
            "slurm": {"cgroup_mountpoint": CGROUP_V1_MOUNTPOINT},
            "package_cache": {"enabled": False},
        }
        if not vm
        else {"storage": {"kind": "nfs"}, "package_cache": {"enabled": False}},
    }
    if netboot:
        # The workers boot from the head through iPXE: no disk, an address from the kernel.
        doc["services"]["netboot"] = {"enabled": True, "models": {"ipxe": "@workers"}}
    if blank:
        doc["nodes"] = [{"name": n.name, "mac": n.mac} for n in nodes]
    elif not light:
        doc["nodes"] = [
            {"name": n.name, "serial": n.serial}
            if n.serial
            else {"name": n.name, "bootstrap_address": n.reach}
            for n in nodes
        ]
    header = (
        f"# Virtual cluster {names.cluster!r}, written by `piherd sim up`.\n"
        "# Regenerated on every `sim up`; copy it elsewhere before editing.\n"
    )
    return header + tomlkit.dumps(doc)


def render_ssh_config(nodes: Sequence[SimNode], files: SimFiles, user: str) -> str:
    """`ssh -F THIS node01`: the sim's key, the sim's known_hosts, strict checking."""
    blocks = [f"# ssh client config of a piherd virtual cluster (user {user})\n"]
    for node in nodes:
        blocks.append(
            f"Host {node.name} {node.name}.{DOMAIN}\n"
            f"    HostName {node.reach}\n"
            f"    HostKeyAlias {node.name}\n"
        )
    blocks.append(
        "Host *\n"
        f"    User {user}\n"
        f"    IdentityFile {files.private_key}\n"
        "    IdentitiesOnly yes\n"
        f"    UserKnownHostsFile {files.known_hosts}\n"
        "    GlobalKnownHostsFile /dev/null\n"
        "    StrictHostKeyChecking yes\n"
        "    CheckHostIP no\n"
        "    BatchMode yes\n"
        "    ConnectTimeout 5\n"
        "    LogLevel ERROR\n"
    )
    return "\n".join(blocks)


def render_known_hosts(nodes: Sequence[SimNode]) -> str:
    """One line per host key, for the node's names and both of its addresses."""
    lines = []
    for node in nodes:
        hosts = [node.name, f"{node.name}.{DOMAIN}", node.address]
        if node.reach != node.address:
            hosts.append(node.reach)
        lines += [f"{','.join(hosts)} {key}" for key in node.host_keys]
    return "\n".join(lines) + "\n"


def node_table(nodes: Sequence[SimNode]) -> Mapping[str, SimNode]:
    return {n.name: n for n in nodes}
