"""One `up` per node at a time, whoever runs it: a `flock` held on the node for the whole run.

Each locked node runs one long command: `flock -n` on up.lock next to the node's record
(/var/lib/piherd/up.lock), the holder written in the file, then a heartbeat on stdout
until it is stopped. The lock goes when that command ends: released by us (cancelled,
which kills its process group), or by the node when our connection dies (the heartbeat's
write fails). A node already locked by another run is left alone, its holder named.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import posixpath
import secrets
import socket
import time
from collections.abc import AsyncIterator, Sequence

from piherd.runner.fanout import each_node
from piherd.runner.node_step import Pool
from piherd.transport.base import CommandResult, Transport, TransportError

LOCK_NAME = "up.lock"
BUSY_RC = 75
_ACQUIRE_TIMEOUT = 30.0  # seconds for a node to answer that it holds the lock
_POLL = 0.1
# What lock() says when the node's lock is still held by this run's previous connection.
OWN_HOLD = "held by this run's previous connection"
_RELOCK_POLL = 0.5  # seconds between tries to take back a lock our old command still holds

# $1 lock file, $2 holder line. Prints the other holder and exits 75 when taken.
HOLD = r"""
lock=$1 holder=$2
mkdir -p -- "$(dirname -- "$lock")" || exit 1
exec 9>>"$lock" || exit 1
if ! flock -n 9; then
    cat -- "$lock"
    exit 75
fi
printf '%s\n' "$holder" > "$lock"
while :; do
    sleep 5 9>&-
    printf . || exit 0
done
"""


def node_lock_path(record_path: str) -> str:
    """The node's up lock, beside its record ("" when no record is kept: no lock)."""
    return posixpath.join(posixpath.dirname(record_path), LOCK_NAME) if record_path else ""


def holder_line(command: str, token: str) -> str:
    """`piherd up (PID 1234 on laptop, since 2024-...Z) #token`: who, and our mark."""
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return f"{command} (PID {os.getpid()} on {socket.gethostname()}, since {since}) #{token}"


def _who(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line.rsplit(" #", 1)[0] or "another piherd run"


class _Held:
    """The lock commands running on the nodes we hold."""

    def __init__(self) -> None:
        self.tasks: list[asyncio.Task[CommandResult]] = []

    async def release(self) -> None:
        for task in self.tasks:
            task.cancel()
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=10.0)


async def _lock_one(
    pool: Pool,
    node: str,
    path: str,
    holder: str,
    token: str,
    held: _Held,
    ours: frozenset[str] = frozenset(),
) -> str | None:
    """Take the node's lock (None) or say why not: who holds it, or what failed.

    OWN_HOLD when the holder is one of `ours` (tokens of this run's earlier holds)."""
    t = await pool.get(node)
    task = asyncio.ensure_future(t.run(["sh", "-c", HOLD, "sh", path, holder], sudo=True))
    held.tasks.append(task)
    reason = await _acquired(t, task, path, token, ours)
    if reason is not None:
        task.cancel()  # not ours: never hold it by accident later
    return reason


async def _acquired(
    t: Transport,
    task: asyncio.Task[CommandResult],
    path: str,
    token: str,
    ours: frozenset[str] = frozenset(),
) -> str | None:
    deadline = time.monotonic() + _ACQUIRE_TIMEOUT
    while time.monotonic() < deadline:
        if task.done():
            result = task.result()
            if result.rc == BUSY_RC and result.stdout.strip().rsplit("#", 1)[-1] in ours:
                return OWN_HOLD
            if result.rc == BUSY_RC:
                return f"locked by {_who(result.stdout)}: another `piherd up` is changing it"
            return f"cannot lock {path}: {result.error or result.stderr.strip() or result.rc}"
        text = await t.read_file(path, sudo=True)
        if text is not None and text.decode("utf-8", "replace").rstrip().endswith(f"#{token}"):
            return None
        await asyncio.sleep(_POLL)
    return f"cannot lock {path}: no answer within {_ACQUIRE_TIMEOUT:g}s"


class NodeLocks:
    """The locks one run holds: who refused it, and taking a node's lock again.

    A node's lock lives as long as the connection its command runs on: after piherd
    reconnects on purpose (the network move, sshd reloaded), `relock` takes it again.
    """

    def __init__(self, pool: Pool, path: str, command: str) -> None:
        self.pool, self.path, self.command = pool, path, command
        self.held = _Held()
        self.refused: dict[str, str] = {}
        self.tokens: set[str] = set()  # of every hold this run took

    async def lock(self, node: str) -> str | None:
        """Take `node`'s lock: None, or why not (its holder, or what failed).

        Each attempt writes a token of its own: a token left in the file by an earlier
        hold of ours must not pass for this one.
        """
        if not self.path:
            return None
        token = secrets.token_hex(8)
        holder = holder_line(self.command, token)
        ours = frozenset(self.tokens)
        self.tokens.add(token)
        try:
            return await _lock_one(self.pool, node, self.path, holder, token, self.held, ours)
        except TransportError as exc:
            return exc.reason

    async def relock(self, node: str) -> str | None:
        """The lock again after a reconnect. Our old command holds it until the node sees
        its connection gone (its next heartbeat), so our own hold is waited out."""
        deadline = time.monotonic() + _ACQUIRE_TIMEOUT
        while True:
            reason = await self.lock(node)
            if reason != OWN_HOLD:
                return reason
            if time.monotonic() > deadline:
                return f"{reason}, still after {_ACQUIRE_TIMEOUT:g}s"
            await asyncio.sleep(_RELOCK_POLL)


@contextlib.asynccontextmanager
async def node_locks(
    pool: Pool, names: Sequence[str], path: str, *, command: str = "piherd up"
) -> AsyncIterator[NodeLocks]:
    """Hold `path` on every node of `names` inside; `.refused` says why not for the others."""
    locks = NodeLocks(pool, path, command)
    try:

        async def one(node: str) -> None:
            reason = await locks.lock(node)
            if reason is not None:
                locks.refused[node] = reason

        await each_node(names, one)
        yield locks
    finally:
        await locks.held.release()
