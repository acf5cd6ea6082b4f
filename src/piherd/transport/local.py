"""Local transport: commands and files on this machine (asyncio subprocesses, atomic writes).

Used for the machine piherd runs on and in tests. `root` prefixes every file path
(a scratch directory stands in for a node's /); commands run on this machine as is.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import grp
import os
import pwd
import signal
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from piherd.transport.base import CommandResult, TransportError
from piherd.transport.remote_scripts import TEMP_PREFIX


class LocalTransport:
    """A Transport for this machine; `root` re-roots file paths (None: the real /)."""

    def __init__(self, node: str = "localhost", *, root: Path | None = None) -> None:
        self.node = node
        self.root = root
        self.address: str | None = "127.0.0.1"

    async def connect(self) -> None:
        """Nothing to open locally."""

    async def close(self) -> None:
        """Nothing to close locally."""

    def _path(self, path: str) -> Path:
        if self.root is None:
            return Path(path)
        return self.root / path.lstrip("/")

    async def run(
        self,
        argv: Sequence[str],
        *,
        sudo: bool = False,
        input: bytes | None = None,
        timeout: float | None = None,
    ) -> CommandResult:
        """Run argv here (with `sudo -n --` when asked and not root); kill it on timeout."""
        if not argv:
            raise ValueError("empty command")
        words = ["sudo", "-n", "--", *argv] if sudo and os.geteuid() != 0 else list(argv)
        started = time.monotonic()
        try:
            proc = await asyncio.create_subprocess_exec(
                *words,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,  # so a timeout can kill the whole process group
            )
        except OSError as exc:
            return CommandResult(self.node, 127, "", f"{words[0]}: {exc.strerror}\n", None, 0.0)
        finished = False
        try:
            async with asyncio.timeout(timeout):
                out, err = await proc.communicate(input or b"")
            finished = True
        except TimeoutError:
            return CommandResult(
                self.node, None, "", "", f"timeout after {timeout:g}s", time.monotonic() - started
            )
        finally:
            if not finished:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                with contextlib.suppress(ProcessLookupError):
                    await asyncio.shield(proc.wait())
        rc = proc.returncode if proc.returncode is not None else 255
        return CommandResult(
            self.node,
            128 - rc if rc < 0 else rc,
            out.decode("utf-8", "replace"),
            err.decode("utf-8", "replace"),
            None,
            time.monotonic() - started,
        )

    async def write_file(
        self, path: str, content: bytes, *, mode: int, owner: str = "root", group: str = "root"
    ) -> None:
        """Atomically replace `path`: temp file beside it, fsync, chmod/chown, rename."""
        target = self._path(path)
        try:
            await asyncio.to_thread(_atomic_write, target, content, mode, owner, group)
        except (OSError, KeyError) as exc:
            raise TransportError(self.node, f"cannot write {path}: {exc}") from exc

    async def read_file(self, path: str, *, sudo: bool = False) -> bytes | None:
        """Contents of `path`, or None when it does not exist."""
        try:
            return await asyncio.to_thread(self._path(path).read_bytes)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise TransportError(self.node, f"cannot read {path}: {exc}") from exc


def _sweep(prefix: Path) -> None:
    """Remove leftovers `prefix.PID.*` whose writer PID is gone (as remote_scripts.SWEEP)."""
    for old in prefix.parent.glob(f"{glob.escape(prefix.name)}.*"):
        pid = old.name[len(prefix.name) + 1 :].split(".", 1)[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            old.unlink(missing_ok=True)


def _atomic_write(target: Path, content: bytes, mode: int, owner: str, group: str) -> None:
    _sweep(target.parent / f"{TEMP_PREFIX}{target.name}")
    prefix = f"{TEMP_PREFIX}{target.name}.{os.getpid()}."
    fd, tmp = tempfile.mkstemp(prefix=prefix, dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            uid, gid = pwd.getpwnam(owner).pw_uid, grp.getgrnam(group).gr_gid
            if os.geteuid() == 0 or (uid, gid) != (os.getuid(), os.getgid()):
                os.fchown(handle.fileno(), uid, gid)
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
