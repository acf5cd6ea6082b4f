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
        reader, writer = await asyncio.wait_for(asyncio.open_connection(address, port), timeout)
    except (OSError, TimeoutError):
        return False
    try:
        banner = await asyncio.wait_for(reader.readline(), timeout)
        return banner.startswith(b"SSH-")
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
