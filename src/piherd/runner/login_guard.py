"""Reloading sshd with new login settings without locking anyone out (like the network move).

A rollback is armed as a systemd timer on the node *before* sshd reloads: unless piherd
removes the marker, the timer puts the login files back as they were and reloads sshd
again. piherd removes the marker only after a brand-new key login has worked, so
password login is turned off only on a node where keys are known to let the admin in.
"""

from __future__ import annotations

import asyncio
import shlex
import time
from collections.abc import Awaitable, Callable, Mapping

from piherd.ops import debian
from piherd.ops.changes import ChangeKind
from piherd.runner.netmove import OldFile, restore_lines
from piherd.runner.node_step import ApplyError, Pool, run_checked
from piherd.transport.base import Transport, TransportError

STATE_DIR = "/var/lib/piherd"
MARKER = f"{STATE_DIR}/login-pending"
ROLLBACK_SCRIPT = f"{STATE_DIR}/login-rollback.sh"
ROLLBACK_UNIT = "piherd-login-rollback"
RECONNECT_POLL = 1.0  # seconds between attempts at a fresh key login


def rollback_script(old: Mapping[str, OldFile]) -> str:
    """A sh script: if the marker is still there, restore `old` and reload sshd."""
    return "\n".join(
        [
            "#!/bin/sh",
            "# Written by piherd before reloading sshd; run by a timer unless cancelled.",
            f"[ -e {shlex.quote(MARKER)} ] || exit 0",
            *restore_lines(old),
            f"rm -f {shlex.quote(MARKER)}",
            shlex.join(debian.systemctl_for(ChangeKind.RELOAD, "ssh.service")),
            "",
        ]
    )


def arm_command(after: float) -> list[str]:
    """A transient timer that runs the rollback script `after` seconds from now."""
    return debian.run_later(ROLLBACK_UNIT, after, ROLLBACK_SCRIPT)


async def reload_guarded(
    pool: Pool,
    node_name: str,
    reload: Callable[[Transport], Awaitable[None]],
    old: Mapping[str, OldFile],
    *,
    confirm_within: float,
    rollback_after: float,
) -> None:
    """Arm the rollback, run `reload` (sshd), then confirm with a fresh key login.

    ApplyError when no new key login works within `confirm_within`; the node then puts
    its old login settings back by itself after `rollback_after` seconds.
    """
    t = await pool.get(node_name)
    stale = debian.systemctl_stop(f"{ROLLBACK_UNIT}.timer", ROLLBACK_UNIT)
    await t.run(stale, sudo=True, timeout=60)
    await t.run(debian.systemctl_reset_failed(ROLLBACK_UNIT), sudo=True, timeout=60)
    await run_checked(t, debian.mkdir_parents(STATE_DIR))
    await t.write_file(ROLLBACK_SCRIPT, rollback_script(old).encode(), mode=0o700)
    await t.write_file(MARKER, b"", mode=0o600)
    await run_checked(t, arm_command(rollback_after))
    await reload(t)
    await pool.forget(node_name)  # the next login is a new one, under the new settings
    deadline = time.monotonic() + confirm_within
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            fresh = await pool.get(node_name)
            await run_checked(fresh, debian.remove_file(MARKER), timeout=15)
        except (TransportError, ApplyError) as exc:
            last = exc.reason if isinstance(exc, TransportError) else str(exc)
            await pool.forget(node_name)
            await asyncio.sleep(RECONNECT_POLL)
            continue
        await fresh.run(debian.systemctl_stop(f"{ROLLBACK_UNIT}.timer"), sudo=True, timeout=60)
        return
    raise ApplyError(
        f"no key login after sshd reloaded ({last}); the node restores its previous "
        f"login settings after {rollback_after:g}s"
    )
