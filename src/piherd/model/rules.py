"""Semantic checks of a loaded cluster: every rule reports a located, fixable problem."""

from __future__ import annotations

import re
from collections.abc import Mapping, Set
from typing import Any

from piherd.model.cluster import BUILTIN_GROUPS, Cluster, HealthRules
from piherd.model.nodecheck import HOST, LABEL, check_nodes, fold_names, fold_values
from piherd.model.nodesets import NodeSetError, expand
from piherd.model.origin import Origin
from piherd.model.reader import Reader

_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_ABS_PATH = re.compile(r"^/[A-Za-z0-9_./\-]*$")
# Directories a shared disk must never be exported from or mounted over.
_SYSTEM_DIRS = frozenset(
    (
        "/",
        "/bin",
        "/boot",
        "/dev",
        "/etc",
        "/lib",
        "/proc",
        "/root",
        "/sbin",
        "/sys",
        "/usr",
        "/var",
    )
)
# The same shapes render/apt.py accepts: an apt URL and a name usable in a config key.
_URL = re.compile(r"^https?://[A-Za-z0-9.\-]+(:[0-9]+)?(/[A-Za-z0-9._~/\-]*)?$")
_UPSTREAM_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_GROUP_REF = re.compile(r"@([A-Za-z0-9_.\-]+)")
# Slurm time limits: minutes, [days-]hours:minutes[:seconds], or no limit.
_MAX_TIME = re.compile(r"^(INFINITE|UNLIMITED|\d+|\d+:\d{2}(:\d{2})?|\d+-\d+(:\d{2}){0,2})$")
_PARTITION = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")


def resolve_groups(
    reader: Reader, table: Mapping[str, Any], groups: dict[str, tuple[str, ...]]
) -> None:
    """Add the [groups] table's node sets to `groups`, reporting bad ones.

    A group may use groups defined after it (`big = "@rack2&@compute"` above `rack2`):
    each is resolved once the groups it names are; a circle is reported.
    """
    pending: dict[str, str] = {}
    for name, expression in table.items():
        path = f"groups.{name}"
        if name in BUILTIN_GROUPS:
            reader.problem(
                path, f"@{name} is built in and cannot be redefined", "choose another group name"
            )
        elif not LABEL.match(name):
            reader.problem(
                path, f"invalid group name {name!r}", "use lower-case letters, digits and '-'"
            )
        elif not isinstance(expression, str):
            reader.problem(path, "must be a node set in quotes", f'e.g. {name} = "node[01-04]"')
        else:
            pending[name] = expression
    while pending:
        ready = [
            n for n, e in pending.items() if not set(_GROUP_REF.findall(e)) & (set(pending) - {n})
        ]
        if not ready:
            circle = ", ".join("@" + n for n in pending)
            for name in pending:
                reader.problem(
                    f"groups.{name}",
                    f"groups name each other in a circle: {circle}",
                    "define at least one of them by node names",
                )
            return
        for name in ready:
            _resolve_group(reader, name, pending.pop(name), groups)


def _resolve_group(
    reader: Reader, name: str, expression: str, groups: dict[str, tuple[str, ...]]
) -> None:
    path, known = f"groups.{name}", groups["all"]
    try:
        members = expand(expression, groups, known)
    except NodeSetError as exc:
        reader.problem(path, str(exc), "name nodes of the cluster or existing groups")
        return
    if not members:
        reader.problem(path, f"group @{name} is empty", "give it at least one node")
        return
    order = {n: i for i, n in enumerate(known)}
    merged = set(groups.get(name, ())) | set(members)
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
            _check_services(cluster, reader)


def _check_identity(cluster: Cluster, reader: Reader) -> None:
    if cluster.name and not LABEL.match(cluster.name):
        reader.problem(
            "cluster.name",
            f"{cluster.name!r} is not a valid name",
            "use lower-case letters, digits and '-', at most 63 characters",
        )
    if cluster.domain and not all(LABEL.match(p) for p in cluster.domain.split(".")):
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
    h = cluster.health
    for warn, crit in (("temp_warn_c", "temp_crit_c"), ("disk_warn_pct", "disk_crit_pct")):
        if getattr(h, warn) >= getattr(h, crit):
            reader.problem(
                f"health.{warn}",
                f"warning ({getattr(h, warn)}) must be below critical ({getattr(h, crit)})",
                f"e.g. {warn} = {getattr(HealthRules(), warn)}, "
                f"{crit} = {getattr(HealthRules(), crit)}",
            )
    for key in ("disk_warn_pct", "disk_crit_pct"):
        if not 0 < getattr(h, key) <= 100:
            reader.problem(f"health.{key}", f"{getattr(h, key)} is not a percentage", "use 1-100")
    for key in ("clock_offset_crit_s", "watch_interval_s"):
        if getattr(h, key) <= 0:
            reader.problem(f"health.{key}", f"must be positive, not {getattr(h, key)}")
    if h.watch_enabled and cluster.nodes and cluster.head.os == "bullseye":
        reader.problem(
            "health.watch_enabled",
            f"the watch service runs piherd on the head ({cluster.head.name}), which needs "
            "Python 3.11; the head runs bullseye (Python 3.9)",
            "move the head to bookworm, or run `piherd watch` from your own machine instead",
        )


