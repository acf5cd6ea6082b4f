"""What a virtual cluster is, recorded on disk so another process can attach to it."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from ipaddress import IPv4Network
from pathlib import Path

from piherd.sim.names import SimNames, node_name

STATE_FILE = "sim.json"


@dataclass(frozen=True)
class SimState:
    """The cluster's shape: name, kind, size, subnet, where its files live; `blank`: full
    nodes shaped like freshly flashed stock cards (no identity until a first boot gives one);
    `vm`: every node a QEMU machine with its own kernel; `netboot`: the VM workers have
    no disk and boot from the head (services.netboot)."""

    name: str
    light: bool
    workers: int
    subnet: str
    state_dir: str
    blank: bool = False
    release: str = "bookworm"  # of full nodes' base (sim/image.py)
    vm: bool = False  # QEMU machines with their own kernel (sim/vm.py), not containers
    netboot: bool = False  # VM workers boot from the head (iPXE, NFS root), no disk

    def netbooted(self, node: str) -> bool:
        """Whether `node` boots from the head's network boot service (a VM worker)."""
        return self.netboot and node != self.node_names()[0]

    @property
    def count(self) -> int:
        return self.workers + 1

    @property
    def names(self) -> SimNames:
        return SimNames(self.name, IPv4Network(self.subnet))

    def node_names(self) -> list[str]:
        return [node_name(i, self.count) for i in range(self.count)]

    def index(self, node: str) -> int:
        """Index of `node` (0 = head); ValueError naming the known nodes otherwise."""
        names = self.node_names()
        if node not in names:
            raise ValueError(
                f"no node {node!r} in sim cluster {self.name!r} (nodes: {names[0]}..{names[-1]})"
            )
        return names.index(node)

    def node_dir(self, node: str) -> Path:
        return Path(self.state_dir) / "nodes" / node


def save(state: SimState) -> None:
    """Write sim.json atomically."""
    path = Path(state.state_dir) / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2) + "\n")
    os.replace(tmp, path)


def load(state_dir: Path) -> SimState | None:
    try:
        data = json.loads((state_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return SimState(**data)
