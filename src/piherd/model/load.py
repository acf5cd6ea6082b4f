"""Load cluster.toml: TOML -> checked structure -> Cluster, or every problem at once."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from dataclasses import replace
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

from piherd.model import naming
from piherd.model.checks import check_cluster, resolve_groups
from piherd.model.cluster import DEFAULT_STACK, Cluster, HealthRules, Network, Node
from piherd.model.locate import Locator
from piherd.model.origin import Origin
from piherd.model.problems import ConfigError, Problem
from piherd.model.reader import Reader
from piherd.model.readfile import read_cluster_text
from piherd.model.service import Service, ServiceSet

TOP_KEYS = ("cluster", "network", "naming", "nodes", "groups", "services", "health")
CLUSTER_KEYS = (
    "name",
    "domain",
    "admin_user",
    "ssh_public_key",
    "ssh_port",
    "ssh_config",
    "known_hosts",
    "ssh_identity",
    "os",
    "interface",
    "network_stack",
    "secrets_dir",
)
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
# Stands in for a missing or bad address so the node's other fields are still checked;
# such a node always comes with a problem, so it never leaves the loader.
NO_ADDRESS = IPv4Address("0.0.0.0")  # noqa: S104 (a placeholder, never bound)

HEALTH_KEYS = (
    "temp_warn_c",
    "temp_crit_c",
    "clock_offset_crit_s",
    "disk_warn_pct",
    "disk_crit_pct",
    "watch_enabled",
    "watch_interval_s",
)

# Sane ranges of the [health] numbers: NaN and infinity are refused by the reader, and a
# watch interval below half a second would busy-loop, above a day would never act.
HEALTH_BOUNDS: dict[str, tuple[float, float]] = {
    "temp_warn_c": (1.0, 150.0),
    "temp_crit_c": (1.0, 150.0),
    "clock_offset_crit_s": (0.001, 3600.0),
    "disk_warn_pct": (1.0, 100.0),
    "disk_crit_pct": (1.0, 100.0),
    "watch_interval_s": (0.5, 86400.0),
}
# Per node, far beyond any board (a 128-core server, 16 TiB of memory), so a typo is caught.
MAX_CPUS = 1024
MAX_MEMORY_MB = 16 * 1024 * 1024

# Stands in for a missing or bad [network] (always reported), so other checks still run.
NO_NETWORK = Network(IPv4Network("0.0.0.0/32"), None, ())

_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)")
# A key of more than this many dotted parts: tomllib's time grows with the square of the
# parts (a 1 MiB `a.a.a...` key would take hours), so it is refused before parsing.
MAX_KEY_PARTS = 64
_LONG_KEY = re.compile(
    r"(?<![A-Za-z0-9_-])"  # parts start at a word's start; ++: linear time on long words
    rf"(?:(?:[A-Za-z0-9_-]++|\"[^\"\n]*\"|'[^'\n]*')[ \t]*\.[ \t]*){{{MAX_KEY_PARTS},}}"
)


def load(path: Path, services: Sequence[Service]) -> Cluster:
    """Read and validate `path`; ConfigError with every problem when it is not usable.

    `services` are the services the file may configure, in start order
    (piherd.services.SERVICES; piherd.services.load binds them).
    """
    text = read_cluster_text(path)
    return replace(loads(text, services, str(path), base=path.parent), source=path)


def loads(
    text: str, services: Sequence[Service], file: str = "cluster.toml", base: Path | None = None
) -> Cluster:
    """Parse and validate TOML text; `base` anchors relative paths (secrets_dir)."""
    long_key = _LONG_KEY.search(text)
    if long_key:
        line = text.count("\n", 0, long_key.start()) + 1
        raise ConfigError(
            [Problem(line, "", f"a key of more than {MAX_KEY_PARTS} dotted parts", "", file)]
        )
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([_syntax_problem(exc, text, file)]) from None
    except ValueError as exc:  # tomllib's own int(): more than 4300 digits
        raise ConfigError(
            [Problem(0, "", f"a value cannot be read: {exc}", "write numbers of sane size", file)]
        ) from None
    except RecursionError:
        raise ConfigError(
            [Problem(0, "", "tables or lists nested too deeply to read", "flatten them", file)]
        ) from None
    reader = Reader(Locator(text), file)
    data = reader.cleaned(data)
    cluster, origins, unaddressed = _build(data, reader, base, services)
    check_cluster(cluster, origins, reader, unaddressed, cluster.network is not NO_NETWORK)
    if reader.problems:
        raise ConfigError(reader.problems)
    return cluster


def _syntax_problem(exc: tomllib.TOMLDecodeError, text: str, file: str) -> Problem:
    match = _TOML_POSITION.search(str(exc))
    line = int(match.group(1)) if match else 0
    message = _TOML_POSITION.sub("", str(exc)).strip()
    if match:
        message += f" (column {match.group(2)})"
    lines = text.splitlines()
    hint = "fix the syntax at that line: quotes, brackets, '=' between key and value"
    if 0 < line <= len(lines) and lines[line - 1].strip():
        hint = f"the line reads: {lines[line - 1].strip()[:60]}; {hint}"
    return Problem(line, "", f"TOML syntax error: {message}", hint, file)


def _entries(
    reader: Reader, data: dict[str, Any]
) -> tuple[dict[str, dict[str, Any]], dict[str, Origin]]:
    """Planned nodes with the [[nodes]] overrides applied, and where each came from."""
    entries = naming.planned_nodes(reader, data)
    origins = {name: Origin(naming.PLAN, planned=True) for name in entries}
    listed = reader.array_of_tables(data, "nodes", "nodes", NODE_KEYS)
    if len(entries) + len(listed) > naming.MAX_NODES:
        reader.problem(
            "nodes",
            f"{len(entries)} planned and {len(listed)} listed nodes: "
            f"piherd manages at most {naming.MAX_NODES}",
            "split the cluster, or check [naming] count and the [[nodes]] entries",
        )
        listed = listed[: max(0, naming.MAX_NODES - len(entries))]
    for path, raw in listed:
        name = raw.get("name")
        if not isinstance(name, str):
            reader.problem(f"{path}.name", "missing or not a string", 'add name = "node05"')
            continue
        if name in origins and origins[name].path != naming.PLAN:
            first = reader.locator.line(origins[name].path)
            reader.problem(
                f"{path}.name",
                f"duplicate node name {name!r}",
                f"{name} is already listed at line {first}; merge the two entries",
            )
            continue
        planned = name in origins
        entries[name] = {**entries.get(name, {}), **raw}
        origins[name] = Origin(path, frozenset(raw), planned)
    return entries, origins


def _read_services(
    reader: Reader, data: dict[str, Any], services: Sequence[Service]
) -> list[tuple[Service, Any]]:
    """Each service's settings from its [services.NAME] table, defaults filled in."""
    names = tuple(s.name for s in services if s.name)
    table = reader.table(data, "services", "services", names)
    return [
        (
            s,
            s.read(
                reader, reader.table(table, s.name, f"services.{s.name}", s.keys) if s.name else {}
            ),
        )
        for s in services
    ]


