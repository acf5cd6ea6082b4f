"""Raspberry Pi 4/5 bootloader (EEPROM) settings as data: boot order, network boot, UART.

cluster.toml lists settings per node set ([[services.bootloader.settings]], later entries
win); each node gets them as /etc/piherd/bootloader.conf in the bootloader's own format
(KEY=value under [all]). A oneshot unit applies them at boot and whenever the file
changes: it reads the running configuration with Raspberry Pi's `rpi-eeprom-config`,
and when a key differs it applies the merged configuration with `rpi-eeprom-config
--apply`, which takes effect at the next reboot. The unit records what it found in
/run/piherd/bootloader ("ok", "pending: ...", "no-eeprom: ...", "error: ..."), which
`piherd status` reports. A node without rpi-eeprom-config (no EEPROM, or the sim) says so.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import AddressValueError, IPv4Address
from typing import Any

from piherd.model import Cluster, Node, expand
from piherd.model.checks import nodeset_members
from piherd.model.escape import shown
from piherd.model.nodesets import NodeSetError
from piherd.model.reader import Reader
from piherd.model.service import Service
from piherd.model.specs import FileSpec, RenderContext, UnitSpec
from piherd.render.spec import RenderError, header, text

CONF = "/etc/piherd/bootloader.conf"
STATE = "/run/piherd/bootloader"
APPLY = "/usr/local/lib/piherd/bootloader-apply"
UNIT = "piherd-bootloader.service"
MAX_BYTES = 4076  # rpi-eeprom-config's limit for the whole configuration
MAX_LINE = 98  # the bootloader ignores what follows on a longer line

_BOOT_ORDER = re.compile(r"0x[0-7ef]{1,8}")
_PREFIX_STR = re.compile(r"[A-Za-z0-9._-][A-Za-z0-9._/-]{0,31}")


def _flag(value: object) -> str | None:
    return ("1" if value else "0") if isinstance(value, bool) else None


def _milliseconds(low: int) -> Callable[[object], str | None]:
    def check(value: object) -> str | None:
        ok = type(value) is int and low <= value <= 3_600_000
        return str(value) if ok else None

    return check


def _address(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return str(IPv4Address(value))
    except AddressValueError:
        return None


def _boot_order(value: object) -> str | None:
    ok = isinstance(value, str) and _BOOT_ORDER.fullmatch(value.lower())
    return value.lower() if ok and isinstance(value, str) else None


def _tftp_prefix(value: object) -> str | None:
    return str(value) if type(value) is int and value in (0, 1, 2) else None


def _prefix_str(value: object) -> str | None:
    return value if isinstance(value, str) and _PREFIX_STR.fullmatch(value) else None


def _retries(value: object) -> str | None:
    return str(value) if type(value) is int and -1 <= value <= 1000 else None


# cluster.toml key -> (the bootloader's key, the value as written, or None; what to write).
KEYS: dict[str, tuple[str, Callable[[object], str | None], str]] = {
    "boot_order": ("BOOT_ORDER", _boot_order, 'hex digits 1-7, e, f, e.g. "0xf21" (SD, network)'),
    "tftp_prefix": ("TFTP_PREFIX", _tftp_prefix, "0 (serial), 1 (tftp_prefix_str) or 2 (MAC)"),
    "tftp_prefix_str": ("TFTP_PREFIX_STR", _prefix_str, "up to 32 of A-Z a-z 0-9 . _ - /"),
    "tftp_ip": ("TFTP_IP", _address, 'an IPv4 address, e.g. "192.168.1.10"'),
    "tftp_file_timeout": ("TFTP_FILE_TIMEOUT", _milliseconds(5000), "milliseconds, >= 5000"),
    "dhcp_timeout": ("DHCP_TIMEOUT", _milliseconds(5000), "milliseconds, >= 5000"),
    "dhcp_req_timeout": ("DHCP_REQ_TIMEOUT", _milliseconds(500), "milliseconds, >= 500"),
    "net_boot_max_retries": ("NET_BOOT_MAX_RETRIES", _retries, "-1 (for ever) to 1000"),
    "client_ip": ("CLIENT_IP", _address, "an IPv4 address"),
    "subnet": ("SUBNET", _address, 'a netmask, e.g. "255.255.255.0"'),
    "gateway": ("GATEWAY", _address, "an IPv4 address"),
    "boot_uart": ("BOOT_UART", _flag, "true or false"),
    "power_off_on_halt": ("POWER_OFF_ON_HALT", _flag, "true or false"),
    "wake_on_gpio": ("WAKE_ON_GPIO", _flag, "true or false"),
    "enable_self_update": ("ENABLE_SELF_UPDATE", _flag, "true or false"),
}


@dataclass(frozen=True)
class BootloaderEntry:
    """One [[services.bootloader.settings]] entry: bootloader keys for a node set."""

    nodes: str
    values: tuple[tuple[str, str], ...]  # (BOOTLOADER_KEY, value), checked


@dataclass(frozen=True)
class BootloaderSettings:
    """[services.bootloader]: EEPROM settings per node set, applied with rpi-eeprom-config."""

    enabled: bool = False
    entries: tuple[BootloaderEntry, ...] = ()


def settings_for(cluster: Cluster, node: Node) -> dict[str, str]:
    """The bootloader settings `node` should have (later entries win), in file order."""
    found: dict[str, str] = {}
    names = cluster.groups["all"]
    for entry in cluster.services.get(BootloaderSettings).entries:
        try:
            chosen = expand(entry.nodes, cluster.groups, names)
        except NodeSetError:  # reported by check()
            continue
        if node.name in chosen:
            found.update(entry.values)
    return found


def config_text(cluster: Cluster, values: dict[str, str]) -> str:
    """The bootloader configuration piherd wants, in the EEPROM's format."""
    lines = [f"{k}={v}" for k, v in values.items()]
    for line in lines:
        if len(line) > MAX_LINE:
            raise RenderError(f"{CONF}: {shown(line)} is longer than {MAX_LINE} characters")
    body = header(cluster) + "[all]\n" + "".join(f"{line}\n" for line in lines)
    if len(body.encode()) > MAX_BYTES:
        raise RenderError(f"{CONF}: {len(body.encode())} bytes; the EEPROM holds {MAX_BYTES}")
    return body


