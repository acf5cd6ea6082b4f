"""The per-node `up` lock (issue 12, class 11): `flock` held by a command on the node.

Run here through LocalTransport, so each holder is a real separate process: a second
taker is refused naming the first (PID, host, since), and the lock goes with its holder.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
from pathlib import Path

from piherd.runner.node_lock import node_lock_path, node_locks
from piherd.transport.base import Transport
from piherd.transport.local import LocalTransport


class Pool:
    async def get(self, name: str) -> Transport:
        return LocalTransport(name)

    async def forget(self, name: str) -> None:
        pass


def free(path: Path) -> bool:
    return subprocess.run(["flock", "-n", str(path), "true"], check=False).returncode == 0


def test_a_second_run_is_refused_naming_the_first_and_the_lock_goes_with_it(
    tmp_path: Path,
) -> None:
    lock = tmp_path / "var" / "up.lock"

    async def main() -> None:
        async with node_locks(Pool(), ["n1"], str(lock)) as first:  # type: ignore[arg-type]
            assert first.refused == {}
            assert not free(lock)
            async with node_locks(Pool(), ["n1"], str(lock), command="piherd up") as second:  # type: ignore[arg-type]
                reason = second.refused["n1"]
            assert reason.startswith(f"locked by piherd up (PID {os.getpid()} on ")
            assert socket.gethostname() in reason and "since 20" in reason
        assert free(lock)
        async with node_locks(Pool(), ["n1"], str(lock)) as third:  # type: ignore[arg-type]
            assert third.refused == {}

    asyncio.run(main())


def test_relock_takes_the_lock_again_after_its_connection_went(tmp_path: Path) -> None:
    """A reconnect ends the lock's command (here: cancelled); relock holds it again, and
    fails naming the holder when another run took it in between."""
    lock = tmp_path / "up.lock"

    async def main() -> None:
        async with node_locks(Pool(), ["n1"], str(lock)) as first:  # type: ignore[arg-type]
            await first.held.release()  # the connection that held it is gone
            assert free(lock)
            assert await first.relock("n1") is None
            assert not free(lock)
            await first.held.release()
            async with node_locks(Pool(), ["n1"], str(lock)) as other:  # type: ignore[arg-type]
                assert other.refused == {}
                reason = await first.relock("n1")
                assert reason is not None and reason.startswith("locked by piherd up")

    asyncio.run(main())


def test_relock_waits_out_our_own_old_hold(tmp_path: Path) -> None:
    """Right after a reconnect, our old command may still hold the lock (the node has
    not noticed the old connection gone): relock waits for it, not for a stranger."""
    lock = tmp_path / "up.lock"

    async def main() -> None:
        async with node_locks(Pool(), ["n1"], str(lock)) as first:  # type: ignore[arg-type]
            old = list(first.held.tasks)

            async def connection_goes_later() -> None:
                await asyncio.sleep(1.0)
                for task in old:
                    task.cancel()

            going = asyncio.ensure_future(connection_goes_later())
            assert await first.relock("n1") is None
            await going
            assert not free(lock)

    asyncio.run(main())


def test_the_lock_lives_beside_the_record_and_none_without_one() -> None:
    assert node_lock_path("/var/lib/piherd/record") == "/var/lib/piherd/up.lock"
    assert node_lock_path("") == ""
