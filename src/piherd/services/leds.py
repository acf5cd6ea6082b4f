"""LEDs that show each node's state ([services.leds]): the agent, its config and its unit.

    [services.leds]
    enabled = true
    [services.leds.leds]                # name -> a board LED, or a GPIO line by chip label
    green = { board = "ACT" }
    red = { board = "PWR" }
    yellow = { chip = "pinctrl-bcm2711", line = 17 }
    [services.leds.states]              # state -> LED -> pattern; LEDs not named are off
    idle = { green = "on" }
    allocated = { green = "blink" }
    draining = { yellow = "blink" }
    down = { red = "on" }
    identify = { green = "fast", red = "fast", yellow = "fast" }

States: idle, allocated (running jobs), draining (drain or drained in Slurm), down (down,
not responding, or Slurm not answering), identify (`piherd identify NODE`). Patterns: on,
off, blink (1 Hz), fast (4 Hz), heartbeat. The agent (services/leds_agent.py) runs on
every node as piherd-leds.service.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

from piherd.model import Cluster, Node
from piherd.model.reader import Reader
from piherd.model.service import Service
from piherd.model.specs import FileSpec, RenderContext, UnitSpec
from piherd.render.spec import header

UNIT_NAME = "piherd-leds.service"
UNIT_PATH = f"/etc/systemd/system/{UNIT_NAME}"
AGENT_PATH = "/usr/local/lib/piherd/leds-agent"
CONFIG_PATH = "/etc/piherd/leds.json"
IDENTIFY_FLAG = "/run/piherd-leds/identify"
STATES = ("idle", "allocated", "draining", "down", "identify")
PATTERNS = ("on", "off", "blink", "fast", "heartbeat")
LED_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
BOARD_NAME = re.compile(r"[A-Za-z0-9_:.-]{1,64}")
CHIP_LABEL = re.compile(r"[A-Za-z0-9_:.,-]{1,64}")
MAX_LINE = 1023
GPIO_PACKAGE = "python3-libgpiod"

DEFAULT_LEDS: dict[str, dict[str, Any]] = {"green": {"board": "ACT"}, "red": {"board": "PWR"}}
DEFAULT_STATES: dict[str, dict[str, str]] = {
    "idle": {"green": "on"},
    "allocated": {"green": "blink"},
    "draining": {"green": "on", "red": "blink"},
    "down": {"red": "on"},
    "identify": {"green": "fast", "red": "fast"},
}


@dataclass(frozen=True)
class Led:
    """A board LED (`board`) or a GPIO line (`chip` label and `line`)."""

    name: str
    board: str = ""
    chip: str = ""
    line: int = 0

    def as_json(self) -> dict[str, Any]:
        return {"board": self.board} if self.board else {"chip": self.chip, "line": self.line}


@dataclass(frozen=True)
class LedSettings:
    """[services.leds]: which LEDs a node has and what each state shows on them."""

    enabled: bool = False
    interval_s: float = 1.0
    leds: tuple[Led, ...] = tuple(Led(n, board=s["board"]) for n, s in DEFAULT_LEDS.items())
    # state -> ((led, pattern), ...)
    states: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = tuple(
        (state, tuple(sorted(patterns.items()))) for state, patterns in DEFAULT_STATES.items()
    )

    @property
    def uses_gpio(self) -> bool:
        return any(led.chip for led in self.leds)


def _read_leds(reader: Reader, table: dict[str, Any]) -> tuple[Led, ...] | None:
    path = "services.leds.leds"
    if "leds" not in table:
        return None
    raw = table["leds"]
    if not isinstance(raw, dict):
        reader.problem(path, "must be a table", "write it as [services.leds.leds]")
        return ()
    leds = []
    for name, spec in raw.items():
        where = f"{path}.{name}"
        if not LED_NAME.fullmatch(name):
            reader.problem(where, f"{name!r} is not an LED name", "lowercase letters, digits, -")
            continue
        if not isinstance(spec, dict):
            reader.problem(where, "must be a table", 'e.g. { board = "ACT" }')
            continue
        reader.check_keys(spec, where, ("board", "chip", "line"))
        board = reader.get(spec, where, "board", str, "")
        chip = reader.get(spec, where, "chip", str, "")
        line = reader.number(spec, where, "line", 0, 0, MAX_LINE)
        if bool(board) == bool(chip):
            reader.problem(
                where,
                "give either board (a /sys/class/leds name) or chip and line (a GPIO)",
                'e.g. { board = "ACT" } or { chip = "pinctrl-bcm2711", line = 17 }',
            )
            continue
        if board and not BOARD_NAME.fullmatch(board):
            reader.problem(f"{where}.board", f"{board!r} is not a LED name of /sys/class/leds")
            continue
        if chip and not CHIP_LABEL.fullmatch(chip):
            reader.problem(f"{where}.chip", f"{chip!r} is not a GPIO chip label")
            continue
        if chip and "line" not in spec:
            reader.problem(f"{where}.line", "a GPIO LED needs its line (offset on the chip)")
            continue
        leds.append(Led(name, board=board, chip=chip, line=line))
    return tuple(leds)


def _read_states(
    reader: Reader, table: dict[str, Any], names: set[str]
) -> tuple[tuple[str, tuple[tuple[str, str], ...]], ...] | None:
    path = "services.leds.states"
    raw = reader.table(table, "states", path, STATES)
    if "states" not in table:
        return None
    states = []
    for state, patterns in raw.items():
        where = f"{path}.{state}"
        if state not in STATES:
            continue  # reported by reader.table
        if not isinstance(patterns, dict):
            reader.problem(where, "must be a table of LED = pattern", 'e.g. { green = "on" }')
            continue
        chosen = []
        for led, pattern in patterns.items():
            if led not in names:
                reader.problem(
                    f"{where}.{led}",
                    f"no LED is called {led!r}",
                    f"define it under [services.leds.leds]; known: {', '.join(sorted(names))}",
                )
            elif pattern not in PATTERNS:
                reader.problem(
                    f"{where}.{led}", f"unknown pattern {pattern!r}", f"use {', '.join(PATTERNS)}"
                )
            else:
                chosen.append((led, pattern))
        states.append((state, tuple(sorted(chosen))))
    return tuple(states)


def agent_config(cluster: Cluster, node: Node) -> dict[str, Any]:
    """What the agent of `node` reads (/etc/piherd/leds.json)."""
    settings = cluster.services.get(LedSettings)
    return {
        "node": node.name,
        "compute": node.compute,
        "interval_s": settings.interval_s,
        "leds": {led.name: led.as_json() for led in settings.leds},
        "states": {state: dict(patterns) for state, patterns in settings.states},
    }


def render_unit() -> list[str]:
    """The lines of piherd-leds.service."""
    return [
        "[Unit]",
        "Description=piherd LEDs: this node's state on its board and GPIO LEDs",
        "After=slurmd.service munge.service",
        "",
        "[Service]",
        f"ExecStart=/usr/bin/python3 {AGENT_PATH} {CONFIG_PATH}",
        "Restart=always",
        "RestartSec=2",
        # /run/piherd-leds holds the identify flag; kept across restarts of the agent.
        "RuntimeDirectory=piherd-leds",
        "RuntimeDirectoryPreserve=yes",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
    ]


class LedsService(Service):
    """The node's state on its LEDs ([services.leds])."""

    name = "leds"
    keys = ("enabled", "interval_s", "leds", "states")

    def read(self, reader: Reader, table: dict[str, Any]) -> LedSettings:
        path = "services.leds"
        default = LedSettings()
        leds = _read_leds(reader, table)
        leds = default.leds if leds is None else leds
        states = _read_states(reader, table, {led.name for led in leds})
        return LedSettings(
            enabled=reader.get(table, path, "enabled", bool, False),
            interval_s=reader.number(table, path, "interval_s", 1.0, 0.25, 60.0),
            leds=leds,
            states=default.states if states is None else states,
        )

    def files(self, cluster: Cluster, node: Node, ctx: RenderContext) -> list[FileSpec]:
        del ctx
        restart = (UNIT_NAME,)
        agent = resources.files("piherd.services").joinpath("leds_agent.py").read_bytes()
        config = json.dumps(agent_config(cluster, node), indent=1, sort_keys=True) + "\n"
        return [
            FileSpec(AGENT_PATH, agent, 0o755, restarts=restart),
            FileSpec(CONFIG_PATH, config.encode(), restarts=restart),
            FileSpec(
                UNIT_PATH, (header(cluster) + "\n".join(render_unit()) + "\n").encode(),
                restarts=restart,
            ),
        ]  # fmt: skip

    def packages(self, cluster: Cluster, node: Node) -> tuple[str, ...]:
        del node
        gpio = cluster.services.get(LedSettings).uses_gpio
        return ("python3", GPIO_PACKAGE) if gpio else ("python3",)

    def units(self, cluster: Cluster, node: Node) -> tuple[UnitSpec, ...]:
        del cluster, node
        return (UnitSpec(UNIT_NAME),)

    def health_units(self, cluster: Cluster, node: Node) -> tuple[str, ...]:
        del cluster, node
        return (UNIT_NAME,)
