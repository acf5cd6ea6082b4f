"""Power control ([services.power]): which controller switches each node, and how it is paced.

`piherd power on|off|cycle|status` (app/power_control.py, the drivers in piherd/power/)
reads these settings; with `slurm_suspend` the head also gets Slurm's SuspendProgram and
ResumeProgram (services/power_saving.py renders them; services/slurm.py adds the
slurm.conf lines).

    [services.power]
    enabled = true
    stagger_s = 2.0                  # between two power-ons: a Pi's boot current peaks

    [[services.power.controllers]]
    nodes = "@workers"               # a node set; a later entry overrides an earlier one
    driver = "poe-snmp"
    host = "switch1.lan"             # one host, or a set paired with the nodes in order
    ports = "1-4"                    # one switch port per node, in order
    secret = "poe-switch"            # secrets_dir/power/poe-switch (0600): the community
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ClusterShell.RangeSet import RangeSet, RangeSetParseError

from piherd.model import NodeSetError, expand
from piherd.model.nodecheck import HOST
from piherd.model.service import Service
from piherd.power.settings import FIELD, PLACEHOLDERS, Controller, PowerSettings, command_words
from piherd.services.power_saving import (
    check_saving,
    saving_directories,
    saving_files,
    saving_packages,
)

if TYPE_CHECKING:
    from piherd.model import Cluster, Node
    from piherd.model.reader import Reader
    from piherd.model.specs import DirSpec, FileSpec, RenderContext

DRIVERS = ("ipmi", "poe-snmp", "clusterhat", "turingpi", "command", "ssh", "sim")
# What each driver reads from its controller entry (besides nodes and driver).
DRIVER_KEYS: dict[str, tuple[str, ...]] = {
    "ipmi": ("host", "port", "user", "secret", "interface", "cipher"),
    "poe-snmp": ("host", "port", "ports", "group", "version", "user", "secret", "auth", "privacy"),
    "clusterhat": ("host", "user", "ports"),
    "turingpi": ("host", "port", "user", "secret", "ports", "https"),
    "command": ("on", "off", "status"),
    "ssh": ("broadcast", "port"),
    "sim": ("sim",),
}
CONTROLLER_KEYS = ("nodes", "driver", *sorted({k for keys in DRIVER_KEYS.values() for k in keys}))
# Driver -> keys it cannot work without.
REQUIRED: dict[str, tuple[str, ...]] = {
    "ipmi": ("host", "user", "secret"),
    "poe-snmp": ("host", "ports", "secret"),
    "clusterhat": ("host", "ports"),
    "turingpi": ("host", "ports"),
    "command": ("on", "off"),
    "sim": ("sim",),
}
KEYS = (
    "enabled",
    "controllers",
    "stagger_s",
    "wait_timeout_s",
    "command_timeout_s",
    "cycle_off_s",
    "slurm_suspend",
    "suspend_time_s",
    "resume_timeout_s",
    "watch_cycle",
)
# Range of each number: (default, low, high).
NUMBERS: dict[str, tuple[float, float, float]] = {
    "stagger_s": (2.0, 0.0, 600.0),
    "wait_timeout_s": (300.0, 1.0, 3600.0),
    "command_timeout_s": (30.0, 1.0, 600.0),
    "cycle_off_s": (5.0, 0.0, 600.0),
    "suspend_time_s": (600.0, 30.0, 7 * 86400.0),
    "resume_timeout_s": (600.0, 30.0, 86400.0),
}
USER = re.compile(r"[A-Za-z0-9._@-]{1,64}")
SECRET = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}")  # a file name in secrets_dir/power
SIM_NAME = re.compile(r"[a-z][a-z0-9]{0,7}")
MAX_PORT_INDEX = 65535
SNMP_VERSIONS = ("2c", "3")
SNMP_AUTH = ("MD5", "SHA", "SHA-224", "SHA-256", "SHA-384", "SHA-512")
SNMP_PRIVACY = ("DES", "AES")
IPMI_INTERFACES = ("lan", "lanplus")


class _ControllerReader:
    """Reads and checks one controller entry, recording problems at its own fields."""

    def __init__(self, reader: Reader, path: str, raw: dict[str, Any]) -> None:
        self.reader, self.path, self.raw = reader, path, raw

    def text(self, key: str, pattern: re.Pattern[str] | None = None, hint: str = "") -> str:
        value = self.reader.get(self.raw, self.path, key, str, "")
        if value and pattern is not None and not pattern.fullmatch(value):
            self.reader.problem(f"{self.path}.{key}", f"{value!r} is not valid here", hint)
            return ""
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        value = self.reader.get(self.raw, self.path, key, str, default)
        if value not in choices:
            self.reader.problem(
                f"{self.path}.{key}", f"unknown {key} {value!r}", f"use one of {', '.join(choices)}"
            )
            return default
        return value

    def read(self) -> Controller | None:
        driver = self.choice("driver", DRIVERS, "")
        if not driver:
            return None
        allowed = {"nodes", "driver", *DRIVER_KEYS[driver]}
        for key in self.raw:
            if key in CONTROLLER_KEYS and key not in allowed:
                self.reader.problem(
                    f"{self.path}.{key}",
                    f"the {driver} driver has no {key!r}",
                    f"its keys: {', '.join(DRIVER_KEYS[driver]) or 'none'}",
                )
        missing = [k for k in ("nodes", *REQUIRED.get(driver, ())) if k not in self.raw]
        for key in missing:
            self.reader.problem(f"{self.path}.{key}", f"the {driver} driver needs {key!r}")
        host_hint = "a host name or IPv4 address, or a set of them (10.0.0.[12-15])"
        return Controller(
            nodes=self.text("nodes"),
            driver=driver,
            host=self.text("host", re.compile(r"[A-Za-z0-9.\-\[\],]{1,253}"), host_hint),
            port=self.reader.number(self.raw, self.path, "port", 0, 0, 65535),
            user=self.text("user", USER, "letters, digits, '.', '_', '@', '-'"),
            secret=self.text("secret", SECRET, "a file name in secrets_dir/power"),
            interface=self.choice("interface", IPMI_INTERFACES, "lanplus"),
            cipher=self.reader.number(self.raw, self.path, "cipher", 3, 0, 17),
            ports=self.text("ports", re.compile(r"[0-9,\- ]{1,200}"), 'e.g. "1-4"'),
            group=self.reader.number(self.raw, self.path, "group", 1, 1, MAX_PORT_INDEX),
            version=self.choice("version", SNMP_VERSIONS, "2c"),
            auth=self.choice("auth", SNMP_AUTH, "SHA"),
            privacy=self.choice("privacy", SNMP_PRIVACY, "AES"),
            https=self.reader.get(self.raw, self.path, "https", bool, True),
            on=self.template("on"),
            off=self.template("off"),
            status=self.template("status"),
            broadcast=self.text("broadcast", re.compile(r"(\d{1,3}\.){3}\d{1,3}"), "an IPv4"),
            sim=self.text("sim", SIM_NAME, "the sim cluster's name (sim up --name)"),
        )

    def template(self, key: str) -> str:
        value = self.reader.get(self.raw, self.path, key, str, "")
        if not value:
            return ""
        where = f"{self.path}.{key}"
        try:
            words = command_words(value)
        except ValueError as exc:
            self.reader.problem(where, f"cannot split the command: {exc}", "check its quotes")
            return ""
        unknown = sorted({m for w in words for m in FIELD.findall(w)} - set(PLACEHOLDERS))
        stray = any("{" in FIELD.sub("", w) or "}" in FIELD.sub("", w) for w in words)
        if unknown or stray:
            self.reader.problem(
                where,
                f"unknown placeholder in {value!r}",
                f"use {', '.join('{' + p + '}' for p in PLACEHOLDERS)}",
            )
            return ""
        return value


def _read(reader: Reader, table: dict[str, Any]) -> PowerSettings:
    path = "services.power"
    entries = reader.array_of_tables(table, "controllers", f"{path}.controllers", CONTROLLER_KEYS)
    controllers = []
    for where, raw in entries:
        controller = _ControllerReader(reader, where, raw).read()
        if controller is not None:
            controllers.append(controller)

    def number(key: str) -> float:
        return reader.number(table, path, key, *NUMBERS[key])

    return PowerSettings(
        enabled=reader.get(table, path, "enabled", bool, False),
        controllers=tuple(controllers),
        stagger_s=number("stagger_s"),
        wait_timeout_s=number("wait_timeout_s"),
        command_timeout_s=number("command_timeout_s"),
        cycle_off_s=number("cycle_off_s"),
        slurm_suspend=reader.get(table, path, "slurm_suspend", bool, False),
        suspend_time_s=number("suspend_time_s"),
        resume_timeout_s=number("resume_timeout_s"),
        watch_cycle=reader.get(table, path, "watch_cycle", bool, False),
    )


def _check_controller(
    cluster: Cluster, reader: Reader, where: str, controller: Controller
) -> list[str]:
    """The controller's nodes (checked against hosts and ports); [] after a problem."""
    try:
        members = expand(controller.nodes, cluster.groups, known=cluster.groups["all"])
    except NodeSetError as exc:
        reader.problem(f"{where}.nodes", str(exc), 'e.g. "node[02-05]" or "@workers"')
        return []
    if controller.host:
        try:
            hosts = expand(controller.host, {})
        except NodeSetError as exc:
            reader.problem(f"{where}.host", str(exc))
            return []
        bad = [h for h in hosts if not HOST.fullmatch(h)]
        if bad:
            reader.problem(f"{where}.host", f"{bad[0]!r} is not a host name or IPv4 address")
            return []
        if len(hosts) not in (1, len(members)):
            reader.problem(
                f"{where}.host",
                f"{len(hosts)} hosts for {len(members)} nodes",
                "give one host for all of them, or one per node in the nodes' order",
            )
            return []
    if controller.ports:
        try:
            ports = list(RangeSet(controller.ports))
        except RangeSetParseError as exc:
            reader.problem(f"{where}.ports", f"cannot read {controller.ports!r}: {exc}")
            return []
        if len(ports) != len(members):
            reader.problem(
                f"{where}.ports",
                f"{len(ports)} ports for {len(members)} nodes",
                "one port per node, in the nodes' order",
            )
            return []
        if any(not 1 <= int(p) <= MAX_PORT_INDEX for p in ports):
            reader.problem(f"{where}.ports", f"ports are 1 to {MAX_PORT_INDEX}")
            return []
    if controller.driver == "clusterhat" and controller.ports and max(map(int, ports)) > 4:
        reader.problem(f"{where}.ports", "a ClusterHAT has the ports 1 to 4 (P1-P4)")
        return []
    if controller.driver == "poe-snmp" and controller.version == "3" and not controller.user:
        reader.problem(f"{where}.user", "SNMPv3 needs a user (the security name)")
        return []
    if controller.driver == "ssh":
        no_mac = [n for n in members if not cluster.node(n).mac]
        if no_mac:
            reader.problem(
                f"{where}.nodes",
                f"the ssh driver powers on by Wake-on-LAN, which needs each node's mac: "
                f"{', '.join(no_mac[:4])} has none",
                'add mac = "dc:a6:32:..." to the node entries',
            )
            return []
    return members


