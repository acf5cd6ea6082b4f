"""Load cluster.toml: TOML -> checked structure -> Cluster, or every problem at once."""

from __future__ import annotations

import re
import tomllib
from ipaddress import IPv4Address, IPv4Network, ip_address, ip_network
from pathlib import Path
from typing import Any

from piherd.model.cluster import (
    DEFAULT_STACK,
    Cluster,
    DnsmasqService,
    HealthRules,
    MpiService,
    Network,
    Node,
    PackageCacheService,
    Partition,
    Services,
    SlurmService,
    StorageService,
    TimeService,
)
from piherd.model.locate import Locator
from piherd.model.problems import ConfigError, Problem
from piherd.model.reader import Reader
from piherd.model.rules import check_cluster, resolve_groups

TOP_KEYS = ("cluster", "network", "naming", "nodes", "groups", "services", "health")
CLUSTER_KEYS = (
    "name",
    "domain",
    "admin_user",
    "ssh_public_key",
    "ssh_port",
    "ssh_config",
    "known_hosts",
    "os",
    "interface",
    "network_stack",
    "secrets_dir",
)
NETWORK_KEYS = ("subnet", "gateway", "dns", "router_dhcp_pool")
NAMING_KEYS = ("prefix", "width", "start", "count", "first_address", "head")
NODE_KEYS = (
    "name",
    "address",
    "role",
    "groups",
    "mac",
    "serial",
    "cpus",
    "memory_mb",
    "os",
    "interface",
    "network_stack",
    "compute",
    "bootstrap_address",
)
SERVICE_KEYS = ("time", "storage", "slurm", "mpi", "dnsmasq", "package_cache")
TIME_KEYS = ("enabled", "upstream", "container")
STORAGE_KEYS = ("enabled", "kind", "server", "export", "mount", "clients", "root_squash")
SLURM_KEYS = ("enabled", "head_computes", "partitions", "slurmd_timeout", "cgroup_mountpoint")
PARTITION_KEYS = ("name", "nodes", "default", "max_time")
MPI_KEYS = ("enabled", "implementations")
DNSMASQ_KEYS = ("enabled", "dhcp", "dhcp_range", "tftp", "tftp_root")
CACHE_KEYS = ("enabled", "port", "upstreams")
HEALTH_KEYS = (
    "temp_warn_c",
    "temp_crit_c",
    "clock_offset_crit_s",
    "disk_warn_pct",
    "disk_crit_pct",
    "watch_enabled",
    "watch_interval_s",
)

_TOML_POSITION = re.compile(r"\(at line (\d+), column (\d+)\)")


def load(path: Path) -> Cluster:
    """Read and validate `path`; ConfigError with every problem when it is not usable."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            [
                Problem(
                    0,
                    "",
                    f"cannot read the file: {exc.strerror or exc}",
                    "create one with `piherd init`",
                    str(path),
                )
            ],
            path,
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(
            [Problem(0, "", "not UTF-8 text", "save the file as UTF-8", str(path))], path
        ) from None
    return loads(text, str(path), base=path.parent)


def loads(text: str, file: str = "cluster.toml", base: Path | None = None) -> Cluster:
    """Parse and validate TOML text; `base` anchors relative paths (secrets_dir)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = _TOML_POSITION.search(str(exc))
        line = int(match.group(1)) if match else 0
        message = _TOML_POSITION.sub("", str(exc)).strip()
        raise ConfigError(
            [
                Problem(
                    line,
                    "",
                    f"TOML syntax error: {message}",
                    "fix the syntax at that line (quotes, brackets, '=')",
                    file,
                )
            ]
        ) from None
    reader = Reader(Locator(text), file)
    cluster, node_paths = _build(data, reader, base)
    if cluster is not None:
        check_cluster(cluster, node_paths, reader)
    if reader.problems or cluster is None:
        raise ConfigError(reader.problems)
    return cluster