def _health(reader: Reader, data: dict[str, Any]) -> HealthRules:
    """The [health] thresholds."""
    h = reader.table(data, "health", "health", HEALTH_KEYS)
    d = HealthRules()
    return HealthRules(
        **{
            k: (
                reader.number(h, "health", k, getattr(d, k), *HEALTH_BOUNDS[k])
                if k in HEALTH_BOUNDS
                else reader.get(h, "health", k, type(getattr(d, k)), getattr(d, k))
            )
            for k in HEALTH_KEYS
        }
    )


def _build(
    data: dict[str, Any], reader: Reader, base: Path | None, services: Sequence[Service]
) -> tuple[Cluster, dict[str, Origin], set[str]]:
    """The cluster as far as it can be built; with NO_NETWORK and no nodes when those
    are missing (always with a problem), so every other section is still checked."""
    reader.check_keys(data, "", TOP_KEYS)
    top = reader.table(data, "cluster", "cluster", CLUSTER_KEYS)
    network = naming.network(reader, data)
    read = _read_services(reader, data, services)
    head_computes = any(service.head_computes(settings) for service, settings in read)
    rules = _health(reader, data)
    entries, origins = _entries(reader, data)
    if not entries and not any(p.field.startswith("naming") for p in reader.problems):
        reader.problem(
            "",
            "the cluster has no nodes",
            "add a [naming] plan (prefix, count, first_address) or [[nodes]] entries",
        )
    head_name = _head_name(reader, data, entries)
    defaults = {
        "os": reader.get(top, "cluster", "os", str, "bookworm"),
        "interface": reader.get(top, "cluster", "interface", str, "eth0"),
        "network_stack": reader.get(top, "cluster", "network_stack", str, ""),
    }
    nodes: list[Node] = []
    unaddressed: set[str] = set()
    for name, entry in entries.items():
        node = _node(reader, entry, origins[name], name == head_name, defaults, head_computes)
        if node.address == NO_ADDRESS:
            unaddressed.add(name)
        nodes.append(node)
    groups = _groups(reader, data, nodes)
    if network is None:
        unaddressed = {n.name for n in nodes}  # their addresses cannot be checked
    cluster = _cluster(reader, data, top, base, network or NO_NETWORK, tuple(nodes), groups)
    cluster = replace(cluster, health=rules)
    if any(n.is_head for n in cluster.nodes):  # facts that need the nodes, computed once
        derived = tuple((s, s.derive(settings, cluster)) for s, settings in read)
    else:
        derived = tuple(read)
    return replace(cluster, services=ServiceSet(derived)), origins, unaddressed


