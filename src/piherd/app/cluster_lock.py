"""One `up` (or `watch`) per cluster on this machine: an fcntl lock file that says who holds it.

The lock is `flock` on ~/.cache/piherd/locks/<cluster>.<purpose>.lock ($XDG_CACHE_HOME
honoured): the kernel drops it when its process ends, however it ends, so a crashed run
never leaves a stale lock. Its holder (PID, host, since, command) is written in the file
for whoever finds it taken.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

_POLL = 0.2  # seconds between tries while waiting for a lock
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


@dataclass(frozen=True)
class LockHolder:
    """Who holds a lock: process, machine, since when (UTC), doing what."""

    pid: int
    host: str
    since: str
    command: str

    def describe(self) -> str:
        return f"{self.command} (PID {self.pid} on {self.host}, since {self.since})"

    @classmethod
    def here(cls, command: str) -> LockHolder:
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return cls(os.getpid(), socket.gethostname(), since, command)

    @classmethod
    def parse(cls, text: str) -> LockHolder | None:
        try:
            data = json.loads(text)
            return cls(
                int(data["pid"]), str(data["host"]), str(data["since"]), str(data["command"])
            )
        except (ValueError, KeyError, TypeError):
            return None


class LockBusy(Exception):
    """The lock is held by someone else (and waiting for it, if allowed, did not help)."""

    def __init__(self, what: str, holder: LockHolder | None, waited: float) -> None:
        self.holder = holder
        who = holder.describe() if holder is not None else "another piherd process"
        after = f" (waited {waited:g}s)" if waited > 0 else ""
        super().__init__(f"{what} is locked by {who}{after}")


def lock_dir() -> Path:
    """Where this machine's cluster locks live."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "piherd" / "locks"


def lock_path(cluster: str, purpose: str) -> Path:
    """The lock file of `purpose` ("up", "watch") on the cluster named `cluster`."""
    name = (
        cluster if _SAFE_NAME.fullmatch(cluster) else hashlib.sha256(cluster.encode()).hexdigest()
    )
    return lock_dir() / f"{name}.{purpose}.lock"


def _read_holder(fd: int) -> LockHolder | None:
    return LockHolder.parse(os.pread(fd, 4096, 0).decode("utf-8", "replace"))


@contextlib.contextmanager
def cluster_lock(
    cluster: str,
    purpose: str,
    *,
    wait: float = 0.0,
    command: str | None = None,
    on_wait: Callable[[LockHolder | None], None] | None = None,
) -> Iterator[LockHolder]:
    """Hold the cluster's `purpose` lock inside; LockBusy when taken for more than `wait` s.

    `on_wait(holder)` is called once when the lock is taken and the caller will wait.
    """
    path = lock_path(cluster, purpose)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        started = time.monotonic()
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _read_holder(fd)
                waited = time.monotonic() - started
                if waited >= wait:
                    raise LockBusy(f"cluster {cluster} ({purpose})", holder, waited) from None
                if not told and on_wait is not None:
                    on_wait(holder)
                    told = True
                time.sleep(min(_POLL, wait - waited))
        me = LockHolder.here(command or f"piherd {purpose}")
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(asdict(me)) + "\n").encode(), 0)
        try:
            yield me
        finally:
            os.ftruncate(fd, 0)  # released: nobody to name any more
    finally:
        os.close(fd)
