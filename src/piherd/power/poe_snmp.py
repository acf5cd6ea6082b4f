"""The `poe-snmp` driver: a PoE switch port, by RFC 3621 pethPsePortAdminEnable over SNMP.

pethPsePortAdminEnable.GROUP.PORT (1.3.6.1.2.1.105.1.1.1.3.G.P) is a TruthValue:
true(1) powers the port, false(2) cuts it. The community (v2c) or the v3 passphrases
never reach a command line: net-snmp reads them from an snmp.conf written for the one
call into a private temporary directory (SNMPCONFPATH), removed right after.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from piherd.power.base import Driver, DriverContext, PowerError, PowerState, first_line, run_argv
from piherd.power.settings import Target

ADMIN_ENABLE = "1.3.6.1.2.1.105.1.1.1.3"
TRUE, FALSE = "1", "2"
DEFAULT_PORT = 161


def port_oid(target: Target) -> str:
    """pethPsePortAdminEnable of the node's port."""
    return f"{ADMIN_ENABLE}.{target.controller.group}.{target.index}"


def snmp_conf(target: Target, secret: list[str]) -> str:
    """The snmp.conf lines of the call: version and credentials (one word each, checked)."""
    c = target.controller
    if c.version == "2c":
        return f"defVersion 2c\ndefCommunity {secret[0]}\n"
    lines = ["defVersion 3", f"defSecurityName {c.user}", f"defAuthType {c.auth}"]
    lines.append(f"defAuthPassphrase {secret[0]}")
    if len(secret) > 1:
        lines += [f"defPrivType {c.privacy}", f"defPrivPassphrase {secret[1]}"]
        lines.append("defSecurityLevel authPriv")
    else:
        lines.append("defSecurityLevel authNoPriv")
    return "\n".join(lines) + "\n"


def snmp_argv(tool: str, target: Target, *value: str) -> list[str]:
    """`snmpget|snmpset -On -Oqv -r 1 -t 5 udp:HOST:PORT OID [i VALUE]`: no secret in it."""
    port = target.controller.port or DEFAULT_PORT
    argv = [
        tool,
        "-On",
        "-Oqv",
        "-r",
        "1",
        "-t",
        "2",
        f"udp:{target.host}:{port}",
        port_oid(target),
    ]
    return argv + list(value)


def parse_state(stdout: str) -> PowerState:
    value = stdout.strip().lower()
    if value in ("1", "true", "true(1)"):
        return "on"
    if value in ("2", "false", "false(2)"):
        return "off"
    return "unknown"


def _noise_free(stderr: str) -> str:
    """stderr without net-snmp's notes about the private directory it was given."""
    return "\n".join(
        line for line in stderr.splitlines() if not line.startswith("Created directory")
    )


class PoeSnmpDriver(Driver):
    """Enable / disable a switch port's PoE."""

    name = "poe-snmp"

    async def _snmp(self, tool: str, target: Target, ctx: DriverContext, *value: str) -> str:
        secret = ctx.secret_words(target.controller.secret)
        with tempfile.TemporaryDirectory(prefix="piherd-snmp-") as private:
            conf = Path(private) / "snmp.conf"
            fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(snmp_conf(target, secret))
            env = {"SNMPCONFPATH": private, "SNMP_PERSISTENT_DIR": private, "MIBS": ""}
            what = f"{tool} {target.host} port {target.index}"
            rc, out, err = await run_argv(
                snmp_argv(tool, target, *value), timeout=ctx.timeout, env=env, what=what
            )
        if rc != 0:
            raise PowerError(f"{what}: {first_line(_noise_free(err)) or first_line(out) or rc}")
        return out

    async def on(self, target: Target, ctx: DriverContext) -> None:
        await self._snmp("snmpset", target, ctx, "i", TRUE)

    async def off(self, target: Target, ctx: DriverContext) -> None:
        await self._snmp("snmpset", target, ctx, "i", FALSE)

    async def status(self, target: Target, ctx: DriverContext) -> PowerState:
        return parse_state(await self._snmp("snmpget", target, ctx))