def _head_name(
    reader: Reader, data: dict[str, Any], entries: dict[str, dict[str, Any]]
) -> str | None:
    """naming.head when it names a node; else the first node, unless one has role "head"."""
    plan = data.get("naming") if isinstance(data.get("naming"), dict) else {}
    head_name = plan.get("head") if isinstance(plan, dict) else None
    if head_name is not None and not isinstance(head_name, str):
        reader.problem("naming.head", f"must be a node name in quotes, not {head_name!r}")
        head_name = None
    if head_name is not None and head_name not in entries:
        reader.problem(
            "naming.head",
            f"no node is called {head_name!r}",
            f"pick one of {', '.join(list(entries)[:4])}{', ...' if len(entries) > 4 else ''}",
        )
        head_name = None
    if entries and head_name is None and not any(e.get("role") == "head" for e in entries.values()):
        head_name = next(iter(entries))  # the first node of the plan is the head by default
    return head_name


def _cluster(
    reader: Reader,
    data: dict[str, Any],
    top: dict[str, Any],
    base: Path | None,
    network: Network,
    nodes: tuple[Node, ...],
    groups: dict[str, tuple[str, ...]],
) -> Cluster:
    """The Cluster of the [cluster] table's fields, the network, nodes and groups."""

    def local_path(key: str, default: str) -> Path | None:
        raw = reader.get(top, "cluster", key, str, default)
        if not raw:
            return None
        found = Path(raw).expanduser()
        return base / found if base is not None and not found.is_absolute() else found

    name = reader.get(top, "cluster", "name", str, "")
    if not name:
        reader.problem(
            "cluster.name" if "cluster" in data else "",
            "the cluster's name is missing",
            'add name = "picluster" under [cluster]',
        )
    return Cluster(
        name=name,
        domain=reader.get(top, "cluster", "domain", str, "cluster.lan"),
        admin_user=reader.get(top, "cluster", "admin_user", str, "pi"),
        network=network,
        nodes=nodes,
        groups=groups,
        ssh_public_key=reader.get(top, "cluster", "ssh_public_key", str, ""),
        ssh_port=reader.get(top, "cluster", "ssh_port", int, 22),
        secrets_dir=local_path("secrets_dir", "secrets") or Path("secrets"),
        ssh_config=local_path("ssh_config", ""),
        known_hosts=local_path("known_hosts", ""),
        ssh_identity=local_path("ssh_identity", ""),
    )