# Runs on the node as root (the unit). Fixed text: it reads the two files and runs
# rpi-eeprom-config by absolute path with fixed arguments; nothing is interpolated.
_APPLY = r'''"""Apply the bootloader settings (/etc/piherd/bootloader.conf); record the state."""
import os
import shutil
import subprocess
import sys
import tempfile

WANT = "/etc/piherd/bootloader.conf"
STATE = "/run/piherd/bootloader"


def record(state):
    os.makedirs(os.path.dirname(STATE), exist_ok=True)
    with open(STATE + ".tmp", "w") as out:
        out.write(state + "\n")
    os.replace(STATE + ".tmp", STATE)
    print(state)


def settings(text):
    """KEY=value of the [all] part (the part every Pi reads)."""
    found, section = {}, "all"
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("["):
            section = line.strip("[]").strip().lower()
        elif line and not line.startswith("#") and "=" in line and section == "all":
            key, value = line.split("=", 1)
            found[key.strip()] = value.strip()
    return found


def merged(current, want):
    """The running configuration without piherd's keys in [all], then piherd's."""
    kept, section = [], "all"
    for raw in current.splitlines():
        line = raw.strip()
        if line.startswith("["):
            section = line.strip("[]").strip().lower()
        elif section == "all" and line.split("=", 1)[0].strip() in want:
            continue
        kept.append(raw)
    return "\n".join(kept + ["[all]"] + [f"{k}={v}" for k, v in want.items()]) + "\n"


def main():
    with open(WANT) as wanted:
        want = settings(wanted.read())
    tool = shutil.which("rpi-eeprom-config")
    if tool is None:
        record("no-eeprom: rpi-eeprom-config not found; this node has no bootloader EEPROM to set")
        return 0
    read = subprocess.run([tool], capture_output=True, text=True, timeout=120)
    if read.returncode != 0:
        record("error: rpi-eeprom-config cannot read the bootloader: " + read.stderr.strip()[:160])
        return 1
    current = settings(read.stdout)
    differ = sorted(k for k, v in want.items() if current.get(k) != v)
    if not differ:
        record("ok")
        return 0
    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as new:
        new.write(merged(read.stdout, want))
    try:
        applied = subprocess.run(
            [tool, "--apply", new.name], capture_output=True, text=True, timeout=300
        )
    finally:
        os.unlink(new.name)
    if applied.returncode != 0:
        record("error: rpi-eeprom-config --apply failed: " + applied.stderr.strip()[:200])
        return 1
    changes = " ".join(f"{k}={current.get(k, '(unset)')}->{want[k]}" for k in differ)
    record("pending: " + changes + " (applied at the next reboot)")
    return 0


sys.exit(main())
'''

