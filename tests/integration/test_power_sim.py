"""`piherd power` on a sim cluster through real controllers: the sim's own power lead, a
real IPMI BMC simulator (OpenIPMI's ipmi_sim) and a real SNMP agent (net-snmp's snmpd)
serving RFC 3621's pethPsePortAdminEnable.

One cluster ("pwr": node01 and four workers) for the module. ipmi_sim and snmpd run on
this machine on free ports, started and stopped by PID; both switch the sim nodes through
power_relay.py (the "power lead"). node02: ipmi; node03: poe-snmp v2c; node04: poe-snmp v3;
node05: the sim driver.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
import tomlkit

from piherd.sim.virtual_cluster import VirtualCluster

pytestmark = [pytest.mark.sim, pytest.mark.root]

NAME = "pwr"
WORKERS = 4
STAGGER_S = 3.0
RELAY = Path(__file__).with_name("power_relay.py")
IPMI_PASSWORD = "bmc-Pa55word"
COMMUNITY = "poe-c0mmunity"
V3_AUTH, V3_PRIV = "v3-auth-pass", "v3-priv-pass"


def piherd() -> str:
    return str(Path(sys.executable).with_name("piherd"))


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def relay_script(directory: Path, name: str, *args: str) -> Path:
    script = directory / name
    argv = " ".join([sys.executable, str(RELAY), *args])
    script.write_text(f'#!/bin/sh\nexec {argv} "$@"\n')
    script.chmod(0o755)
    return script


def start(argv: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM by PID, then SIGKILL; reaped."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def start_ipmi_sim(directory: Path, port: int) -> subprocess.Popen[bytes]:
    directory.mkdir()
    control = relay_script(directory, "chassis-control", "ipmi", NAME, "node02")
    (directory / "lan.conf").write_text(
        f'name "{NAME}-node02"\n'
        "set_working_mc 0x20\n"
        "  startlan 1\n"
        f"    addr 127.0.0.1 {port}\n"
        "    priv_limit admin\n"
        "    allowed_auths_admin md5\n"
        "    guid a123456789abcdefa123456789abcdef\n"
        "  endlan\n"
        f'  chassis_control "{control}"\n'
        f'  user 2 true "admin" "{IPMI_PASSWORD}" admin 10 md5\n'
    )
    (directory / "bmc.emu").write_text(
        "mc_setbmc 0x20\n"
        "mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\n"
        "mc_enable 0x20\n"
    )
    (directory / "state").mkdir()
    argv = ["ipmi_sim", "-n", "-c", str(directory / "lan.conf"), "-f", str(directory / "bmc.emu")]
    return start([*argv, "-s", str(directory / "state")], directory / "ipmi_sim.log")


def start_snmpd(
    directory: Path,
    port: int,
    sim: str = NAME,
    nodes: str = "node03,node04",
    address: str = "127.0.0.1",
    community: str = COMMUNITY,
    clients: str = "127.0.0.1",
) -> subprocess.Popen[bytes]:
    """snmpd at address:port; ports 1, 2, ... of group 1 power `nodes` of sim `sim`."""
    directory.mkdir()
    passer = relay_script(directory, "peth-pass", "snmp", sim, nodes)
    (directory / "snmpd.conf").write_text(
        f"agentAddress udp:{address}:{port}\n"
        f"rwcommunity {community} {clients} .1.3.6.1.2.1.105\n"
        f'createUser pwrv3 SHA "{V3_AUTH}" AES "{V3_PRIV}"\n'
        "rwuser pwrv3 priv .1.3.6.1.2.1.105\n"
        f"pass_persist .1.3.6.1.2.1.105.1.1.1 {passer}\n"
    )
    argv = ["snmpd", "-f", "-Lo", "-C", "-c", str(directory / "snmpd.conf")]
    env = {"SNMP_PERSISTENT_DIR": str(directory), "MIBS": ""}
    return start(argv, directory / "snmpd.log", env)


def write_secret(secrets: Path, name: str, text: str) -> None:
    path = secrets / "power" / name
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.write_text(text)
    path.chmod(0o600)


def power_cluster(vc: VirtualCluster, directory: Path, ipmi_port: int, snmp_port: int) -> Path:
    """The sim's cluster.toml with [services.power]: one controller kind per worker."""
    doc = tomlkit.parse(vc.cluster_file.read_text())
    doc["cluster"]["secrets_dir"] = str(directory / "secrets")
    power = tomlkit.table()
    power.update({"enabled": True, "stagger_s": STAGGER_S, "cycle_off_s": 1, "wait_timeout_s": 120})
    controllers = tomlkit.aot()
    for entry in (
        {"nodes": "node02", "driver": "ipmi", "host": "127.0.0.1", "port": ipmi_port,
         "user": "admin", "secret": "bmc"},
        {"nodes": "node03", "driver": "poe-snmp", "host": "127.0.0.1", "port": snmp_port,
         "ports": "1", "secret": "poe-v2c"},
        {"nodes": "node04", "driver": "poe-snmp", "host": "127.0.0.1", "port": snmp_port,
         "ports": "2", "version": "3", "user": "pwrv3", "secret": "poe-v3"},
        {"nodes": "node05", "driver": "sim", "sim": NAME},
    ):  # fmt: skip
        controllers.append(entry)
    power["controllers"] = controllers
    doc["services"]["power"] = power
    path = directory / "cluster.toml"
    path.write_text(tomlkit.dumps(doc))
    secrets = directory / "secrets"
    write_secret(secrets, "bmc", IPMI_PASSWORD + "\n")
    write_secret(secrets, "poe-v2c", COMMUNITY + "\n")
    write_secret(secrets, "poe-v3", f"{V3_AUTH}\n{V3_PRIV}\n")
    return path