def _node(
    reader: Reader,
    entry: dict[str, Any],
    origin: Origin,
    is_head: bool,
    defaults: dict[str, str],
    head_computes: bool,
) -> Node:
    """The node of `entry`; with NO_ADDRESS when its address is missing or bad."""
    path = origin.path
    if "address" in entry:
        found = naming.address(reader, entry["address"], origin.field("address"))
    else:
        found = None
        reader.problem(
            f"{path}.address",
            f"node {entry['name']!r} has no address",
            'add address = "192.168.1.x", or include it in the [naming] plan',
        )
    role = reader.get(entry, path, "role", str, "head" if is_head else "worker")
    if role not in ("head", "worker"):
        reader.problem(f"{path}.role", f"unknown role {role!r}", 'use "head" or "worker"')
        role = "worker"
    os_release = reader.get(entry, path, "os", str, defaults["os"])
    stack = reader.get(
        entry, path, "network_stack", str, defaults["network_stack"]
    ) or DEFAULT_STACK.get(os_release, "networkmanager")
    default_compute = role == "worker" or head_computes
    return Node(
        name=entry["name"],
        address=found or NO_ADDRESS,
        role=role,  # type: ignore[arg-type]
        os=os_release,
        interface=reader.get(entry, path, "interface", str, defaults["interface"]),
        network_stack=stack,
        groups=reader.strings(entry, path, "groups", ()),
        mac=(reader.get(entry, path, "mac", str, "") or None),
        serial=(reader.get(entry, path, "serial", str, "") or None),
        cpus=_optional_int(reader, entry, path, "cpus", MAX_CPUS),
        memory_mb=_optional_int(reader, entry, path, "memory_mb", MAX_MEMORY_MB),
        compute=reader.get(entry, path, "compute", bool, default_compute),
        bootstrap_address=reader.get(entry, path, "bootstrap_address", str, "") or None,
    )


def _optional_int(
    reader: Reader, entry: dict[str, Any], path: str, key: str, high: int
) -> int | None:
    value = reader.get(entry, path, key, int, -1) if key in entry else None
    if value is not None and value > high:
        reader.problem(f"{path}.{key}", f"must be at most {high}, not {value}")
        return None
    if value is not None and value < 1:
        if key in entry and type(entry[key]) is int:
            reader.problem(
                f"{path}.{key}",
                f"must be positive, not {value}",
                "leave it out to use what the node reports",
            )
        return None
    return value


def _groups(reader: Reader, data: dict[str, Any], nodes: list[Node]) -> dict[str, tuple[str, ...]]:
    """Built-in groups, user groups from [groups] (node sets) and from each node's list."""
    groups: dict[str, tuple[str, ...]] = {
        "all": tuple(n.name for n in nodes),
        "head": tuple(n.name for n in nodes if n.is_head),
        "workers": tuple(n.name for n in nodes if not n.is_head),
        "compute": tuple(n.name for n in nodes if n.compute),
    }
    builtin = set(groups)
    table = data.get("groups", {})
    if not isinstance(table, dict):
        reader.problem("groups", "must be a table", 'write [groups] then rack1 = "node[01-08]"')
        table = {}
    listed: dict[str, list[str]] = {}
    for node in nodes:
        for group in node.groups:
            if group in builtin:
                continue  # reported by the node rules; never let it change a built-in group
            listed.setdefault(group, []).append(node.name)
    groups.update((group, tuple(names)) for group, names in listed.items())
    resolve_groups(reader, table, groups)
    return groups
