"""The `sim` driver: a node of a `piherd sim` cluster (power cut = `sim kill`, on = `sim revive`).

Like a relay in the node's power lead: off SIGKILLs the container, no shutdown; on boots
it again without waiting for it (`--wait` waits for SSH like on any board). Needs root,
as the sim does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from piherd.power.base import Driver, DriverContext, PowerError, PowerState
from piherd.power.settings import Target

if TYPE_CHECKING:
    from piherd.sim.virtual_cluster import VirtualCluster


def _cluster(target: Target) -> VirtualCluster:
    # Imported here: only the sim driver needs the sim (and root).
    from piherd.sim.proc import SimError
    from piherd.sim.virtual_cluster import VirtualCluster

    try:
        return VirtualCluster.attach(target.controller.sim)
    except SimError as exc:
        raise PowerError(str(exc)) from None


class SimDriver(Driver):
    """Cut and restore a virtual node's power."""

    name = "sim"

    async def on(self, target: Target, ctx: DriverContext) -> None:
        del ctx
        await _cluster(target).power_on(target.node)

    async def off(self, target: Target, ctx: DriverContext) -> None:
        del ctx
        vc = _cluster(target)
        if vc.powered(target.node):  # a relay that is already open stays open
            await vc.kill(target.node)

    async def status(self, target: Target, ctx: DriverContext) -> PowerState:
        del ctx
        return "on" if _cluster(target).powered(target.node) else "off"
