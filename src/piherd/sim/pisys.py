"""Raspberry Pi hardware signals of a virtual node, at the paths a real Pi exposes.

Each node's state dir holds a small tree (class/thermal, class/hwmon, class/leds,
firmware/get_throttled). Inside the node, /sys/class is covered by a tmpfs that
re-binds every real class entry and binds these three from the tree, so
/sys/class/thermal/thermal_zone0/temp, the hwmon device named `rpi_volt` and
/sys/class/leds/ACT|PWR read and write like on a Pi, and `vcgencmd get_throttled`
(a small firmware emulation installed in the base image) reports the same state.
`sim inject` only rewrites files in the tree.
"""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path

IDLE_TEMP_MC = 45000
HOT_TEMP_MC = 85000  # the Pi's hard limit
# get_throttled bits: 0 under-voltage, 1 freq capped, 2 throttled, 3 soft temp limit;
# bits 16-19: the same "has occurred since boot".
UNDERVOLTAGE = 0x50005
OVERTEMP = 0xE000E
STICKY = 0xF0000
LED_TRIGGERS = "none rc-feedback kbd-scrolllock timer oneshot heartbeat default-on input"
INJECTIONS = ("undervoltage", "overtemp", "clear")

# Runs inside the node's mount and network namespaces: $1 = the node's pi tree as seen
# there, $2 = which real class entries to keep (empty: all; light nodes keep a few,
# since every entry costs a mount process and they start by the hundred). A fresh
# sysfs mounted in the node's netns supplies the real /sys/class entries (so
# /sys/class/net lists the node's own interfaces); thermal, hwmon and leds come from
# the tree. Staged on a private tmpfs, then bound over /sys/class in one step.
SYS_OVERLAY_SCRIPT = r"""
set -e
src=$1
keep=${2:-}  # real class entries to keep ("" = all of them)
stage=$src/.stage
mkdir -p "$stage"
mount -t tmpfs -o mode=0755,size=64k piherd-stage "$stage"
mount --make-private "$stage"
mkdir "$stage/sys" "$stage/class"
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$stage/sys"
for entry in "$stage"/sys/class/*; do
  base=${entry##*/}
  case $base in thermal|hwmon|leds) continue ;; esac
  case " ${keep:-$base} " in *" $base "*) ;; *) continue ;; esac
  mkdir "$stage/class/$base"
  mount --rbind "$entry" "$stage/class/$base"
done
for base in thermal hwmon leds; do
  mkdir "$stage/class/$base"
  mount --bind "$src/class/$base" "$stage/class/$base"
done
mount --rbind "$stage/sys/devices/virtual/net" /sys/devices/virtual/net
mount --rbind "$stage/class" /sys/class
umount -l "$stage"
"""

VCGENCMD = r'''#!/usr/bin/python3
"""vcgencmd for piherd virtual nodes: answers from the emulated firmware state."""
import sys

FIRMWARE = "/run/piherd-sim/pi/firmware/get_throttled"
TEMP = "/sys/class/thermal/thermal_zone0/temp"


def read(path, default):
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError:
        return default


def main(argv):
    if not argv:
        print("usage: vcgencmd get_throttled | measure_temp | measure_volts", file=sys.stderr)
        return 1
    if argv[0] == "get_throttled":
        print("throttled=0x%x" % int(read(FIRMWARE, "0x0"), 16))
    elif argv[0] == "measure_temp":
        print("temp=%.1f'C" % (int(read(TEMP, "0")) / 1000))
    elif argv[0] == "measure_volts":
        low = int(read(FIRMWARE, "0x0"), 16) & 1
        print("volt=%.4fV" % (0.8 if low else 0.88))
    else:
        print("error=1 error_msg=\"Command not registered\"")
        return 1
    return 0


sys.exit(main(sys.argv[1:]))
'''


