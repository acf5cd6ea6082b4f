"""The `ipmi` driver: a board's BMC over IPMI-over-LAN, through ipmitool.

The password never appears on a command line: ipmitool reads it from the secret's file
(`-f secrets_dir/power/NAME`).
"""

from __future__ import annotations

from piherd.power.base import Driver, DriverContext, PowerError, PowerState, first_line, run_argv
from piherd.power.settings import Target


def ipmitool_argv(target: Target, ctx: DriverContext, *command: str) -> list[str]:
    """`ipmitool -I lanplus -H BMC -C 3 [-p PORT] -U USER -f SECRET COMMAND...`."""
    c = target.controller
    argv = ["ipmitool", "-I", c.interface, "-H", target.host]
    if c.interface == "lanplus":
        argv += ["-C", str(c.cipher)]  # without it ipmitool probes suites, slowly on some BMCs
    if c.port:
        argv += ["-p", str(c.port)]
    return [*argv, "-U", c.user, "-f", str(ctx.secret_path(c.secret)), *command]


def parse_status(stdout: str) -> PowerState:
    """'Chassis Power is on' -> "on"."""
    words = stdout.strip().lower().split()
    if words[-1:] in (["on"], ["off"]):
        return "on" if words[-1] == "on" else "off"
    return "unknown"


class IpmiDriver(Driver):
    """chassis power on / off / status through the node's BMC."""

    name = "ipmi"

    async def _chassis(self, target: Target, ctx: DriverContext, action: str) -> str:
        argv = ipmitool_argv(target, ctx, "chassis", "power", action)
        rc, out, err = await run_argv(argv, timeout=ctx.timeout, what=f"ipmitool {target.host}")
        if rc != 0:
            raise PowerError(
                f"ipmitool chassis power {action} at {target.host}: {first_line(err) or rc}"
            )
        return out

    async def on(self, target: Target, ctx: DriverContext) -> None:
        await self._chassis(target, ctx, "on")

    async def off(self, target: Target, ctx: DriverContext) -> None:
        await self._chassis(target, ctx, "off")

    async def status(self, target: Target, ctx: DriverContext) -> PowerState:
        return parse_status(await self._chassis(target, ctx, "status"))
