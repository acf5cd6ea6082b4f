#!/usr/bin/python3
"""The LED agent piherd installs on each node: the node's state on its board and GPIO LEDs.

Shipped as /usr/local/lib/piherd/leds-agent and run by piherd-leds.service with
/etc/piherd/leds.json (rendered by services/leds.py). Python 3 standard library only
(plus Debian's python3-libgpiod when GPIO LEDs are configured), so a bare Raspberry Pi
OS runs it. Every `interval_s` it reads the node's state: `identify` while
/run/piherd-leds/identify exists (`piherd identify`), else Slurm's view of the node
(`scontrol show node -o NAME`): idle, allocated (running jobs), draining (drain or
drained) or down (down, not responding, failing, or Slurm not answering). Then, every
tick, each LED shows its pattern for that state: on, off, blink (1 Hz), fast (4 Hz) or
heartbeat. Board LEDs (/sys/class/leds/ACT or led0, PWR or led1) get trigger `none`,
then brightness; GPIO LEDs are lines of the chip found by its label (the Pi 5
renumbered the chips), requested as outputs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

IDENTIFY_FLAG = "/run/piherd-leds/identify"
LEDS_DIR = "/sys/class/leds"
TICK_S = 0.125
STATES = ("idle", "allocated", "draining", "down", "identify")
# Older kernels name the board LEDs led0 (ACT, green) and led1 (PWR, red).
BOARD_ALIASES = {"ACT": ("ACT", "led0"), "PWR": ("PWR", "led1")}


def pattern_on(pattern: str, now: float) -> bool:
    """Whether an LED with `pattern` is lit at time `now` (seconds)."""
    if pattern == "on":
        return True
    if pattern == "blink":
        return now % 1.0 < 0.5
    if pattern == "fast":
        return now % 0.25 < 0.125
    if pattern == "heartbeat":
        phase = now % 1.2
        return phase < 0.1 or 0.2 <= phase < 0.3
    return False


def classify(slurm_state: str | None, identify: bool) -> str:
    """The LED state of a node from its Slurm state text (None: Slurm did not answer)."""
    if identify:
        return "identify"
    if slurm_state is None:
        return "down"
    state = slurm_state.upper()
    if any(word in state for word in ("DOWN", "FAIL", "NOT_RESPONDING", "UNKNOWN")):
        return "down"
    if state.split("+")[0].endswith("*"):  # not responding
        return "down"
    if "DRAIN" in state:
        return "draining"
    if any(word in state for word in ("ALLOC", "MIXED", "COMPLETING")):
        return "allocated"
    if "IDLE" in state:
        return "idle"
    return "down"


def parse_state(scontrol_output: str) -> str | None:
    """The State= field of `scontrol show node -o`."""
    for word in scontrol_output.split():
        if word.startswith("State="):
            return word[len("State=") :]
    return None


def slurm_state(node: str) -> str | None:
    try:
        result = subprocess.run(
            ["scontrol", "show", "node", "-o", node],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_state(result.stdout) if result.returncode == 0 else None


class BoardLed:
    """A LED of /sys/class/leds: trigger `none`, then brightness 0 or max_brightness."""

    def __init__(self, name: str, root: str = LEDS_DIR) -> None:
        found = [a for a in BOARD_ALIASES.get(name, (name,)) if os.path.isdir(f"{root}/{a}")]
        self.path = f"{root}/{found[0] if found else name}"
        try:
            with open(f"{self.path}/max_brightness") as handle:
                self.high = handle.read().strip() or "1"
        except OSError:
            self.high = "1"
        self._write("trigger", "none")

    def _write(self, name: str, value: str) -> None:
        try:
            with open(f"{self.path}/{name}", "w") as handle:
                handle.write(value + "\n")
        except OSError as exc:
            print(f"leds-agent: {self.path}/{name}: {exc.strerror}", file=sys.stderr)

    def set(self, on: bool) -> None:
        self._write("brightness", self.high if on else "0")


class GpioLed:
    """One line of the GPIO chip labelled `chip`, through libgpiod (v1 or v2 bindings)."""

    def __init__(self, chip: str, line: int) -> None:
        import gpiod  # type: ignore[import-not-found]  # Debian's python3-libgpiod

        self.line = line
        self._set: Callable[[bool], None]
        path = self._chip_path(gpiod, chip)
        if hasattr(gpiod, "request_lines"):  # libgpiod 2 (trixie)
            settings = gpiod.LineSettings(direction=gpiod.line.Direction.OUTPUT)
            self.request = gpiod.request_lines(
                path, consumer="piherd-leds", config={line: settings}
            )
            self._set = lambda on: self.request.set_value(
                line, gpiod.line.Value.ACTIVE if on else gpiod.line.Value.INACTIVE
            )
        else:  # libgpiod 1 (bookworm)
            handle = gpiod.Chip(path).get_line(line)
            handle.request(consumer="piherd-leds", type=gpiod.LINE_REQ_DIR_OUT)
            self._set = lambda on: handle.set_value(1 if on else 0)

    @staticmethod
    def _chip_path(gpiod: object, label: str) -> str:
        for entry in sorted(os.listdir("/dev")):
            if not entry.startswith("gpiochip"):
                continue
            path = f"/dev/{entry}"
            chip = gpiod.Chip(path)  # type: ignore[attr-defined]
            found = chip.get_info().label if hasattr(chip, "get_info") else chip.label()
            chip.close()
            if found == label:
                return path
        raise OSError(f"no GPIO chip labelled {label!r}")

    def set(self, on: bool) -> None:
        self._set(on)


def make_leds(config: dict[str, Any]) -> dict[str, BoardLed | GpioLed]:
    leds: dict[str, BoardLed | GpioLed] = {}
    for name, spec in sorted(config["leds"].items()):
        try:
            if "board" in spec:
                leds[name] = BoardLed(spec["board"])
            else:
                leds[name] = GpioLed(spec["chip"], int(spec["line"]))
        except (OSError, ImportError) as exc:
            print(f"leds-agent: LED {name}: {exc}", file=sys.stderr)
    return leds


def run(config: dict[str, Any]) -> None:
    leds = make_leds(config)
    node, compute = config["node"], config.get("compute", True)
    interval = float(config.get("interval_s", 1.0))
    shown: dict[str, bool] = {}
    state, checked = "", 0.0
    while True:
        now = time.monotonic()
        if now - checked >= interval or not state:
            identify = os.path.exists(IDENTIFY_FLAG)
            if identify or compute:
                state = classify(None if identify else slurm_state(node), identify)
            else:
                state = "idle"  # a head without slurmd: lit while the agent runs
            checked = now
        patterns = config["states"].get(state, {})
        for name, led in leds.items():
            on = pattern_on(patterns.get(name, "off"), now)
            if shown.get(name) is not on:
                led.set(on)
                shown[name] = on
        time.sleep(TICK_S)


def main(argv: list[str]) -> int:
    with open(argv[1] if len(argv) > 1 else "/etc/piherd/leds.json") as handle:
        config = json.load(handle)
    run(config)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