@pytest.fixture(scope="module")
def powered(
    sim_cm: Callable[..., AbstractContextManager[VirtualCluster]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[VirtualCluster, Path, Path]]:
    for tool in ("ipmi_sim", "ipmitool", "snmpd", "snmpset"):
        assert shutil.which(tool), f"{tool} missing: install scripts/apt-packages.txt"
    directory = tmp_path_factory.mktemp("pwr")
    with sim_cm(NAME, WORKERS) as vc:
        ipmi_port, snmp_port = free_udp_port(), free_udp_port()
        daemons = []
        try:
            daemons.append(start_ipmi_sim(directory / "bmc", ipmi_port))
            daemons.append(start_snmpd(directory / "switch", snmp_port))
            path = power_cluster(vc, directory, ipmi_port, snmp_port)
            yield vc, path, directory / "power.log"
        finally:
            for daemon in daemons:
                stop(daemon)


def power(path: Path, log: Path, *args: str, check: bool = True) -> list[dict[str, Any]]:
    """`piherd power ... --json`; its outcome lines."""
    result = subprocess.run(
        [piherd(), "power", *args, "-f", str(path), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PIHERD_POWER_LOG": str(log)},
    )
    if check:
        assert result.returncode == 0, f"piherd power {args}: {result.stdout}{result.stderr}"
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def states(path: Path, log: Path, nodeset: str) -> dict[str, str]:
    return {o["node"]: o["state"] for o in power(path, log, "status", nodeset)}


@pytest.mark.parametrize("node", ["node02", "node03", "node04", "node05"])
def test_off_on_cycle_through_each_driver(
    powered: tuple[VirtualCluster, Path, Path], node: str
) -> None:
    vc, path, log = powered
    assert states(path, log, node) == {node: "on"}
    power(path, log, "off", node, "--reason", "test off")
    assert not vc.powered(node)  # the sim's own view: the container is gone
    assert states(path, log, node) == {node: "off"}

    outcomes = power(path, log, "on", node, "--wait", "--reason", "test on")
    assert [(o["action"], o["ok"]) for o in outcomes] == [("on", True), ("wait", True)]
    assert vc.powered(node)
    assert states(path, log, node) == {node: "on"}
    boot_id = ssh(vc, node, "cat", "/proc/sys/kernel/random/boot_id")

    outcomes = power(path, log, "cycle", node, "--wait", "--reason", "test cycle")
    assert [o["action"] for o in outcomes] == ["off", "on", "wait"]
    assert ssh(vc, node, "cat", "/proc/sys/kernel/random/boot_id") != boot_id  # a new boot


def ssh(vc: VirtualCluster, node: str, *argv: str) -> str:
    result = subprocess.run(
        ["ssh", "-F", str(vc.files.ssh_config), node, *argv],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_wait_returns_when_ssh_answers(powered: tuple[VirtualCluster, Path, Path]) -> None:
    vc, path, log = powered
    power(path, log, "off", "node05")
    outcomes = power(path, log, "on", "node05", "--wait")
    assert outcomes[-1]["action"] == "wait" and outcomes[-1]["state"] == "up"
    # SSH answers right after --wait returned, without any further waiting.
    assert ssh(vc, "node05", "hostname") == "node05"


def test_staggered_power_on_of_four_nodes_is_spaced_as_configured(
    powered: tuple[VirtualCluster, Path, Path],
) -> None:
    vc, path, log = powered
    power(path, log, "off", "node[02-05]", "--reason", "stagger test")
    assert not any(vc.powered(n) for n in ("node02", "node03", "node04", "node05"))
    outcomes = power(path, log, "on", "node[02-05]", "--wait", "--reason", "stagger test")
    ons = [o for o in outcomes if o["action"] == "on"]
    assert [o["node"] for o in ons] == ["node02", "node03", "node04", "node05"]
    assert all(o["ok"] for o in outcomes)
    # Spacing from the times recorded in the power log (when each command was sent).
    logged = [json.loads(line) for line in log.read_text().splitlines()]
    sent = [e["at"] for e in logged if e["action"] == "on" and e["reason"] == "stagger test"]
    gaps = [later - earlier for earlier, later in itertools.pairwise(sent)]
    assert len(gaps) == 3 and all(gap >= STAGGER_S for gap in gaps), gaps


def test_every_action_is_logged_with_who_and_why_and_no_secret(
    powered: tuple[VirtualCluster, Path, Path],
) -> None:
    _, path, log = powered
    power(path, log, "off", "node03", "--reason", "swap the SD card")
    power(path, log, "on", "node03", "--reason", "card swapped")
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    last = entries[-2:]
    assert [(e["action"], e["node"], e["reason"]) for e in last] == [
        ("off", "node03", "swap the SD card"),
        ("on", "node03", "card swapped"),
    ]
    assert all(e["user"] == "root" and e["driver"] == "poe-snmp" and e["ok"] for e in last)
    assert os.stat(log).st_mode & 0o777 == 0o600
    text = log.read_text()
    for secret in (IPMI_PASSWORD, COMMUNITY, V3_AUTH, V3_PRIV):
        assert secret not in text


def test_wrong_community_fails_and_says_so(
    powered: tuple[VirtualCluster, Path, Path], tmp_path: Path
) -> None:
    vc, path, log = powered
    doc = tomlkit.parse(path.read_text())
    doc["cluster"]["secrets_dir"] = str(tmp_path / "secrets")
    write_secret(tmp_path / "secrets", "poe-v2c", "not-the-community\n")
    wrong = tmp_path / "cluster.toml"
    wrong.write_text(tomlkit.dumps(doc))
    outcomes = power(wrong, log, "off", "node03", check=False)
    assert outcomes and not outcomes[0]["ok"]
    assert "not-the-community" not in json.dumps(outcomes)
    assert vc.powered("node03")  # nothing was switched
