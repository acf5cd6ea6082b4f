"""Moving a node to its new network config without losing it (like `netplan try`).

The whole protocol: the rollback is armed as a systemd timer on the node *before* the new
config is activated; it restores the previous files and re-activates them unless the
marker file is removed, which piherd does only after reconnecting at the static address.
The scripts are built by pure functions; `move_network` runs the steps.
"""

from __future__ import annotations

import asyncio
import base64
import shlex
import time
from collections.abc import Mapping
from dataclasses import dataclass

from piherd.facts.node_facts import NodeFacts
from piherd.ops import debian
from piherd.ops.changes import Change
from piherd.runner.node_step import ApplyError, Pool, run_checked, write_desired_file
from piherd.transport.base import TransportError

STATE_DIR = "/var/lib/piherd"
MARKER = f"{STATE_DIR}/net-pending"
ROLLBACK_SCRIPT = f"{STATE_DIR}/net-rollback.sh"
APPLY_UNIT = "piherd-net-apply"
ROLLBACK_UNIT = "piherd-net-rollback"
RECONNECT_POLL = 2.0  # seconds between attempts to reach the node at its new address


@dataclass(frozen=True)
class OldFile:
    """A network config file as it was before the move (content None: it did not exist)."""

    path: str
    content: bytes | None
    mode: int = 0o600
    owner: str = "root"
    group: str = "root"


def connection_id(path: str, content: bytes) -> str:
    """The NetworkManager connection id of a keyfile (`id=` in [connection]), else its stem."""
    for line in content.decode(errors="replace").splitlines():
        if line.strip().startswith("id="):
            return line.split("=", 1)[1].strip()
    stem = path.rsplit("/", 1)[-1]
    return stem.removesuffix(".nmconnection")


def activate_command(stack: str, interface: str, nm_ids: tuple[str, ...]) -> str:
    """Shell text that activates the files just written; run detached so a drop is harmless."""
    if stack == "networkmanager":
        ups = " && ".join(shlex.join(["nmcli", "connection", "up", i]) for i in nm_ids)
        return "sleep 1; nmcli connection reload" + (f" && {ups}" if ups else "")
    if stack == "dhcpcd":
        return "sleep 1; systemctl restart dhcpcd"
    if stack == "networkd":
        return "sleep 1; networkctl reload && " + shlex.join(
            ["networkctl", "reconfigure", interface]
        )
    raise ValueError(f"unknown network stack {stack!r}")


def _reactivate_old(stack: str, interface: str) -> str:
    if stack == "networkmanager":
        return "nmcli connection reload; " + shlex.join(["nmcli", "device", "connect", interface])
    if stack == "dhcpcd":
        return "systemctl restart dhcpcd"
    return "networkctl reload; " + shlex.join(["networkctl", "reconfigure", interface])


def restore_lines(old: Mapping[str, OldFile]) -> list[str]:
    """sh lines that put back each file of `old` as it was (or remove it: it did not exist)."""
    lines = []
    for path, item in sorted(old.items()):
        quoted = shlex.quote(path)
        if item.content is None:
            lines.append(f"rm -f -- {quoted}")
            continue
        tmp = shlex.quote(path + ".piherd-rollback")
        encoded = base64.b64encode(item.content).decode()
        lines += [
            f"printf %s {shlex.quote(encoded)} | base64 -d > {tmp}",
            f"chmod {item.mode:o} {tmp}",
            f"chown {shlex.quote(item.owner + ':' + item.group)} {tmp}",
            f"mv -f -- {tmp} {quoted}",
        ]
    return lines


def rollback_script(stack: str, interface: str, old: Mapping[str, OldFile]) -> str:
    """A sh script: if the marker is still there, restore `old` and re-activate it."""
    lines = [
        "#!/bin/sh",
        "# Written by piherd before a network change; run by a timer unless cancelled.",
        f"[ -e {shlex.quote(MARKER)} ] || exit 0",
        *restore_lines(old),
        f"rm -f {shlex.quote(MARKER)}",
        _reactivate_old(stack, interface),
        "",
    ]
    return "\n".join(lines)


def arm_rollback_command(after: float) -> list[str]:
    """A transient timer that runs the rollback script `after` seconds from now."""
    return debian.run_later(ROLLBACK_UNIT, after, ROLLBACK_SCRIPT)


def activate_unit_command(activate: str) -> list[str]:
    """Run the activation shell text as a transient unit: it survives our connection dropping."""
    return debian.run_detached(APPLY_UNIT, activate)


async def move_network(
    pool: Pool,
    node_name: str,
    static: str,
    stack: str,
    interface: str,
    change: Change,
    facts: NodeFacts,
    *,
    network_timeout: float,
    rollback_after: float,
) -> None:
    """Write new network config with a rollback armed, reconnect at `static`, confirm.

    ApplyError when the node does not answer at `static` within `network_timeout`; it then
    restores its previous config by itself after `rollback_after` seconds.
    """
    t = await pool.get(node_name)
    old: dict[str, OldFile] = {}
    for wanted in change.files:
        now = facts.file(wanted.path)
        content = await t.read_file(wanted.path, sudo=True) if now.exists else None
        old[wanted.path] = OldFile(
            wanted.path, content, now.mode or 0o600, now.owner or "root", now.group or "root"
        )
    script = rollback_script(stack, interface, old)
    # A previous move's timer and units, if any, must not fire or block the unit names.
    stale = debian.systemctl_stop(f"{ROLLBACK_UNIT}.timer", ROLLBACK_UNIT, APPLY_UNIT)
    await t.run(stale, sudo=True, timeout=60)
    await t.run(debian.systemctl_reset_failed(ROLLBACK_UNIT, APPLY_UNIT), sudo=True, timeout=60)
    await run_checked(t, debian.mkdir_parents(STATE_DIR))
    await t.write_file(ROLLBACK_SCRIPT, script.encode(), mode=0o700)
    await t.write_file(MARKER, b"", mode=0o600)
    await run_checked(t, arm_rollback_command(rollback_after))
    for wanted in change.files:
        await write_desired_file(t, wanted)
    ids = tuple(
        connection_id(f.path, f.content) for f in change.files if f.path.endswith(".nmconnection")
    )
    await run_checked(t, activate_unit_command(activate_command(stack, interface, ids)))
    await pool.forget(node_name)
    await _confirm_at(pool, node_name, static, network_timeout, rollback_after)


async def _confirm_at(
    pool: Pool, node_name: str, static: str, network_timeout: float, rollback_after: float
) -> None:
    """Reconnect until the node answers at `static` with it configured, then cancel the rollback."""
    deadline = time.monotonic() + network_timeout
    last = "no answer"
    while time.monotonic() < deadline:
        await asyncio.sleep(RECONNECT_POLL)
        try:
            t = await pool.get(node_name)
            out = await run_checked(t, ["ip", "-4", "-o", "addr", "show"], timeout=15)
        except (TransportError, ApplyError) as exc:
            last = str(exc)
            await pool.forget(node_name)
            continue
        if f" {static}/" in out and getattr(t, "address", static) == static:
            await run_checked(t, debian.remove_file(MARKER))
            await t.run(debian.systemctl_stop(f"{ROLLBACK_UNIT}.timer"), sudo=True, timeout=60)
            return
        last = f"answers at {getattr(t, 'address', '?')} but {static} is not configured yet"
        await pool.forget(node_name)
    raise ApplyError(
        f"not reachable at {static} within {network_timeout:g}s ({last}); "
        f"the node restores its previous network config after {rollback_after:g}s"
    )
