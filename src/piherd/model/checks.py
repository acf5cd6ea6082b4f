"""Semantic checks of a loaded cluster: every rule reports a located, fixable problem."""

from __future__ import annotations

import re
from collections.abc import Mapping, Set
from typing import Any

from piherd.model.cluster import BUILTIN_GROUPS, Cluster, HealthRules
from piherd.model.escape import shorten, shown
from piherd.model.nodecheck import LABEL, check_nodes
from piherd.model.nodesets import NodeSetError, members
from piherd.model.origin import Origin
from piherd.model.paths import is_system_dir, normal_path, system_tree
from piherd.model.reader import Reader

_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
_GROUP_REF = re.compile(r"@([A-Za-z0-9_.\-]+)")
# Groups in [groups]: enough for racks, roles and partitions of the largest cluster.
MAX_GROUPS = 1000


def resolve_groups(
    reader: Reader, table: Mapping[str, Any], groups: dict[str, tuple[str, ...]]
) -> None:
    """Add the [groups] table's node sets to `groups`, reporting bad ones.

    A group may use groups defined after it (`big = "@rack2&@compute"` above `rack2`):
    each is resolved once the groups it names are; a circle is reported.
    """
    if len(table) > MAX_GROUPS:
        reader.problem(
            "groups",
            f"{len(table)} groups; piherd reads at most {MAX_GROUPS}",
            "group nodes by rack or role; a node set can name several groups at once",
        )
        return
    pending: dict[str, set[str]] = {}  # name -> the groups its expression names
    expressions: dict[str, str] = {}
    for name, expression in table.items():
        path = f"groups.{name}"
        if name in BUILTIN_GROUPS:
            reader.problem(
                path, f"@{name} is built in and cannot be redefined", "choose another group name"
            )
        elif not LABEL.fullmatch(name):
            reader.problem(
                path, f"invalid group name {shown(name)}", "use lower-case letters, digits and '-'"
            )
        elif not isinstance(expression, str):
            reader.problem(path, "must be a node set in quotes", f'e.g. {name} = "node[01-04]"')
        else:
            expressions[name] = expression
            pending[name] = set(_GROUP_REF.findall(expression))
    order = {n: i for i, n in enumerate(groups["all"])}
    while pending:
        ready = [n for n, refs in pending.items() if not any(r in pending and r != n for r in refs)]
        if not ready:
            circle = ", ".join("@" + n for n in pending)
            for name in pending:
                reader.problem(
                    f"groups.{name}",
                    f"groups name each other in a circle: {shorten(circle, 200)}",
                    "define at least one of them by node names",
                )
            return
        for name in ready:
            del pending[name]
            _resolve_group(reader, name, expressions[name], groups, order)


def _resolve_group(
    reader: Reader,
    name: str,
    expression: str,
    groups: dict[str, tuple[str, ...]],
    order: dict[str, int],
) -> None:
    path = f"groups.{name}"
    try:
        found = members(expression, groups, order.keys())
    except NodeSetError as exc:
        reader.problem(path, str(exc), "name nodes of the cluster or existing groups")
        return
    if not found:
        reader.problem(path, f"group @{name} is empty", "give it at least one node")
        return
    merged = set(groups.get(name, ())) | found
    groups[name] = tuple(sorted(merged, key=order.__getitem__))


def check_cluster(
    cluster: Cluster,
    origins: Mapping[str, Origin],
    reader: Reader,
    unaddressed: Set[str],
    network_ok: bool = True,
) -> None:
    """Run every rule that the parts of the file which loaded allow; problems go to `reader`."""
    _check_identity(cluster, reader)
    _check_health(cluster, reader)
    if network_ok:
        _check_network(cluster, reader)
    if cluster.nodes:
        check_nodes(cluster, origins, reader, unaddressed)
        if network_ok:
            for service in cluster.services:
                service.check(cluster, reader)


