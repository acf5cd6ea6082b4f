"""A TCP sweep of addresses: who accepts a connection to the SSH port, who refuses it.

No root and no raw sockets: a plain connect per address. It also makes this machine's
kernel resolve each live address's MAC (ARP), which the neighbour table then holds
(discover/neighbours.py). A refusal counts as an answer: a machine is there, sshd is not
(yet: a fresh Raspberry Pi OS starts it only when the image asked for it).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
from collections.abc import Iterable
from enum import StrEnum
from ipaddress import IPv4Address


class Answer(StrEnum):
    """What an address did when asked for a TCP connection."""

    SSH = "ssh"  # accepted: something listens on the port (sshd on a Pi)
    REFUSED = "refused"  # a machine is there, nothing listens


async def _knock(address: IPv4Address, port: int, timeout: float) -> Answer | None:
    writer = None
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(str(address), port)
        return Answer.SSH
    except ConnectionRefusedError:
        return Answer.REFUSED
    except OSError as exc:  # no route, host unreachable (no ARP answer), ...
        return Answer.REFUSED if exc.errno == errno.ECONNREFUSED else None
    except TimeoutError:
        return None
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def sweep(
    addresses: Iterable[IPv4Address], port: int, *, timeout: float = 1.0, limit: int = 256
) -> dict[IPv4Address, Answer]:
    """Every address that answered on `port` within `timeout`, at most `limit` at once."""
    gate = asyncio.Semaphore(limit)
    order = list(dict.fromkeys(addresses))

    async def one(address: IPv4Address) -> Answer | None:
        async with gate:
            return await _knock(address, port, timeout)

    answers = await asyncio.gather(*(one(a) for a in order))
    return {a: answer for a, answer in zip(order, answers, strict=True) if answer is not None}
