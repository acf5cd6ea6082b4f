"""Find anything a virtual cluster left on the machine, by its names (never by pattern
wider than the cluster): namespaces, links, nft table, mounts, cgroup dirs, processes."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from pathlib import Path

from piherd.sim.bridge import NETNS_DIR
from piherd.sim.names import CGROUP_ROOT, STATE_ROOT, short_name


def _mount_points() -> list[str]:
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        points.append(line.split()[4].replace("\\040", " "))
    return points


def _processes(marker: str) -> list[str]:
    """Live processes whose command line mentions `marker` (zombies hold nothing)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and marker in cmdline:
            found.append(f"process {proc.name}: {cmdline.strip()[:120]}")
    return found


def leftovers(name: str, state_root: Path = STATE_ROOT) -> list[str]:
    """Everything of sim cluster `name` still present; empty when `down` was complete."""
    found: list[str] = []
    short = short_name(name)
    if NETNS_DIR.is_dir():
        found += [
            f"netns {p.name}" for p in NETNS_DIR.iterdir() if p.name.startswith(f"piherd-{name}-")
        ]
    for link in Path("/sys/class/net").iterdir():
        if link.name == f"ph-{short}" or link.name.startswith((f"ph{short}-", f"ph_{short}_")):
            found.append(f"link {link.name}")
    tables = subprocess.run(
        ["nft", "list", "tables"], capture_output=True, text=True, check=False
    ).stdout
    if f"inet piherd-{name}\n" in tables + "\n":
        found.append(f"nft table inet piherd-{name}")
    state = str(state_root / name)
    found += [f"mount {m}" for m in _mount_points() if m == state or m.startswith(state + "/")]
    if CGROUP_ROOT.is_dir():
        for hierarchy in CGROUP_ROOT.iterdir():
            if (hierarchy / f"piherd-{name}").exists():
                found.append(f"cgroup {hierarchy / f'piherd-{name}'}")
    found += _processes(state + "/")
    return found


def leftovers_of(names: Iterable[str], state_root: Path = STATE_ROOT) -> list[str]:
    """What the clusters `names` left (state dirs included), never anything of another cluster."""
    found: list[str] = []
    for name in sorted(set(names)):
        if (state_root / name).exists():
            found.append(f"state dir {state_root / name}")
        found += leftovers(name, state_root)
    return found