def _nodeset(cluster: Cluster, reader: Reader, path: str, expression: str) -> list[str]:
    try:
        members = expand(expression, cluster.groups, cluster.groups["all"])
    except NodeSetError as exc:
        known = ", ".join("@" + g for g in cluster.groups)
        reader.problem(path, str(exc), f"use node names and groups of this cluster: {known}")
        return []
    if not members:
        reader.problem(path, f"node set {expression!r} is empty", "it must name at least one node")
    return members


def _check_services(cluster: Cluster, reader: Reader) -> None:
    svc = cluster.services
    if svc.storage.enabled:
        _check_storage(cluster, reader)
    if svc.slurm.enabled:
        _check_slurm(cluster, reader)
    if svc.mpi.enabled:
        for impl in svc.mpi.implementations:
            if impl not in ("openmpi", "mpich"):
                reader.problem(
                    "services.mpi.implementations",
                    f"unknown MPI {impl!r}",
                    'use "openmpi" and/or "mpich"',
                )
    if svc.dnsmasq.enabled:
        _check_dnsmasq(cluster, reader)
    if svc.package_cache.enabled:
        for name, url in svc.package_cache.upstreams.items():
            if not (_UPSTREAM_NAME.match(name) and _URL.match(url)):
                reader.problem(
                    "services.package_cache.upstreams",
                    f"bad upstream {name} = {url!r}",
                    'a lower-case name and an http(s) URL, e.g. debian = "http://deb.debian.org/debian/"',
                )
    if not 0 < svc.package_cache.port < 65536:
        reader.problem(
            "services.package_cache.port",
            f"{svc.package_cache.port} is not a TCP port",
            "apt-cacher-ng listens on 3142 by default",
        )
    if svc.time.enabled and not svc.time.upstream:
        reader.problem(
            "services.time.upstream",
            "the head has no upstream time server",
            'e.g. upstream = ["2.debian.pool.ntp.org"]',
        )
    for server in svc.time.upstream if svc.time.enabled else ():
        if not HOST.match(server):
            reader.problem(
                "services.time.upstream",
                f"{server!r} is not a host name or address",
                'e.g. "2.debian.pool.ntp.org" or "192.168.1.1"',
            )


def _absolute(reader: Reader, path: str, value: str) -> bool:
    if not _ABS_PATH.match(value) or ".." in value.split("/"):
        reader.problem(path, f"{value!r} is not an absolute path", 'e.g. "/srv/cluster"')
        return False
    if value.rstrip("/") in _SYSTEM_DIRS or value == "/":
        reader.problem(
            path,
            f"{value!r} is a system directory",
            'use a directory of its own, e.g. "/srv/cluster"',
        )
        return False
    return True


def _check_storage(cluster: Cluster, reader: Reader) -> None:
    """The server is a node, paths are safe, clients a node set. The server may be a
    client too: the renderer bind-mounts the export (or uses it as is when the paths
    are equal)."""
    storage = cluster.services.storage
    if storage.server and storage.server not in cluster.groups["all"]:
        reader.problem(
            "services.storage.server",
            f"storage is mounted from {storage.server!r}, which is not a node of the cluster",
            "leave server out to export from the head, or name the node that exports it",
        )
    _absolute(reader, "services.storage.export", storage.export)
    _absolute(reader, "services.storage.mount", storage.mount)
    _nodeset(cluster, reader, "services.storage.clients", storage.clients)


def _check_slurm(cluster: Cluster, reader: Reader) -> None:
    slurm = cluster.services.slurm
    if not cluster.compute_nodes:
        reader.problem(
            "services.slurm",
            "Slurm is enabled but no node computes",
            "add a worker, or set head_computes = true",
        )
        return
    if slurm.cgroup_mountpoint:
        _absolute(reader, "services.slurm.cgroup_mountpoint", slurm.cgroup_mountpoint)
    if slurm.slurmd_timeout < 1:
        reader.problem(
            "services.slurm.slurmd_timeout", f"must be positive, not {slurm.slurmd_timeout}"
        )
    defaults = [p.name for p in slurm.partitions if p.default]
    if len(defaults) > 1:
        reader.problem(
            "services.slurm.partitions",
            f"several default partitions: {', '.join(defaults)}",
            "mark only one with default = true",
        )
    computes = {n.name for n in cluster.compute_nodes}
    seen: set[str] = set()
    for index, part in enumerate(slurm.partitions):
        path = f"services.slurm.partitions[{index}]"
        if not _PARTITION.match(part.name):
            reader.problem(
                f"{path}.name", f"invalid partition name {part.name!r}", "letters, digits, '_', '-'"
            )
        elif part.name in seen:
            reader.problem(
                f"{path}.name",
                f"duplicate partition {part.name!r}",
                "give each partition its own name",
            )
        seen.add(part.name)
        if not _MAX_TIME.match(part.max_time):
            reader.problem(
                f"{path}.max_time",
                f"{part.max_time!r} is not a Slurm time limit",
                'minutes ("90"), "hours:minutes:seconds", "days-hours" or "INFINITE"',
            )
        members = _nodeset(cluster, reader, f"{path}.nodes", part.nodes)
        idle = [m for m in members if m not in computes]
        if idle:
            reader.problem(
                f"{path}.nodes",
                f"{fold_names(idle)} do not compute",
                "use @compute, or set head_computes = true",
            )


def _check_dnsmasq(cluster: Cluster, reader: Reader) -> None:
    dnsmasq, net = cluster.services.dnsmasq, cluster.network
    if dnsmasq.tftp:
        _absolute(reader, "services.dnsmasq.tftp_root", dnsmasq.tftp_root)
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