def _address(reader: Reader, raw: object, path: str) -> IPv4Address | None:
    if not isinstance(raw, str):
        reader.problem(
            path, f"must be an IPv4 address in quotes, not {raw!r}", 'e.g. "192.168.1.10"'
        )
        return None
    try:
        value = ip_address(raw)
    except ValueError:
        reader.problem(path, f"{raw!r} is not an IP address", 'e.g. "192.168.1.10"')
        return None
    if not isinstance(value, IPv4Address):
        reader.problem(path, f"{raw!r} is IPv6; piherd plans IPv4 LANs", "use an IPv4 address")
        return None
    return value


def _range(reader: Reader, raw: object, path: str) -> tuple[IPv4Address, IPv4Address] | None:
    """An address range written "A-B" or ["A", "B"]."""
    parts = raw.split("-") if isinstance(raw, str) else raw
    if not (isinstance(parts, list) and len(parts) == 2):
        reader.problem(path, f"must be a range, not {raw!r}", 'write "192.168.1.100-192.168.1.199"')
        return None
    low, high = (_address(reader, p.strip() if isinstance(p, str) else p, path) for p in parts)
    if low is None or high is None:
        return None
    if low > high:
        reader.problem(path, f"range starts after it ends ({low} > {high})", "swap the two ends")
        return None
    return low, high


def _network(reader: Reader, data: dict[str, Any]) -> Network | None:
    table = reader.table(data, "network", "network", NETWORK_KEYS)
    raw = table.get("subnet")
    if raw is None:
        reader.problem("network.subnet", "missing", 'add subnet = "192.168.1.0/24" under [network]')
        return None
    try:
        subnet = ip_network(str(raw), strict=True)
    except ValueError as exc:
        reader.problem(
            "network.subnet",
            f"{raw!r} is not a network: {exc}",
            'write the network address and prefix, e.g. "192.168.1.0/24"',
        )
        return None
    if not isinstance(subnet, IPv4Network):
        reader.problem("network.subnet", "IPv6 subnets are not supported", "use an IPv4 subnet")
        return None
    gateway = _address(reader, table["gateway"], "network.gateway") if "gateway" in table else None
    dns_raw = reader.strings(table, "network", "dns", ())
    dns = tuple(a for d in dns_raw if (a := _address(reader, d, "network.dns")))
    pool = (
        _range(reader, table["router_dhcp_pool"], "network.router_dhcp_pool")
        if "router_dhcp_pool" in table
        else None
    )
    return Network(subnet, gateway, dns, pool)


def _planned_nodes(
    reader: Reader, data: dict[str, Any], network: Network
) -> dict[str, dict[str, Any]]:
    """Raw node entries from the naming plan, keyed by name, before overrides."""
    table = reader.table(data, "naming", "naming", NAMING_KEYS)
    if not table:
        return {}
    prefix = reader.get(table, "naming", "prefix", str, "node")
    width = reader.get(table, "naming", "width", int, 2)
    start = reader.get(table, "naming", "start", int, 1)
    count = reader.get(table, "naming", "count", int, 0)
    if count < 1:
        reader.problem(
            "naming.count",
            f"must be at least 1, not {count}",
            "count is the number of nodes, the head included",
        )
        return {}
    if len(str(start + count - 1)) > width > 0:
        reader.problem(
            "naming.width",
            f"{width} digit{'s' if width != 1 else ''} cannot number {count} nodes "
            f"from {start} (the last is {start + count - 1})",
            f"set width = {len(str(start + count - 1))} or fewer nodes",
        )
    first_raw = table.get("first_address")
    first = _address(reader, first_raw, "naming.first_address") if first_raw is not None else None
    if first is None:
        if first_raw is None:
            reader.problem(
                "naming.first_address",
                "missing",
                "give the address of the first node; the others follow it",
            )
        return {}
    plan: dict[str, dict[str, Any]] = {}
    for offset in range(count):
        name = f"{prefix}{start + offset:0{max(width, 0)}d}"
        plan[name] = {"name": name, "address": str(first + offset), "_path": "naming"}
    return plan


