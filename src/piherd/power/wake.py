"""The `ssh` driver: soft power-off over SSH, power-on by a Wake-on-LAN magic packet.

Off is `systemctl --no-block poweroff` as root on the node (a clean shutdown; the board
stays powered, so a Pi needs its PSU cycled or a WoL-capable board to come back). On
sends the magic packet (6 x 0xff, then the node's MAC 16 times) as a UDP broadcast to
port 9 of the cluster's subnet (or `broadcast`); boards without Wake-on-LAN (Raspberry
Pis) ignore it. Status: "on" when the node's sshd answers, else "unknown".
"""

from __future__ import annotations

import socket

from piherd.power.base import Driver, DriverContext, PowerError, PowerState
from piherd.power.settings import Target
from piherd.transport.banner import ssh_answers

WOL_PORT = 9


def magic_packet(mac: str) -> bytes:
    """The Wake-on-LAN packet for `mac` (aa:bb:cc:dd:ee:ff)."""
    raw = bytes.fromhex(mac.replace(":", "").replace("-", ""))
    if len(raw) != 6:
        raise PowerError(f"{mac!r} is not a MAC address")
    return b"\xff" * 6 + raw * 16


def send_magic(mac: str, broadcast: str, port: int = WOL_PORT) -> None:
    """Broadcast the magic packet once."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.sendto(magic_packet(mac), (broadcast, port))


class SshWolDriver(Driver):
    """Shut down over SSH; wake by magic packet."""

    name = "ssh"

    async def on(self, target: Target, ctx: DriverContext) -> None:
        if not target.mac:
            raise PowerError(f"{target.node} has no mac in cluster.toml: Wake-on-LAN needs it")
        broadcast = target.controller.broadcast or ctx.broadcast
        try:
            send_magic(target.mac, broadcast, target.controller.port or WOL_PORT)
        except OSError as exc:
            raise PowerError(f"Wake-on-LAN to {broadcast}: {exc.strerror}") from None

    async def off(self, target: Target, ctx: DriverContext) -> None:
        if ctx.run_on_node is None:
            raise PowerError("the ssh driver needs SSH to the node")
        rc, _, err = await ctx.run_on_node(target.node, ["systemctl", "--no-block", "poweroff"])
        if rc is None:
            raise PowerError(f"{target.node} cannot be reached over SSH: {err}")
        if rc != 0:
            raise PowerError(
                f"systemctl poweroff on {target.node} exited {rc}: {err.strip()[:200]}"
            )

    async def status(self, target: Target, ctx: DriverContext) -> PowerState:
        return "on" if await ssh_answers(target.address, ctx.ssh_port) else "unknown"
