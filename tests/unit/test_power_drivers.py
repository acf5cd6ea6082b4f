"""What each power driver sends: argv, snmp.conf, HTTP requests, magic packets, templates.

The ipmi, poe-snmp and sim drivers also run against real daemons in
tests/integration/test_power_sim.py; clusterhat and turingpi need their hardware, so their
request building is pinned here (turingpi also against a local HTTP server speaking
the BMC's API).
"""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest

from piherd.power.base import DriverContext, PowerError
from piherd.power.clusterhat import parse_status as hat_status
from piherd.power.clusterhat import ssh_argv
from piherd.power.command import CommandDriver, command_argv
from piherd.power.ipmi import ipmitool_argv
from piherd.power.ipmi import parse_status as ipmi_status
from piherd.power.poe_snmp import snmp_argv, snmp_conf
from piherd.power.settings import Controller, Target
from piherd.power.turingpi import TuringPiDriver, api_request, parse_power, power_request
from piherd.power.wake import magic_packet


def secrets(tmp_path: Path, name: str, text: str, mode: int = 0o600) -> DriverContext:
    path = tmp_path / "power" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return DriverContext(secrets_dir=tmp_path, timeout=5.0)


def target(controller: Controller, **kw: object) -> Target:
    values: dict[str, object] = {"node": "node02", "address": "10.0.0.12", "host": "bmc02"}
    values.update(kw)
    return Target(controller=controller, **values)  # type: ignore[arg-type]


def test_ipmitool_reads_the_password_from_the_secret_file_not_argv(tmp_path: Path) -> None:
    ctx = secrets(tmp_path, "bmc", "hunter2\n", mode=0o644)
    c = Controller("node02", "ipmi", host="bmc02", port=6230, user="admin", secret="bmc")
    argv = ipmitool_argv(target(c), ctx, "chassis", "power", "on")
    assert argv == [
        "ipmitool", "-I", "lanplus", "-H", "bmc02", "-C", "3", "-p", "6230", "-U", "admin",
        "-f", str(tmp_path / "power" / "bmc"), "chassis", "power", "on",
    ]  # fmt: skip
    assert "hunter2" not in " ".join(argv)
    assert (tmp_path / "power" / "bmc").stat().st_mode & 0o777 == 0o600  # tightened


def test_ipmi_status_parsing() -> None:
    assert ipmi_status("Chassis Power is on\n") == "on"
    assert ipmi_status("Chassis Power is off\n") == "off"
    assert ipmi_status("garbage") == "unknown"


def test_missing_secret_names_where_to_put_it(tmp_path: Path) -> None:
    ctx = DriverContext(secrets_dir=tmp_path)
    with pytest.raises(PowerError, match=r"power/bmc \(mode 0600\)"):
        ctx.secret_path("bmc")


def test_snmp_v2c_and_v3_credentials_go_to_a_config_file() -> None:
    v2 = Controller("node02", "poe-snmp", host="sw", ports="3", secret="poe", group=1)
    t = target(v2, host="sw", index=3)
    assert snmp_conf(t, ["c0mm"]) == "defVersion 2c\ndefCommunity c0mm\n"
    argv = snmp_argv("snmpset", t, "i", "2")
    assert argv[-3:] == ["1.3.6.1.2.1.105.1.1.1.3.1.3", "i", "2"]
    assert "udp:sw:161" in argv and "c0mm" not in argv
    v3 = Controller("node02", "poe-snmp", host="sw", ports="3", secret="p", version="3",
                    user="ops", auth="SHA-256", privacy="AES")  # fmt: skip
    conf = snmp_conf(target(v3, host="sw", index=3), ["authpw", "privpw"])
    assert "defSecurityName ops" in conf and "defAuthType SHA-256" in conf
    assert "defPrivPassphrase privpw" in conf and "defSecurityLevel authPriv" in conf
    assert "authNoPriv" in snmp_conf(target(v3, index=3), ["authpw"])


def test_a_secret_that_would_change_snmp_conf_lines_is_refused(tmp_path: Path) -> None:
    ctx = secrets(tmp_path, "poe", "two words\n")
    with pytest.raises(PowerError, match="one word per line"):
        ctx.secret_words("poe")