def _build(
    data: dict[str, Any], reader: Reader, base: Path | None
) -> tuple[Cluster | None, dict[str, str]]:
    reader.check_keys(data, "", TOP_KEYS)
    top = reader.table(data, "cluster", "cluster", CLUSTER_KEYS)
    network = _network(reader, data)
    reader.table(data, "services", "services", SERVICE_KEYS)  # unknown service names
    services = _services(reader, data)
    health = _health(reader, data)
    if network is None:
        return None, {}
    entries = _planned_nodes(reader, data, network)
    overrides = data.get("nodes", [])
    if not isinstance(overrides, list):
        reader.problem("nodes", "must be a list of tables", "write each node as [[nodes]]")
        overrides = []
    for index, raw in enumerate(overrides):
        path = f"nodes[{index}]"
        if not isinstance(raw, dict):
            reader.problem(path, "must be a table", "write each node as [[nodes]]")
            continue
        reader.check_keys(raw, path, NODE_KEYS)
        name = raw.get("name")
        if not isinstance(name, str):
            reader.problem(f"{path}.name", "missing or not a string", 'add name = "node05"')
            continue
        if name in entries and entries[name]["_path"] != "naming":
            reader.problem(
                f"{path}.name",
                f"duplicate node name {name!r}",
                f"it is already listed at line {reader.locator.line(entries[name]['_path'])}",
            )
            continue
        merged = {**entries.get(name, {}), **raw, "_path": path}
        entries[name] = merged
    if not entries:
        reader.problem(
            "naming",
            "the cluster has no nodes",
            "add a [naming] plan (prefix, count, first_address) or [[nodes]] entries",
        )
        return None, {}
    naming = data.get("naming", {}) if isinstance(data.get("naming"), dict) else {}
    head_name = naming.get("head") if isinstance(naming.get("head"), str) else None
    defaults = {
        "os": reader.get(top, "cluster", "os", str, "bookworm"),
        "interface": reader.get(top, "cluster", "interface", str, "eth0"),
        "network_stack": reader.get(top, "cluster", "network_stack", str, ""),
    }
    nodes: list[Node] = []
    node_paths: dict[str, str] = {}
    explicit_heads = [n for n, e in entries.items() if e.get("role") == "head"]
    if head_name is None and not explicit_heads:
        head_name = next(iter(entries))  # the first node of the plan is the head by default
    for name, entry in entries.items():
        node = _node(reader, entry, name == head_name, defaults, services.slurm.head_computes)
        if node is not None:
            nodes.append(node)
            node_paths[node.name] = entry["_path"]
    if head_name is not None and head_name not in entries:
        reader.problem(
            "naming.head",
            f"no node is called {head_name!r}",
            f"pick one of {', '.join(list(entries)[:4])}...",
        )
    groups = _groups(reader, data, nodes)

    def local_path(key: str, default: str) -> Path | None:
        raw = reader.get(top, "cluster", key, str, default)
        if not raw:
            return None
        found = Path(raw).expanduser()
        return base / found if base is not None and not found.is_absolute() else found

    name = reader.get(top, "cluster", "name", str, "")
    if not name:
        reader.problem("cluster.name", "missing", 'add name = "picluster" under [cluster]')
    cluster = Cluster(
        name=name,
        domain=reader.get(top, "cluster", "domain", str, "cluster.lan"),
        admin_user=reader.get(top, "cluster", "admin_user", str, "pi"),
        network=network,
        nodes=tuple(nodes),
        groups=groups,
        services=services,
        health=health,
        ssh_public_key=reader.get(top, "cluster", "ssh_public_key", str, ""),
        ssh_port=reader.get(top, "cluster", "ssh_port", int, 22),
        secrets_dir=local_path("secrets_dir", "secrets") or Path("secrets"),
        ssh_config=local_path("ssh_config", ""),
        known_hosts=local_path("known_hosts", ""),
    )
    return cluster, node_paths


