"""Semantic checks of a loaded cluster: every rule reports a located, fixable problem."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from piherd.model.cluster import BUILTIN_GROUPS, NETWORK_STACKS, OS_RELEASES, Cluster, Node
from piherd.model.nodesets import NodeSetError, expand
from piherd.model.reader import Reader

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_SERIAL = re.compile(r"^([0-9a-f]{8}|[0-9a-f]{16})$")
_INTERFACE = re.compile(r"^[A-Za-z0-9_.\-]{1,15}$")
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_ABS_PATH = re.compile(r"^/[A-Za-z0-9_./\-]*$")


def resolve_groups(
    reader: Reader, table: Mapping[str, Any], groups: dict[str, tuple[str, ...]]
) -> None:
    """Add the [groups] table's node sets to `groups`, reporting bad ones."""
    known = groups["all"]
    for name, expression in table.items():
        path = f"groups.{name}"
        if name in BUILTIN_GROUPS:
            reader.problem(
                path, f"@{name} is built in and cannot be redefined", "choose another group name"
            )
            continue
        if not _LABEL.match(name):
            reader.problem(
                path, f"invalid group name {name!r}", "use lower-case letters, digits and '-'"
            )
            continue
        if not isinstance(expression, str):
            reader.problem(path, "must be a node set in quotes", f'e.g. {name} = "node[01-04]"')
            continue
        try:
            members = expand(expression, groups, known)
        except NodeSetError as exc:
            reader.problem(path, str(exc), "name nodes of the cluster or existing groups")
            continue
        if not members:
            reader.problem(path, f"group @{name} is empty", "give it at least one node")
            continue
        groups[name] = tuple(sorted(set(groups.get(name, ())) | set(members), key=known.index))


def check_cluster(cluster: Cluster, node_paths: Mapping[str, str], reader: Reader) -> None:
    """Run every rule; problems go to `reader`."""
    _check_identity(cluster, reader)
    _check_nodes(cluster, node_paths, reader)
    _check_services(cluster, reader)


def _check_identity(cluster: Cluster, reader: Reader) -> None:
    if cluster.name and not _LABEL.match(cluster.name):
        reader.problem(
            "cluster.name",
            f"{cluster.name!r} is not a valid name",
            "use lower-case letters, digits and '-', at most 63 characters",
        )
    if cluster.domain and not all(_LABEL.match(p) for p in cluster.domain.split(".")):
        reader.problem(
            "cluster.domain",
            f"{cluster.domain!r} is not a valid DNS domain",
            'e.g. "cluster.lan"; each part lower-case letters, digits and "-"',
        )
    if not _USER.match(cluster.admin_user):
        reader.problem(
            "cluster.admin_user",
            f"{cluster.admin_user!r} is not a valid user name",
            "lower-case letters, digits, '_' and '-', starting with a letter",
        )
    if not 0 < cluster.ssh_port < 65536:
        reader.problem("cluster.ssh_port", f"{cluster.ssh_port} is not a TCP port", "use 1-65535")
    net = cluster.network
    if net.gateway is not None and net.gateway not in net.subnet:
        reader.problem(
            "network.gateway",
            f"{net.gateway} is outside the subnet {net.subnet}",
            "the router must be on the cluster's LAN",
        )
    if net.router_dhcp_pool and not all(a in net.subnet for a in net.router_dhcp_pool):
        reader.problem(
            "network.router_dhcp_pool",
            f"pool is not inside {net.subnet}",
            "copy the pool from the router's DHCP page",
        )
    h = cluster.health
    if h.temp_warn_c >= h.temp_crit_c:
        reader.problem(
            "health.temp_warn_c",
            f"warning ({h.temp_warn_c}) must be below critical ({h.temp_crit_c})",
            "e.g. temp_warn_c = 75, temp_crit_c = 80",
        )


