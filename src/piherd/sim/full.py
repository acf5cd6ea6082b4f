"""Full nodes: systemd-nspawn containers booting systemd on an overlay of the base image."""

# Small local files (state dir, /proc, /sys): blocking access is intended and brief.

from __future__ import annotations

from pathlib import Path

from piherd.sim.clusterfile import SimFiles
from piherd.sim.names import SimNames
from piherd.sim.state import SimState


async def router_up(state: SimState, files: SimFiles) -> None:
    raise NotImplementedError


async def router_down(state: SimState) -> None:
    return None


async def cgroups_remove(names: SimNames, node: str | None) -> None:
    return None


def running(node_dir: Path) -> bool:
    return False


async def start(state: SimState, node: str, files: SimFiles) -> None:
    raise NotImplementedError


async def stop(state: SimState, node: str, *, power_cut: bool = False) -> None:
    return None


def wipe(state: SimState, node: str) -> None:
    return None


def shell_argv(state: SimState, node: str) -> list[str]:
    raise NotImplementedError