def _check_identity(cluster: Cluster, reader: Reader) -> None:
    if cluster.name and not LABEL.fullmatch(cluster.name):
        reader.problem(
            "cluster.name",
            f"{cluster.name!r} is not a valid name",
            "use lower-case letters, digits and '-', at most 63 characters",
        )
    if cluster.domain and not all(LABEL.fullmatch(p) for p in cluster.domain.split(".")):
        reader.problem(
            "cluster.domain",
            f"{cluster.domain!r} is not a valid DNS domain",
            'e.g. "cluster.lan"; each part lower-case letters, digits and "-"',
        )
    if not _USER.fullmatch(cluster.admin_user):
        reader.problem(
            "cluster.admin_user",
            f"{cluster.admin_user!r} is not a valid user name",
            "lower-case letters, digits, '_' and '-', starting with a letter",
        )
    if not 0 < cluster.ssh_port < 65536:
        reader.problem("cluster.ssh_port", f"{cluster.ssh_port} is not a TCP port", "use 1-65535")


def _check_network(cluster: Cluster, reader: Reader) -> None:
    net = cluster.network
    if net.gateway is not None:
        if net.gateway not in net.subnet:
            reader.problem(
                "network.gateway",
                f"{net.gateway} is outside the subnet {net.subnet}",
                "the router must be on the cluster's LAN",
            )
        elif net.gateway in (net.subnet.network_address, net.subnet.broadcast_address):
            reader.problem(
                "network.gateway",
                f"{net.gateway} is the subnet's network or broadcast address",
                f"the router is usually {net.subnet.network_address + 1}",
            )
    if net.router_dhcp_pool and not all(a in net.subnet for a in net.router_dhcp_pool):
        low, high = net.router_dhcp_pool
        reader.problem(
            "network.router_dhcp_pool",
            f"pool {low}-{high} is not inside {net.subnet}",
            "copy the pool from the router's DHCP page",
        )


def _check_health(cluster: Cluster, reader: Reader) -> None:
    """Warnings below criticals; each number's own range is the reader's (load.HEALTH_BOUNDS)."""
    h = cluster.health
    for warn, crit in (("temp_warn_c", "temp_crit_c"), ("disk_warn_pct", "disk_crit_pct")):
        if getattr(h, warn) >= getattr(h, crit):
            reader.problem(
                f"health.{warn}",
                f"warning ({getattr(h, warn)}) must be below critical ({getattr(h, crit)})",
                f"e.g. {warn} = {getattr(HealthRules(), warn)}, "
                f"{crit} = {getattr(HealthRules(), crit)}",
            )


def nodeset_members(cluster: Cluster, reader: Reader, path: str, expression: str) -> list[str]:
    """The nodes of `expression`, in the cluster's order; a problem at `path` when it is
    bad or empty."""
    try:
        found = members(expression, cluster.groups, frozenset(cluster.groups["all"]))
    except NodeSetError as exc:
        known = ", ".join("@" + g for g in list(cluster.groups)[:12])
        more = ", ..." if len(cluster.groups) > 12 else ""
        reader.problem(path, str(exc), f"use node names and groups of this cluster: {known}{more}")
        return []
    if not found:
        reader.problem(
            path, f"node set {shown(expression)} is empty", "it must name at least one node"
        )
    return [n for n in cluster.groups["all"] if n in found]


def absolute_path(reader: Reader, path: str, value: str, *, inside_system_ok: bool = False) -> bool:
    """True when `value` is a plain absolute path of its own; else a problem at `path`.

    The path is normalised first (`//etc`, `/etc/.` and `/srv/../etc` are `/etc`); a
    system directory is refused, and so, unless `inside_system_ok`, is any path inside a
    system tree (`/boot/firmware`, `/etc/ssh`): nothing is exported from or mounted there.
    """
    normal = normal_path(value)
    if normal is None:
        reader.problem(path, f"{shown(value)} is not an absolute path", 'e.g. "/srv/cluster"')
        return False
    tree = None if inside_system_ok else system_tree(normal)
    if is_system_dir(normal) or tree:
        what = "a system directory" if tree is None else f"inside the system directory {tree}"
        spelled = "" if normal == value else f" (that is {normal})"
        reader.problem(
            path,
            f"{shown(value)} is {what}{spelled}",
            'use a directory of its own, e.g. "/srv/cluster"',
        )
        return False
    return True
