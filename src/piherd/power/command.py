"""The `command` driver: the site's own commands, templates filled with the node's values.

`on`, `off` and `status` are command lines split like a shell would (shlex) before
anything is filled in; `{name}`, `{mac}`, `{serial}` and `{address}` are then replaced
inside single words, so a value is always one argument and never reaches a shell.
`status` prints `on` or `off` (its first word); anything else is "unknown".
"""

from __future__ import annotations

from piherd.power.base import Driver, DriverContext, PowerError, PowerState, first_line, run_argv
from piherd.power.settings import Target, command_words, fill


def command_argv(template: str, target: Target) -> list[str]:
    """The argv of a template for `target`."""
    return fill(command_words(template), target)


class CommandDriver(Driver):
    """Run the configured command lines."""

    name = "command"

    async def _run(self, template: str, target: Target, ctx: DriverContext) -> str:
        argv = command_argv(template, target)
        rc, out, err = await run_argv(argv, timeout=ctx.timeout, what=argv[0])
        if rc != 0:
            raise PowerError(f"{argv[0]} exited {rc}: {first_line(err) or first_line(out)}")
        return out

    async def on(self, target: Target, ctx: DriverContext) -> None:
        await self._run(target.controller.on, target, ctx)

    async def off(self, target: Target, ctx: DriverContext) -> None:
        await self._run(target.controller.off, target, ctx)

    async def status(self, target: Target, ctx: DriverContext) -> PowerState:
        if not target.controller.status:
            return "unknown"
        words = (await self._run(target.controller.status, target, ctx)).split()
        return "on" if words[:1] == ["on"] else "off" if words[:1] == ["off"] else "unknown"
