"""Whether an SSH server answers at an address: its banner, without logging in.

Used where a login would be too much: the sim waiting for a booted node, and the
ssh power driver's status.
"""

from __future__ import annotations

import asyncio
import contextlib


async def ssh_answers(address: str, port: int = 22, timeout: float = 3.0) -> bool:
    """True when something at address:port sends an SSH banner within `timeout` seconds."""
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(address, port)
    except (OSError, TimeoutError):
        return False
    try:
        async with asyncio.timeout(timeout):
            banner = await reader.readline()
        return banner.startswith(b"SSH-")
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