def _node(
    reader: Reader,
    entry: dict[str, Any],
    is_head: bool,
    defaults: dict[str, str],
    head_computes: bool,
) -> Node | None:
    path = entry["_path"]
    address = (
        _address(reader, entry.get("address"), f"{path}.address") if "address" in entry else None
    )
    if address is None:
        if "address" not in entry:
            reader.problem(
                f"{path}.address",
                f"node {entry['name']!r} has no address",
                'add address = "192.168.1.x"',
            )
        return None
    role = reader.get(entry, path, "role", str, "head" if is_head else "worker")
    if role not in ("head", "worker"):
        reader.problem(f"{path}.role", f"unknown role {role!r}", 'use "head" or "worker"')
        role = "worker"
    os_release = reader.get(entry, path, "os", str, defaults["os"])
    stack = reader.get(
        entry, path, "network_stack", str, defaults["network_stack"]
    ) or DEFAULT_STACK.get(os_release, "networkmanager")
    cpus = reader.get(entry, path, "cpus", int, 0) or None
    memory = reader.get(entry, path, "memory_mb", int, 0) or None
    return Node(
        name=entry["name"],
        address=address,
        role=role,  # type: ignore[arg-type]
        os=os_release,
        interface=reader.get(entry, path, "interface", str, defaults["interface"]),
        network_stack=stack,
        groups=reader.strings(entry, path, "groups", ()),
        mac=(reader.get(entry, path, "mac", str, "") or None),
        serial=(reader.get(entry, path, "serial", str, "") or None),
        cpus=cpus,
        memory_mb=memory,
        compute=reader.get(entry, path, "compute", bool, role == "worker" or head_computes),
        bootstrap_address=reader.get(entry, path, "bootstrap_address", str, "") or None,
    )


def _groups(reader: Reader, data: dict[str, Any], nodes: list[Node]) -> dict[str, tuple[str, ...]]:
    """Built-in groups, user groups from [groups] (node sets) and from each node's list."""
    groups: dict[str, tuple[str, ...]] = {
        "all": tuple(n.name for n in nodes),
        "head": tuple(n.name for n in nodes if n.is_head),
        "workers": tuple(n.name for n in nodes if not n.is_head),
        "compute": tuple(n.name for n in nodes if n.compute),
    }
    table = data.get("groups", {})
    if not isinstance(table, dict):
        reader.problem("groups", "must be a table", 'write [groups] then rack1 = "node[01-08]"')
        table = {}
    for node in nodes:
        for group in node.groups:
            groups.setdefault(group, ())
            groups[group] = (*groups[group], node.name)
    resolve_groups(reader, table, groups)
    return groups


