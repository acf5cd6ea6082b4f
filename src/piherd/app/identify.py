"""The `identify` use case: make a node's LEDs blink until stopped (services.leds' agent)."""

from __future__ import annotations

import asyncio
import contextlib

from piherd.app.remote import open_cluster
from piherd.model import Cluster
from piherd.services.leds import IDENTIFY_FLAG, LedSettings
from piherd.transport.base import CommandResult


class IdentifyError(RuntimeError):
    """The node's LEDs cannot be told to blink; the message says why."""


def _check(result: CommandResult, what: str) -> None:
    if not result.ok:
        reason = result.error or result.stderr.strip()[:200] or f"exit {result.rc}"
        raise IdentifyError(f"{result.node}: cannot {what}: {reason}")


async def identify(cluster: Cluster, node: str, seconds: float | None) -> None:
    """Blink `node`'s LEDs for `seconds`, or until cancelled (Ctrl-C); always stops them."""
    if not cluster.services.is_on(LedSettings):
        raise IdentifyError(
            "the LED service is off: set enabled = true under [services.leds] and run piherd up"
        )
    async with open_cluster(cluster) as session:
        _check((await session.run([node], ["touch", IDENTIFY_FLAG], sudo=True))[0], "start")
        try:
            if seconds is None:
                await asyncio.Event().wait()  # until cancelled
            else:
                await asyncio.sleep(seconds)
        finally:
            stop = session.run([node], ["rm", "-f", IDENTIFY_FLAG], sudo=True, timeout=15)
            with contextlib.suppress(asyncio.CancelledError):
                results = await asyncio.shield(stop)
                _check(results[0], "stop")


async def stop_identify(cluster: Cluster, node: str) -> None:
    """Stop a node's identify blinking (one left by a lost session)."""
    async with open_cluster(cluster) as session:
        _check((await session.run([node], ["rm", "-f", IDENTIFY_FLAG], sudo=True))[0], "stop")
