"""The one async interface every transport (ssh, local) offers, and its result type.

Callers never build shell strings: commands are argv lists, quoted by the transport
with shlex.join when a shell is unavoidable (sudo over SSH).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class CommandResult:
    """What one command did on one node: like subprocess.CompletedProcess, plus errors.

    `error` is set when the command could not run at all (unreachable, auth refused,
    timed out); then `rc` is None. A command that ran and failed has rc != 0 and no error.
    """

    node: str
    rc: int | None
    stdout: str = ""
    stderr: str = ""
    error: str | None = None
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None and self.rc == 0


class TransportError(Exception):
    """A node could not be reached or refused us; the message names the node and why."""

    def __init__(self, node: str, reason: str) -> None:
        self.node = node
        self.reason = reason
        super().__init__(f"{node}: {reason}")


class Transport(Protocol):
    """How bytes and commands reach one node. Construct cheaply; `connect()` does I/O."""

    node: str

    async def connect(self) -> None:
        """Open the connection (idempotent); TransportError when the node cannot be reached."""

    async def run(
        self,
        argv: Sequence[str],
        *,
        sudo: bool = False,
        input: bytes | None = None,
        timeout: float | None = None,
    ) -> CommandResult:
        """Run argv on the node; never raises for a failing command, only returns its result."""

    async def write_file(
        self, path: str, content: bytes, *, mode: int, owner: str = "root", group: str = "root"
    ) -> None:
        """Atomically replace `path` (temp file in the same directory, then rename)."""

    async def read_file(self, path: str, *, sudo: bool = False) -> bytes | None:
        """Contents of `path`, or None when it does not exist."""

    async def close(self) -> None:
        """Close the connection; safe to call twice."""