def _services(reader: Reader, data: dict[str, Any]) -> Services:
    svc = data.get("services", {}) if isinstance(data.get("services"), dict) else {}
    t = reader.table(svc, "time", "services.time", TIME_KEYS)
    s = reader.table(svc, "storage", "services.storage", STORAGE_KEYS)
    sl = reader.table(svc, "slurm", "services.slurm", SLURM_KEYS)
    m = reader.table(svc, "mpi", "services.mpi", MPI_KEYS)
    d = reader.table(svc, "dnsmasq", "services.dnsmasq", DNSMASQ_KEYS)
    c = reader.table(svc, "package_cache", "services.package_cache", CACHE_KEYS)
    dflt_storage, dflt_slurm, dflt_cache = StorageService(), SlurmService(), PackageCacheService()
    kind = reader.get(s, "services.storage", "kind", str, dflt_storage.kind)
    if kind not in ("nfs", "sshfs"):
        reader.problem("services.storage.kind", f"unknown kind {kind!r}", 'use "nfs" or "sshfs"')
        kind = "nfs"
    partitions = _partitions(reader, sl) or dflt_slurm.partitions
    upstreams = c.get("upstreams", dflt_cache.upstreams)
    if not (isinstance(upstreams, dict) and all(isinstance(v, str) for v in upstreams.values())):
        reader.problem(
            "services.package_cache.upstreams",
            "must be a table of name = URL",
            'e.g. upstreams = { debian = "http://deb.debian.org/debian/" }',
        )
        upstreams = dflt_cache.upstreams
    dhcp_range = (
        _range(reader, d["dhcp_range"], "services.dnsmasq.dhcp_range")
        if "dhcp_range" in d
        else None
    )
    return Services(
        time=TimeService(
            enabled=reader.get(t, "services.time", "enabled", bool, True),
            upstream=reader.strings(t, "services.time", "upstream", TimeService().upstream),
            container=reader.get(t, "services.time", "container", bool, False),
        ),
        storage=StorageService(
            enabled=reader.get(s, "services.storage", "enabled", bool, True),
            kind=kind,  # type: ignore[arg-type]
            server=reader.get(s, "services.storage", "server", str, ""),
            export=reader.get(s, "services.storage", "export", str, dflt_storage.export),
            mount=reader.get(s, "services.storage", "mount", str, dflt_storage.mount),
            clients=reader.get(s, "services.storage", "clients", str, dflt_storage.clients),
            root_squash=reader.get(s, "services.storage", "root_squash", bool, True),
        ),
        slurm=SlurmService(
            enabled=reader.get(sl, "services.slurm", "enabled", bool, True),
            head_computes=reader.get(sl, "services.slurm", "head_computes", bool, False),
            partitions=partitions,
            slurmd_timeout=reader.get(sl, "services.slurm", "slurmd_timeout", int, 300),
            cgroup_mountpoint=reader.get(sl, "services.slurm", "cgroup_mountpoint", str, ""),
        ),
        mpi=MpiService(
            enabled=reader.get(m, "services.mpi", "enabled", bool, True),
            implementations=reader.strings(m, "services.mpi", "implementations", ("openmpi",)),
        ),
        dnsmasq=DnsmasqService(
            enabled=reader.get(d, "services.dnsmasq", "enabled", bool, False),
            dhcp=reader.get(d, "services.dnsmasq", "dhcp", bool, True),
            dhcp_range=dhcp_range,
            tftp=reader.get(d, "services.dnsmasq", "tftp", bool, False),
            tftp_root=reader.get(d, "services.dnsmasq", "tftp_root", str, "/srv/tftp"),
        ),
        package_cache=PackageCacheService(
            enabled=reader.get(c, "services.package_cache", "enabled", bool, False),
            port=reader.get(c, "services.package_cache", "port", int, 3142),
            upstreams=dict(sorted(upstreams.items())),
        ),
    )


def _partitions(reader: Reader, slurm: dict[str, Any]) -> tuple[Partition, ...]:
    raw = slurm.get("partitions", [])
    if not isinstance(raw, list):
        reader.problem(
            "services.slurm.partitions",
            "must be a list of tables",
            "write each as [[services.slurm.partitions]]",
        )
        return ()
    result = []
    for index, entry in enumerate(raw):
        path = f"services.slurm.partitions[{index}]"
        if not isinstance(entry, dict):
            reader.problem(path, "must be a table", "write each as [[services.slurm.partitions]]")
            continue
        reader.check_keys(entry, path, PARTITION_KEYS)
        result.append(
            Partition(
                name=reader.get(entry, path, "name", str, f"part{index}"),
                nodes=reader.get(entry, path, "nodes", str, "@compute"),
                default=reader.get(entry, path, "default", bool, index == 0),
                max_time=reader.get(entry, path, "max_time", str, "INFINITE"),
            )
        )
    return tuple(result)


def _health(reader: Reader, data: dict[str, Any]) -> HealthRules:
    h = reader.table(data, "health", "health", HEALTH_KEYS)
    d = HealthRules()
    return HealthRules(
        **{k: reader.get(h, "health", k, type(getattr(d, k)), getattr(d, k)) for k in HEALTH_KEYS}
    )