class PowerService(Service):
    """Power control of the nodes ([services.power]); Slurm power saving on the head."""

    name = "power"
    keys = KEYS

    def read(self, reader: Reader, table: dict[str, Any]) -> PowerSettings:
        return _read(reader, table)

    def derive(self, settings: PowerSettings, cluster: Cluster) -> PowerSettings:
        assigned: dict[str, int] = {}
        for index, controller in enumerate(settings.controllers):
            try:
                members = expand(controller.nodes, cluster.groups, known=cluster.groups["all"])
            except NodeSetError:
                continue  # reported by check
            assigned.update((name, index) for name in members)
        return replace(settings, assigned=assigned)

    def check(self, cluster: Cluster, reader: Reader) -> None:
        settings = cluster.services.get(PowerSettings)
        for index, controller in enumerate(settings.controllers):
            _check_controller(cluster, reader, f"services.power.controllers[{index}]", controller)
        if settings.slurm_suspend:
            check_saving(cluster, settings, reader)

    def files(self, cluster: Cluster, node: Node, ctx: RenderContext) -> list[FileSpec]:
        return saving_files(cluster, node, ctx)

    def packages(self, cluster: Cluster, node: Node) -> tuple[str, ...]:
        return saving_packages(cluster, node)

    def directories(self, cluster: Cluster, node: Node) -> list[DirSpec]:
        return saving_directories(cluster, node)