async def fresh_boot_clocks(not_before: float = 0.0) -> list[str]:
    """`unshare` options for a time namespace whose boot and monotonic clocks start near 0:
    a container shares the host's kernel, so without it /proc/uptime would show the host's
    uptime and never reset on kill/revive/reset, unlike a Pi that was power-cycled.

    `not_before` (CLOCK_BOOTTIME): when the node was asked to power on. Its boot clock
    then starts at the first whole second after that (unshare takes whole seconds),
    never before: Slurm takes a node's boot time as now - uptime and ignores the
    registrations of a node that seems to have booted before its resume request, so a
    clock started early would leave a node Slurm's power saving switched on waiting
    until ResumeTimeout. Waiting for that second is less than any Pi needs to boot.
    """
    boot = time.clock_gettime(time.CLOCK_BOOTTIME)
    if boot < 2:
        return []
    offset = math.floor(boot)  # started up to a second ago: fine when nobody asked
    if not_before:
        offset = max(offset, math.ceil(not_before))
        wait = offset - time.clock_gettime(time.CLOCK_BOOTTIME)
        if wait > 0:
            await asyncio.sleep(wait + 0.01)  # asyncio may wake a clock tick early
    monotonic = int(time.monotonic())  # never above the monotonic clock: no negative time
    return ["--time", f"--boottime=-{offset}", f"--monotonic=-{monotonic}"]


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def seed(tree: Path) -> None:
    """A freshly booted Pi: cool, good power, ACT on mmc0, PWR on."""
    thermal = tree / "class/thermal/thermal_zone0"
    _write(thermal / "type", "cpu-thermal\n")
    _write(thermal / "temp", f"{IDLE_TEMP_MC}\n")
    _write(thermal / "policy", "step_wise\n")  # a Pi's governor; node_exporter reads it
    hwmon = tree / "class/hwmon/hwmon0"
    _write(hwmon / "name", "rpi_volt\n")
    _write(hwmon / "in0_lcrit_alarm", "0\n")
    for led, trigger, on in (("ACT", "mmc0", "0"), ("PWR", "default-on", "255")):
        leds = tree / "class/leds" / led
        _write(leds / "trigger", f"{LED_TRIGGERS} mmc0 [{trigger}]\n")
        _write(leds / "brightness", f"{on}\n")
        _write(leds / "max_brightness", "255\n")
    _write(tree / "firmware/get_throttled", "0x0\n")
    (tree / ".stage").mkdir(exist_ok=True)
    for path in tree.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)


def _read_int(path: Path, default: int) -> int:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return default


def inject(tree: Path, kind: str) -> None:
    """Apply `kind` (undervoltage|overtemp|clear) to the node's signals."""
    if kind not in INJECTIONS:
        raise ValueError(f"unknown injection {kind!r}: use one of {', '.join(INJECTIONS)}")
    throttled_file = tree / "firmware/get_throttled"
    try:
        current = int(throttled_file.read_text().strip(), 16)
    except (OSError, ValueError):
        current = 0
    # One signal is added to the others (an over-temperature stays when the voltage drops
    # too); only `clear` ends them all, keeping the "since boot" bits like the firmware.
    temp = _read_int(tree / "class/thermal/thermal_zone0/temp", IDLE_TEMP_MC)
    alarm = _read_int(tree / "class/hwmon/hwmon0/in0_lcrit_alarm", 0)
    bits = current
    if kind == "undervoltage":
        alarm, bits = 1, bits | UNDERVOLTAGE
    elif kind == "overtemp":
        temp, bits = HOT_TEMP_MC, bits | OVERTEMP
    else:
        temp, alarm, bits = IDLE_TEMP_MC, 0, current & STICKY
    # Rewrite in place (bind mounts of single files would pin the old inode).
    for path, text in (
        (tree / "class/thermal/thermal_zone0/temp", f"{temp}\n"),
        (tree / "class/hwmon/hwmon0/in0_lcrit_alarm", f"{alarm}\n"),
        (throttled_file, f"0x{bits:x}\n"),
    ):
        with path.open("w") as handle:
            handle.write(text)


def read_signals(tree: Path) -> dict[str, str]:
    """The node's current signals (for `sim status`)."""
    return {
        "temp_mc": (tree / "class/thermal/thermal_zone0/temp").read_text().strip(),
        "undervoltage": (tree / "class/hwmon/hwmon0/in0_lcrit_alarm").read_text().strip(),
        "throttled": (tree / "firmware/get_throttled").read_text().strip(),
    }