def _check_nodes(cluster: Cluster, paths: Mapping[str, str], reader: Reader) -> None:
    heads = [n for n in cluster.nodes if n.is_head]
    if not heads:
        reader.problem(
            "naming.head",
            "the cluster has no head node",
            'set head = "node01" under [naming] or role = "head" on one node',
        )
    elif len(heads) > 1:
        for node in heads[1:]:
            reader.problem(
                f"{paths[node.name]}.role",
                f"{node.name} is a second head (the head is {heads[0].name})",
                'a cluster has one head: set role = "worker"',
            )
    seen: dict[str, dict[object, str]] = {"address": {}, "mac": {}, "serial": {}}
    for node in cluster.nodes:
        path = paths[node.name]
        _check_node(cluster, node, path, reader)
        for attr in seen:
            value = getattr(node, attr)
            if value is None:
                continue
            key = value.lower() if isinstance(value, str) else value
            if key in seen[attr]:
                reader.problem(
                    f"{path}.{attr}",
                    f"{node.name} has the same {attr} {value} as {seen[attr][key]}",
                    f"every node needs its own {attr}",
                )
            else:
                seen[attr][key] = node.name


def _check_node(cluster: Cluster, node: Node, path: str, reader: Reader) -> None:
    net = cluster.network
    if not _LABEL.match(node.name):
        reader.problem(
            f"{path}.name" if path != "naming" else "naming.prefix",
            f"{node.name!r} is not a valid hostname (RFC 1123)",
            "lower-case letters, digits and '-', not starting or ending with '-'",
        )
    where = f"{path}.address" if path != "naming" else "naming.first_address"
    if node.address not in net.subnet:
        reader.problem(
            where,
            f"{node.name}'s address {node.address} is outside {net.subnet}",
            "pick an address inside the subnet (or widen the subnet)",
        )
    elif node.address in (net.subnet.network_address, net.subnet.broadcast_address):
        kind = "network" if node.address == net.subnet.network_address else "broadcast"
        reader.problem(
            where,
            f"{node.name}'s address {node.address} is the {kind} address",
            "hosts cannot use it; pick another address",
        )
    elif node.address == net.gateway:
        reader.problem(
            where,
            f"{node.name}'s address {node.address} is the gateway's",
            "the router already has it",
        )
    elif (
        net.router_dhcp_pool and net.router_dhcp_pool[0] <= node.address <= net.router_dhcp_pool[1]
    ):
        low, high = net.router_dhcp_pool
        reader.problem(
            where,
            f"{node.name}'s address {node.address} is in the router's DHCP pool {low}-{high}",
            "the router could hand it to another device; pick an address outside the pool",
        )
    if node.mac is not None and not _MAC.match(node.mac.lower()):
        reader.problem(
            f"{path}.mac",
            f"{node.mac!r} is not a MAC address",
            'write six hex pairs with colons, e.g. "dc:a6:32:01:02:03"',
        )
    if node.serial is not None and not _SERIAL.match(node.serial.lower()):
        reader.problem(
            f"{path}.serial",
            f"{node.serial!r} is not a Pi serial number",
            "8 or 16 hex digits, as in /proc/device-tree/serial-number",
        )
    if node.os not in OS_RELEASES:
        reader.problem(
            f"{path}.os" if path != "naming" else "cluster.os",
            f"unsupported OS {node.os!r}",
            f"use one of {', '.join(OS_RELEASES)}",
        )
    if node.network_stack not in NETWORK_STACKS:
        reader.problem(
            f"{path}.network_stack" if path != "naming" else "cluster.network_stack",
            f"unknown network stack {node.network_stack!r}",
            f"use one of {', '.join(NETWORK_STACKS)}",
        )
    if not _INTERFACE.match(node.interface):
        reader.problem(
            f"{path}.interface",
            f"{node.interface!r} is not an interface name",
            'e.g. "eth0" on a Pi, "end0" on some boards',
        )
    for value, field in ((node.cpus, "cpus"), (node.memory_mb, "memory_mb")):
        if value is not None and value < 1:
            reader.problem(
                f"{path}.{field}",
                f"must be positive, not {value}",
                "leave it out to use what the node reports",
            )