_UNIT = (
    "[Unit]",
    "Description=Apply piherd's bootloader (EEPROM) settings",
    "After=local-fs.target",
    "",
    "[Service]",
    "Type=oneshot",
    "RemainAfterExit=yes",
    f"ExecStart=/usr/bin/python3 {APPLY}",
    "",
    "[Install]",
    "WantedBy=multi-user.target",
)


def render(cluster: Cluster, node: Node) -> dict[str, FileSpec]:
    """The node's bootloader configuration, the program that applies it, and its unit."""
    values = settings_for(cluster, node)
    if not cluster.services.is_on(BootloaderSettings) or not values:
        return {}
    conf = config_text(cluster, values)
    unit_path = f"/etc/systemd/system/{UNIT}"
    script = f"#!/usr/bin/python3\n{header(cluster)}{_APPLY}".encode()
    specs = [
        FileSpec(CONF, conf.encode(), 0o644, "root", "root", restarts=(UNIT,)),
        FileSpec(APPLY, script, 0o755, "root", "root", restarts=(UNIT,)),
        text(cluster, unit_path, _UNIT),
    ]
    return {s.path: s for s in specs}


def _read(reader: Reader, table: dict[str, Any]) -> BootloaderSettings:
    path = "services.bootloader"
    entries = []
    allowed = ("nodes", *KEYS)
    for where, entry in reader.array_of_tables(table, "settings", f"{path}.settings", allowed):
        nodes = reader.get(entry, where, "nodes", str, "")
        if not nodes:
            reader.problem(f"{where}.nodes", "which nodes?", 'e.g. nodes = "@workers"')
        values = []
        for key, (name, convert, what) in KEYS.items():
            if key not in entry:
                continue
            value = convert(entry[key])
            if value is None:
                reader.problem(f"{where}.{key}", f"{shown(entry[key])} is not valid", what)
            else:
                values.append((name, value))
        entries.append(BootloaderEntry(nodes, tuple(values)))
    return BootloaderSettings(
        enabled=reader.get(table, path, "enabled", bool, False), entries=tuple(entries)
    )


class BootloaderService(Service):
    """Bootloader EEPROM settings per node set, applied with rpi-eeprom-config."""

    name = "bootloader"
    keys = ("enabled", "settings")

    def read(self, reader: Reader, table: dict[str, Any]) -> BootloaderSettings:
        return _read(reader, table)

    def check(self, cluster: Cluster, reader: Reader) -> None:
        if not cluster.services.is_on(BootloaderSettings):
            return
        for index, entry in enumerate(cluster.services.get(BootloaderSettings).entries):
            if entry.nodes:
                where = f"services.bootloader.settings[{index}].nodes"
                nodeset_members(cluster, reader, where, entry.nodes)
        for node in cluster.nodes:
            try:
                config_text(cluster, settings_for(cluster, node))
            except RenderError as exc:
                reader.problem("services.bootloader.settings", f"{node.name}: {exc}")
                break

    def files(self, cluster: Cluster, node: Node, ctx: RenderContext) -> list[FileSpec]:
        del ctx
        return list(render(cluster, node).values())

    def units(self, cluster: Cluster, node: Node) -> list[UnitSpec]:
        on = cluster.services.is_on(BootloaderSettings) and settings_for(cluster, node)
        return [UnitSpec(UNIT)] if on else []
