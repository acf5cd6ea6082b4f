"""Pure parsers: the facts script's output -> NodeFacts. Tested on captured outputs."""

from __future__ import annotations

from piherd.facts.node_facts import FileState, NodeFacts, UnitState
from piherd.facts.record import parse_record
from piherd.facts.script import MARKER

NETWORK_STACK_UNITS = {
    "NetworkManager": "networkmanager",
    "dhcpcd": "dhcpcd",
    "systemd-networkd": "networkd",
}


def split_sections(output: str, marker: str = MARKER) -> dict[str, str]:
    """{section name: its text} from marker lines `<marker>NAME@@`.

    The one parser of piherd's sectioned scripts: the facts script (`@@piherd-fact:`,
    the default) and the health probe (`@@piherd-health:`). Text before the first
    marker is ignored.
    """
    sections: dict[str, str] = {}
    name: str | None = None
    lines: list[str] = []
    for line in output.splitlines():
        if line.startswith(marker) and line.endswith("@@"):
            if name is not None:
                sections[name] = "\n".join(lines).strip("\n")
            name = line[len(marker) : -2]
            lines = []
        elif name is not None:
            lines.append(line)
    if name is not None:
        sections[name] = "\n".join(lines).strip("\n")
    return sections


def section_lines(text: str) -> list[str]:
    """The non-blank lines of a section, stripped."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def parse_os_release(text: str) -> dict[str, str]:
    """KEY=value lines of /etc/os-release, quotes removed."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and not key.startswith("#"):
            values[key.strip()] = value.strip().strip('"').strip("'")
    return values


def parse_meminfo(text: str) -> dict[str, int]:
    """`Key:  value kB` lines (of /proc/meminfo) -> {key: kB}; other lines are skipped."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, sep, rest = line.partition(":")
        words = rest.split()
        if sep and key.strip() and words and words[0].isdigit():
            values[key.strip()] = int(words[0])
    return values


def parse_meminfo_mb(text: str) -> int:
    """MemTotal in MiB from `MemTotal:  1234567 kB`; 0 when absent."""
    return parse_meminfo(text).get("MemTotal", 0) // 1024


def parse_model(text: str) -> str | None:
    """The device-tree model (e.g. "Raspberry Pi 4 Model B Rev 1.5"), None when absent."""
    model = text.replace("\x00", "").strip()
    return model or None


def parse_network_stack(text: str) -> str | None:
    """The first active network stack among NetworkManager, dhcpcd, systemd-networkd."""
    for line in text.splitlines():
        unit, _, state = line.partition(" ")
        if state.strip() == "active" and unit in NETWORK_STACK_UNITS:
            return NETWORK_STACK_UNITS[unit]
    return None


def parse_addresses(text: str) -> tuple[str, ...]:
    """IPv4 addresses from `ip -4 -o addr show` lines."""
    found: list[str] = []
    for line in text.splitlines():
        parts = line.split()
        if "inet" in parts:
            index = parts.index("inet")
            if index + 1 < len(parts):
                found.append(parts[index + 1].split("/")[0])
    return tuple(found)


def parse_packages(text: str) -> frozenset[str]:
    """Names of fully installed packages (status "ii"), architecture suffix removed."""
    names = set()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "ii":
            names.add(parts[1].split(":")[0])
    return frozenset(names)


def parse_files(text: str) -> dict[str, FileState]:
    """Lines `kind<TAB>mode owner group<TAB>sha256<TAB>path` -> {path: FileState}."""
    files: dict[str, FileState] = {}
    for line in text.splitlines():
        parts = line.split("\t", 3)
        if len(parts) != 4:
            continue
        kind, stat, digest, path = parts
        if kind == "absent":
            files[path] = FileState(path, "absent")
            continue
        mode_text, owner, group = [*stat.split(), "", "", ""][:3]
        files[path] = FileState(
            path=path,
            kind=kind,
            mode=int(mode_text, 8) if mode_text else None,
            owner=owner or None,
            group=group or None,
            sha256=None if digest == "-" else digest,
        )
    return files


def parse_units(text: str) -> dict[str, UnitState]:
    """`systemctl show -p ...` blocks (blank-line separated) -> {unit name: UnitState}."""
    units: dict[str, UnitState] = {}
    for block in text.split("\n\n"):
        props: dict[str, str] = {}
        for line in block.splitlines():
            key, sep, value = line.partition("=")
            if sep:
                props[key] = value
        name = props.get("Id")
        if not name:
            continue
        units[name] = UnitState(
            name=name,
            load_state=props.get("LoadState", "not-found"),
            active_state=props.get("ActiveState", "inactive"),
            unit_file_state=props.get("UnitFileState", ""),
            active_enter_monotonic=_int(props.get("ActiveEnterTimestampMonotonic", "0")),
            main_pid=_int(props.get("MainPID", "0")),
        )
    return units


def parse_host_keys(text: str) -> tuple[str, ...]:
    """`type base64 [comment]` lines, comments dropped, sorted."""
    keys = set()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith(("ssh-", "ecdsa-")):
            keys.add(f"{parts[0]} {parts[1]}")
    return tuple(sorted(keys))


def parse_ids(text: str) -> tuple[int, int] | None:
    """`uid gid` -> (uid, gid); None when absent or malformed."""
    parts = text.split()
    if len(parts) == 2 and all(p.isdigit() for p in parts):
        return int(parts[0]), int(parts[1])
    return None


def _int(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        return 0


def parse_facts(node: str, output: str, requested_units: tuple[str, ...] = ()) -> NodeFacts:
    """The whole script output -> NodeFacts; ValueError when the output is cut short."""
    sections = split_sections(output)
    if "end" not in sections:
        raise ValueError(f"{node}: facts output is incomplete (no end marker)")
    release = parse_os_release(sections.get("os_release", ""))
    units = parse_units(sections.get("units", ""))
    # systemctl show reports an unknown unit with LoadState=not-found; keep names stable.
    for name in requested_units:
        units.setdefault(name, UnitState(name))
    lists = sections.get("apt_lists", "0").strip()
    return NodeFacts(
        node=node,
        os_id=release.get("ID", ""),
        os_codename=release.get("VERSION_CODENAME", ""),
        os_version=release.get("VERSION_ID", ""),
        arch=sections.get("arch", "").strip(),
        machine=sections.get("machine", "").strip(),
        cpus=_int(sections.get("cpus", "0")),
        memory_mb=parse_meminfo_mb(sections.get("meminfo", "")),
        pi_model=parse_model(sections.get("model", "")),
        network_stack=parse_network_stack(sections.get("netstack", "")),
        hostname=sections.get("hostname", "").strip(),
        login_ids=parse_ids(sections.get("login_ids", "")),
        addresses=parse_addresses(sections.get("addresses", "")),
        packages=parse_packages(sections.get("packages", "")),
        apt_lists=_int(lists.splitlines()[-1] if lists else "0") > 0,
        files=parse_files(sections.get("files", "")),
        units=units,
        pending_restarts=tuple(sections.get("pending_restarts", "").split()),
        host_keys=parse_host_keys(sections.get("host_keys", "")),
        record=parse_record(sections.get("record", "")),
    )
