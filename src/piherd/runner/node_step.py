"""One step on one node while applying: a root command that fails with its reason, a file."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Protocol

from piherd.ops import debian
from piherd.ops.changes import DesiredFile
from piherd.transport.base import Transport, TransportError

COMMAND_TIMEOUT = 120.0


class Pool(Protocol):
    """What applying needs of transport.pool.ConnectionPool."""

    async def get(self, name: str) -> Transport: ...

    async def forget(self, name: str) -> None: ...


class ApplyError(Exception):
    """A change failed on a node; the message is the reason shown in the summary."""


async def run_checked(t: Transport, argv: Sequence[str], timeout: float = COMMAND_TIMEOUT) -> str:
    """Run `argv` as root; its stdout, or ApplyError with the last lines of its output."""
    result = await t.run(argv, sudo=True, timeout=timeout)
    if result.error is not None:
        raise TransportError(t.node, result.error)
    if result.rc != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise ApplyError(f"`{shlex.join(argv)}` failed (rc={result.rc}): {' / '.join(tail)}")
    return result.stdout


async def write_desired_file(t: Transport, wanted: DesiredFile) -> None:
    """Create the file's directory if needed, then replace the file atomically."""
    parent = wanted.path.rsplit("/", 1)[0] or "/"
    await run_checked(t, debian.mkdir_parents(parent))
    await t.write_file(
        wanted.path, wanted.content, mode=wanted.mode, owner=wanted.owner, group=wanted.group
    )
