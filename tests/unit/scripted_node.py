"""A scripted node for tests of what piherd runs: every command, write and read logged.

It speaks the Transport protocol; subclasses answer commands (`answer`) and file reads
(`contents`) as the test needs. No node, no systemd.
"""

from __future__ import annotations

from collections.abc import Sequence

from piherd.transport.base import CommandResult


class ScriptedNode:
    """Logs `ran` (argv lists), `written` (paths) and `log` (all steps, in order)."""

    def __init__(self, node: str = "node01") -> None:
        self.node = node
        self.ran: list[list[str]] = []
        self.written: list[str] = []
        self.log: list[str] = []

    def answer(self, argv: list[str]) -> CommandResult | None:
        """The result of `argv`; None: it succeeds with no output."""
        del argv
        return None

    def contents(self, path: str) -> bytes | None:
        """What reading `path` gives; None: no such file."""
        del path
        return None

    async def connect(self) -> None:
        pass

    async def run(
        self,
        argv: Sequence[str],
        *,
        sudo: bool = False,
        input: bytes | None = None,
        timeout: float | None = None,
    ) -> CommandResult:
        self.ran.append(list(argv))
        self.log.append(" ".join(argv))
        return self.answer(list(argv)) or CommandResult(self.node, 0, stdout="")

    async def write_file(
        self, path: str, content: bytes, *, mode: int, owner: str = "root", group: str = "root"
    ) -> None:
        self.written.append(path)
        self.log.append(f"write {path}")

    async def read_file(self, path: str, *, sudo: bool = False) -> bytes | None:
        self.log.append(f"read {path}")
        return self.contents(path)

    async def close(self) -> None:
        pass
