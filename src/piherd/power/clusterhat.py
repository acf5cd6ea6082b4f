"""The `clusterhat` driver: a ClusterHAT's Pi Zeros, by `clusterctrl` on the controller Pi.

`clusterctrl on p1` / `off p1` / `status` (its lines `p1:1`) run over SSH on the
controller (`host`, as `user`), with the cluster's ssh_config and known_hosts: host keys
are checked like for any node.
"""

from __future__ import annotations

import shlex

from piherd.power.base import Driver, DriverContext, PowerError, PowerState, first_line, run_argv
from piherd.power.settings import Target


def ssh_argv(target: Target, ctx: DriverContext, *remote: str) -> list[str]:
    """`ssh [-F cfg] -o BatchMode=yes [user@]host -- 'clusterctrl ...'` (host keys checked)."""
    argv = ["ssh"]
    if ctx.ssh_config:
        argv += ["-F", str(ctx.ssh_config)]
    if ctx.known_hosts:
        argv += ["-o", f"UserKnownHostsFile={ctx.known_hosts}"]
    if ctx.ssh_identity:
        argv += ["-i", str(ctx.ssh_identity)]
    argv += ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"]
    user = target.controller.user
    argv += [f"{user}@{target.host}" if user else target.host, "--", shlex.join(remote)]
    return argv


def parse_status(stdout: str, index: int) -> PowerState:
    for line in stdout.splitlines():
        key, _, value = line.strip().partition(":")
        if key == f"p{index}":
            return "on" if value.strip() == "1" else "off" if value.strip() == "0" else "unknown"
    return "unknown"


class ClusterHatDriver(Driver):
    """Power a ClusterHAT port (P1-P4) on or off."""

    name = "clusterhat"

    async def _ctrl(self, target: Target, ctx: DriverContext, *words: str) -> str:
        argv = ssh_argv(target, ctx, "clusterctrl", *words)
        rc, out, err = await run_argv(
            argv, timeout=ctx.timeout, what=f"clusterctrl on {target.host}"
        )
        if rc != 0:
            raise PowerError(
                f"clusterctrl {' '.join(words)} on {target.host}: {first_line(err) or rc}"
            )
        return out

    async def on(self, target: Target, ctx: DriverContext) -> None:
        await self._ctrl(target, ctx, "on", f"p{target.index}")

    async def off(self, target: Target, ctx: DriverContext) -> None:
        await self._ctrl(target, ctx, "off", f"p{target.index}")

    async def status(self, target: Target, ctx: DriverContext) -> PowerState:
        return parse_status(await self._ctrl(target, ctx, "status"), target.index)
