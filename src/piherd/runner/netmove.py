"""Scripts for moving a node to its new network config without losing it (like `netplan try`).

Pure: builds the activation command and a rollback script; runner/apply.py runs them.
The rollback is armed as a systemd timer on the node *before* the new config is activated;
it restores the previous files and re-activates them unless the marker file is removed
(which piherd does only after reconnecting at the static address).
"""

from __future__ import annotations

import base64
import shlex
from collections.abc import Mapping
from dataclasses import dataclass

STATE_DIR = "/var/lib/piherd"
MARKER = f"{STATE_DIR}/net-pending"
ROLLBACK_SCRIPT = f"{STATE_DIR}/net-rollback.sh"
APPLY_UNIT = "piherd-net-apply"
ROLLBACK_UNIT = "piherd-net-rollback"


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


def rollback_script(stack: str, interface: str, old: Mapping[str, OldFile]) -> str:
    """A sh script: if the marker is still there, restore `old` and re-activate it."""
    lines = [
        "#!/bin/sh",
        "# Written by piherd before a network change; run by a timer unless cancelled.",
        f"[ -e {shlex.quote(MARKER)} ] || exit 0",
    ]
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
    lines += [f"rm -f {shlex.quote(MARKER)}", _reactivate_old(stack, interface), ""]
    return "\n".join(lines)