def test_clusterhat_runs_clusterctrl_over_checked_ssh() -> None:
    c = Controller("p[1-4]", "clusterhat", host="controller", user="pi", ports="1-4")
    ctx = DriverContext(secrets_dir=Path("/nonexistent"), ssh_config=Path("/c/ssh_config"))
    argv = ssh_argv(target(c, host="controller", index=2), ctx, "clusterctrl", "on", "p2")
    assert argv[:3] == ["ssh", "-F", "/c/ssh_config"]
    assert "StrictHostKeyChecking=yes" in argv
    assert argv[-3:] == ["pi@controller", "--", "clusterctrl on p2"]
    assert hat_status("ctrl_bus:20:20\np1:1\np2:0\n", 2) == "off"
    assert hat_status("p1:1\np2:0\n", 1) == "on"


def test_turingpi_requests_follow_the_bmc_api(tmp_path: Path) -> None:
    ctx = secrets(tmp_path, "tpi", "s3cret\n")
    c = Controller("node[1-4]", "turingpi", host="turingpi.local", user="root", secret="tpi",
                   ports="1-4")  # fmt: skip
    on = power_request(target(c, host="turingpi.local", index=3), ctx, True)
    assert on.url == "https://turingpi.local/api/bmc?opt=set&type=power&node3=1"
    assert on.headers["Authorization"] == "Basic cm9vdDpzM2NyZXQ="  # root:s3cret
    assert "s3cret" not in repr(on) and "cm9vdDpzM2NyZXQ" not in repr(on)
    get = api_request(target(c, host="turingpi.local"), None, opt="get", type="power")
    assert get.url.endswith("/api/bmc?opt=get&type=power") and "Authorization" not in get.headers
    body = {"response": [{"result": [{"node1": 1, "node2": 0, "node3": 1, "node4": 0}]}]}
    assert [parse_power(body, i) for i in (1, 2, 3)] == ["on", "off", "on"]


class _Bmc(http.server.BaseHTTPRequestHandler):
    """The BMC API's power calls, enough to check what the driver sends."""

    state: ClassVar[dict[str, int]] = {"node1": 0, "node2": 0}

    def do_GET(self) -> None:
        query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
        if query.pop("opt", "") == "set" and query.pop("type", "") == "power":
            self.state.update({k: int(v) for k, v in query.items()})
            body: object = {"response": [{"result": "ok"}]}
        else:
            body = {"response": [{"result": [dict(self.state)]}]}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        del args


@pytest.fixture
def bmc() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Bmc)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_turingpi_driver_switches_a_slot_over_http(bmc: int, tmp_path: Path) -> None:
    c = Controller("node2", "turingpi", host="127.0.0.1", port=bmc, ports="2", https=False)
    t = target(c, host="127.0.0.1", index=2)
    ctx = DriverContext(secrets_dir=tmp_path)
    driver = TuringPiDriver()
    assert asyncio.run(driver.status(t, ctx)) == "off"
    asyncio.run(driver.on(t, ctx))
    assert _Bmc.state["node2"] == 1
    assert asyncio.run(driver.status(t, ctx)) == "on"


def test_command_template_values_are_single_words_never_a_shell() -> None:
    c = Controller("node02", "command", on="relayctl --port {name} --mac={mac}", off="x")
    hostile = target(c, node="node02", mac="aa:bb:cc:dd:ee:ff; rm -rf /")
    assert command_argv(c.on, hostile) == [
        "relayctl", "--port", "node02", "--mac=aa:bb:cc:dd:ee:ff; rm -rf /",
    ]  # fmt: skip


def test_command_driver_runs_and_reads_status(tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    c = Controller(
        "node02", "command",
        on=f"touch {flag}", off=f"rm -f {flag}",
        status=f"sh -c 'test -e {flag} && echo on || echo off'",
    )  # fmt: skip
    t, ctx, driver = target(c), DriverContext(secrets_dir=tmp_path), CommandDriver()
    asyncio.run(driver.on(t, ctx))
    assert asyncio.run(driver.status(t, ctx)) == "on"
    asyncio.run(driver.off(t, ctx))
    assert asyncio.run(driver.status(t, ctx)) == "off"


def test_wake_on_lan_magic_packet() -> None:
    packet = magic_packet("dc:a6:32:01:02:03")
    assert packet[:6] == b"\xff" * 6 and packet[6:] == bytes.fromhex("dca632010203") * 16
    with pytest.raises(PowerError):
        magic_packet("dc:a6:32")
