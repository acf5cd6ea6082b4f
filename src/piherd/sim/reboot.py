"""`python -m piherd.sim.reboot STATE_DIR NODE`: boot a full node again after it rebooted.

A container that reboots ends its systemd-nspawn with status 133; the launcher's wrapper
then becomes this program (proc.launch's on-reboot), which powers the node on again the
way `sim revive` does: the card's cmdline.txt and host name are read anew, and the node's
uptime starts again from zero, as on a Pi that rebooted.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from piherd.sim.proc import SimError
from piherd.sim.virtual_cluster import VirtualCluster


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m piherd.sim.reboot STATE_DIR NODE", file=sys.stderr)
        return 2
    state_dir, node = Path(argv[1]), argv[2]
    try:
        vc = VirtualCluster.attach(state_dir.name, state_dir.parent)
        asyncio.run(vc.boot_after_reboot(node))
    except (SimError, ValueError) as exc:
        print(f"piherd sim: {node} did not boot again after its reboot: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