def _nodeset(cluster: Cluster, reader: Reader, path: str, expression: str) -> list[str]:
    try:
        members = expand(expression, cluster.groups, cluster.groups["all"])
    except NodeSetError as exc:
        reader.problem(path, str(exc), "use node names and groups of this cluster (@all, @workers)")
        return []
    if not members:
        reader.problem(path, f"node set {expression!r} is empty", "it must name at least one node")
    return members


def _check_services(cluster: Cluster, reader: Reader) -> None:
    svc = cluster.services
    names = set(cluster.groups["all"])
    if svc.storage.enabled:
        if svc.storage.server and svc.storage.server not in names:
            reader.problem(
                "services.storage.server",
                f"storage is mounted from {svc.storage.server!r}, which is not a node "
                "that exports it",
                "leave server out to export from the head, or name a node",
            )
        for key in ("export", "mount"):
            value = getattr(svc.storage, key)
            if not _ABS_PATH.match(value) or ".." in value.split("/"):
                reader.problem(
                    f"services.storage.{key}",
                    f"{value!r} is not an absolute path",
                    'e.g. "/srv/cluster"',
                )
        _nodeset(cluster, reader, "services.storage.clients", svc.storage.clients)
    if svc.slurm.enabled:
        if not cluster.compute_nodes:
            reader.problem(
                "services.slurm",
                "Slurm is enabled but no node computes",
                "add a worker, or set head_computes = true",
            )
        defaults = [p.name for p in svc.slurm.partitions if p.default]
        if len(defaults) > 1:
            reader.problem(
                "services.slurm.partitions",
                f"several default partitions: {defaults}",
                "mark only one with default = true",
            )
        seen: set[str] = set()
        for index, part in enumerate(svc.slurm.partitions):
            path = f"services.slurm.partitions[{index}]"
            if part.name in seen:
                reader.problem(
                    f"{path}.name",
                    f"duplicate partition {part.name!r}",
                    "give each partition its own name",
                )
            seen.add(part.name)
            members = _nodeset(cluster, reader, f"{path}.nodes", part.nodes)
            idle = [m for m in members if not cluster.node(m).compute]
            if idle:
                reader.problem(
                    f"{path}.nodes",
                    f"{', '.join(idle)} do not compute",
                    "use @compute, or set head_computes = true",
                )
    if svc.mpi.enabled:
        for impl in svc.mpi.implementations:
            if impl not in ("openmpi", "mpich"):
                reader.problem(
                    "services.mpi.implementations",
                    f"unknown MPI {impl!r}",
                    'use "openmpi" and/or "mpich"',
                )
    if svc.dnsmasq.enabled and svc.dnsmasq.dhcp:
        _check_dhcp(cluster, reader)
    if svc.package_cache.enabled and not 0 < svc.package_cache.port < 65536:
        reader.problem(
            "services.package_cache.port",
            f"{svc.package_cache.port} is not a port",
            "apt-cacher-ng listens on 3142 by default",
        )
    if svc.time.enabled and not svc.time.upstream:
        reader.problem(
            "services.time.upstream",
            "the head has no upstream time server",
            'e.g. upstream = ["2.debian.pool.ntp.org"]',
        )


def _check_dhcp(cluster: Cluster, reader: Reader) -> None:
    net = cluster.network
    span = cluster.services.dnsmasq.dhcp_range
    if span is None:
        return
    low, high = span
    if not (low in net.subnet and high in net.subnet):
        reader.problem(
            "services.dnsmasq.dhcp_range",
            f"{low}-{high} is not inside {net.subnet}",
            "the head hands out addresses of the cluster LAN only",
        )
        return
    inside = [n.name for n in cluster.nodes if low <= n.address <= high]
    if inside:
        reader.problem(
            "services.dnsmasq.dhcp_range",
            f"range {low}-{high} holds the static addresses of {', '.join(inside)}",
            "keep the dynamic range apart from the nodes' addresses",
        )
    pool = net.router_dhcp_pool
    if pool and low <= pool[1] and pool[0] <= high:
        reader.problem(
            "services.dnsmasq.dhcp_range",
            f"range overlaps the router's DHCP pool {pool[0]}-{pool[1]}",
            "two DHCP servers must not hand out the same addresses",
        )
