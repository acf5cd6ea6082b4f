"""Power settings as data: controllers, the node each switches (Target), command templates."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ClusterShell.RangeSet import RangeSet

from piherd.model import expand

if TYPE_CHECKING:
    from piherd.model import Cluster

PLACEHOLDERS = ("name", "mac", "serial", "address")
FIELD = re.compile(r"\{([^{}]*)\}")


@dataclass(frozen=True)
class Controller:
    """One [[services.power.controllers]] entry: a driver and what it needs."""

    nodes: str
    driver: str
    host: str = ""
    port: int = 0  # 0: the driver's usual port
    user: str = ""
    secret: str = ""
    interface: str = "lanplus"
    cipher: int = 3  # IPMI 2.0 cipher suite (3: HMAC-SHA1 + AES, what nearly every BMC has)
    ports: str = ""
    group: int = 1
    version: str = "2c"
    auth: str = "SHA"
    privacy: str = "AES"
    https: bool = True
    on: str = ""
    off: str = ""
    status: str = ""
    broadcast: str = ""
    sim: str = ""


@dataclass(frozen=True)
class Target:
    """One node as its controller sees it: the node, its own host and port on the controller."""

    node: str
    address: str
    controller: Controller
    host: str = ""  # this node's BMC / switch / controller Pi
    index: int = 0  # its port, slot or ClusterHAT P number (0: none)
    mac: str = ""
    serial: str = ""


@dataclass(frozen=True)
class PowerSettings:
    """[services.power]: controllers and pacing; Slurm power saving when asked."""

    enabled: bool = False
    controllers: tuple[Controller, ...] = ()
    stagger_s: float = 2.0
    wait_timeout_s: float = 300.0
    command_timeout_s: float = 30.0
    cycle_off_s: float = 5.0
    slurm_suspend: bool = False
    suspend_time_s: float = 600.0
    resume_timeout_s: float = 600.0
    watch_cycle: bool = False
    # Node name -> index of its controller in `controllers` (filled by derive).
    assigned: dict[str, int] = field(default_factory=dict, compare=False, hash=False)


def targets(cluster: Cluster, settings: PowerSettings, names: list[str]) -> dict[str, Target]:
    """Each of `names` with its controller; KeyError naming the first without one."""
    found: dict[str, Target] = {}
    for name in names:
        if name not in settings.assigned:
            raise KeyError(name)
        controller = settings.controllers[settings.assigned[name]]
        members = expand(controller.nodes, cluster.groups, known=cluster.groups["all"])
        position = members.index(name)
        hosts = expand(controller.host, {}) if controller.host else [""]
        ports = list(RangeSet(controller.ports)) if controller.ports else []
        node = cluster.node(name)
        found[name] = Target(
            node=name,
            address=str(node.address),
            controller=controller,
            host=hosts[position] if len(hosts) > 1 else hosts[0],
            index=int(ports[position]) if ports else 0,
            mac=node.mac or "",
            serial=node.serial or "",
        )
    return found


def command_words(template: str) -> list[str]:
    """A command template split into words (shlex); ValueError when it cannot be."""
    words = shlex.split(template)
    if not words:
        raise ValueError("an empty command")
    return words


def fill(template_words: list[str], target: Target) -> list[str]:
    """The argv of a command template for `target`: each placeholder is one word's text."""
    values = {"name": target.node, "mac": target.mac, "serial": target.serial}
    values["address"] = target.address
    return [FIELD.sub(lambda m: values[m.group(1)], word) for word in template_words]
