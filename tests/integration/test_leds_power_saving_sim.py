"""LEDs that follow Slurm, `piherd identify`, and Slurm power saving, on a sim cluster
brought up by `piherd up` ("pwr2": node01 and two workers running slurmd).

node02 shows the LED states (it has no power controller, so Slurm never suspends it);
node03 sits behind a PoE switch: net-snmp's snmpd on the sim's bridge address serving
RFC 3621 pethPsePortAdminEnable (power_relay.py switches the sim node). Slurm's
SuspendProgram / ResumeProgram on the head run the piherd that `up` installed there,
which switches node03 through that switch.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
import tomlkit
from test_power_sim import free_udp_port, piherd, start_snmpd, stop, write_secret

from piherd.sim.virtual_cluster import VirtualCluster

pytestmark = [pytest.mark.sim, pytest.mark.root]

NAME = "pwr2"
COMMUNITY = "poe-c0mmunity"
SUSPEND_S = 30


def head(path: Path, *argv: str, check: bool = True) -> str:
    """argv on the head as root, through `piherd run` (the real path); its stdout."""
    return on_node(path, "node01", *argv, check=check)


def on_node(path: Path, node: str, *argv: str, check: bool = True) -> str:
    """argv on `node` as root, through `piherd run`; its stdout (its error, unchecked)."""
    result = subprocess.run(
        [piherd(), "run", "-f", str(path), "--json", "--sudo", node, "--", *argv],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert lines, f"piherd run printed nothing: {result.stderr}"
    if check:
        assert lines[0]["rc"] == 0 and not lines[0]["error"], f"{argv}: {lines[0]}"
    return str(lines[0]["stdout"] or lines[0]["error"] or "")


def slurm_state(path: Path, node: str) -> str:
    out = head(path, "scontrol", "show", "node", "-o", node)
    return next(w for w in out.split() if w.startswith("State="))[len("State=") :]


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout:.0f} s: {what}"
        time.sleep(0.5)


def leds(vc: VirtualCluster, node: str) -> tuple[str, str]:
    """(ACT, PWR) brightness as the node's agent wrote them (the board LED files)."""
    base = vc.state.node_dir(node) / "pi" / "class" / "leds"
    act, pwr = ((base / led / "brightness").read_text().strip() for led in ("ACT", "PWR"))
    return act, pwr


def seen(vc: VirtualCluster, node: str, seconds: float = 2.5) -> tuple[set[str], set[str]]:
    """Every value each LED showed while sampling for `seconds` (two values: blinking)."""
    act, pwr = set(), set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        a, p = leds(vc, node)
        act.add(a)
        pwr.add(p)
        time.sleep(0.05)
    return act, pwr


def showing(vc: VirtualCluster, node: str, act: set[str], pwr: set[str]) -> Callable[[], bool]:
    return lambda: seen(vc, node) == (act, pwr)


ON, OFF, BLINK = {"255"}, {"0"}, {"0", "255"}


def diagnosis(vc: VirtualCluster, path: Path) -> str:
    """What Slurm and the network looked like, for a failure message."""
    parts = []
    for title, argv in (
        ("scontrol show node", ["scontrol", "show", "node", "-o"]),
        ("slurmctld.log", ["tail", "-n", "60", "/var/log/slurm/slurmctld.log"]),
        ("head addresses", ["ip", "-br", "addr"]),
        ("head neighbours", ["ip", "neigh"]),
    ):
        parts.append(f"== {title}\n{head(path, *argv, check=False)}")
    for node in ("node02", "node03"):
        script = "ip -br addr; tail -n 30 /var/log/slurm/slurmd.log"
        parts.append(f"== {node}\n{on_node(path, node, 'sh', '-c', script, check=False)}")
    return "\n".join(parts)


@pytest.fixture(scope="module")
def cluster(
    sim_cm: Callable[..., AbstractContextManager[VirtualCluster]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[VirtualCluster, Path]]:
    directory = tmp_path_factory.mktemp("pwr2")
    with sim_cm(NAME, 2) as vc:
        doc = tomlkit.parse(vc.cluster_file.read_text())
        bridge = str(doc["network"]["gateway"])
        port = free_udp_port()
        subnet = str(doc["network"]["subnet"])
        switch = start_snmpd(directory / "switch", port, NAME, "node03", bridge, COMMUNITY, subnet)
        try:
            yield vc, configure(doc, directory, bridge, port)
        finally:
            stop(switch)


def configure(doc: tomlkit.TOMLDocument, directory: Path, bridge: str, port: int) -> Path:
    """The sim's cluster.toml with LEDs and power saving on node03, brought up."""
    doc["cluster"]["secrets_dir"] = str(directory / "secrets")
    services = doc["services"]
    # A sim node does not mount sshfs again after a power cut (containers have no autofs):
    # shared storage is tested elsewhere (test_up.py), and would keep node03 unhealthy.
    services["storage"]["enabled"] = False
    services["leds"] = {"enabled": True}
    controller = {"nodes": "node03", "driver": "poe-snmp", "host": bridge, "port": port}
    controller.update({"ports": "1", "secret": "poe"})
    services["power"] = {
        "enabled": True,
        "slurm_suspend": True,
        "suspend_time_s": SUSPEND_S,
        "resume_timeout_s": 300,
        "command_timeout_s": 10,
        "controllers": [controller],
    }
    write_secret(directory / "secrets", "poe", COMMUNITY + "\n")
    path = directory / "cluster.toml"
    path.write_text(tomlkit.dumps(doc))
    result = subprocess.run(
        [piherd(), "up", "-f", str(path)], capture_output=True, text=True, timeout=1800
    )
    assert result.returncode == 0, f"piherd up failed:\n{result.stdout[-3000:]}{result.stderr}"
    return path


def test_led_files_follow_idle_allocated_drained_down(
    cluster: tuple[VirtualCluster, Path],
) -> None:
    vc, path = cluster
    try:
        wait_for(lambda: slurm_state(path, "node02") == "IDLE", 120, "node02 idle in Slurm")
        wait_for(showing(vc, "node02", ON, OFF), 30, "idle: green (ACT) on, red (PWR) off")

        head(path, "sbatch", "-w", "node02", "-J", "leds", "--wrap", "sleep 300")
        busy = ("ALLOC", "MIXED")  # MIXED: the job holds some of node02's CPUs
        wait_for(lambda: slurm_state(path, "node02").startswith(busy), 60, "node02 allocated")
        wait_for(showing(vc, "node02", BLINK, OFF), 30, "allocated: green blinks")

        head(path, "scancel", "-n", "leds")
        head(path, "scontrol", "update", "NodeName=node02", "State=DRAIN", "Reason=led-test")
        wait_for(lambda: "DRAIN" in slurm_state(path, "node02"), 60, "node02 drained")
        wait_for(showing(vc, "node02", ON, BLINK), 30, "draining: green on, red blinks")

        head(path, "scontrol", "update", "NodeName=node02", "State=DOWN", "Reason=led-test")
        wait_for(showing(vc, "node02", OFF, ON), 30, "down: red on, green off")
    finally:
        head(path, "scontrol", "update", "NodeName=node02", "State=RESUME", check=False)


def test_identify_blinks_until_stopped(cluster: tuple[VirtualCluster, Path]) -> None:
    vc, path = cluster
    wait_for(lambda: slurm_state(path, "node02") == "IDLE", 120, "node02 idle in Slurm")
    identify = subprocess.Popen(
        [piherd(), "identify", "-f", str(path), "node02"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:

        def blinking() -> bool:
            if identify.poll() is not None:  # it gave up: say why
                _, err = identify.communicate()
                pytest.fail(f"piherd identify exited {identify.returncode}: {err.decode()}")
            return showing(vc, "node02", BLINK, BLINK)()

        wait_for(blinking, 30, "identify: both LEDs blink")
    finally:
        identify.send_signal(signal.SIGINT)
        try:
            identify.wait(60)  # it removes the flag on the node first
        except subprocess.TimeoutExpired:  # never leave it blinking after the test
            identify.kill()
            identify.wait(10)
            raise
    assert identify.returncode == 130
    wait_for(showing(vc, "node02", ON, OFF), 30, "identify stopped: idle again")


def test_idle_node_is_powered_off_and_a_job_powers_it_on(
    cluster: tuple[VirtualCluster, Path],
) -> None:
    vc, path = cluster
    wait_for(lambda: not vc.powered("node03"), SUSPEND_S + 150, "Slurm powered idle node03 off")
    # POWERING_DOWN for SuspendTimeout, then POWERED_DOWN: either is Slurm's power saving.
    wait_for(lambda: "POWER" in slurm_state(path, "node03"), 60, "node03 powering down")

    out = head(path, "sbatch", "--parsable", "-w", "node03", "-J", "wake", "--wrap", "hostname")
    job = out.strip().split(";")[0]

    def finished() -> bool:
        info = head(path, "scontrol", "show", "job", "-o", job)
        return any(
            f"JobState={s}" in info
            for s in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL")
        )

    try:
        wait_for(finished, 400, f"job {job} on node03 finished")
    except AssertionError as error:
        raise AssertionError(f"{error}\n{diagnosis(vc, path)}") from None
    info = head(path, "scontrol", "show", "job", "-o", job)
    assert "JobState=COMPLETED" in info and "ExitCode=0:0" in info, info
    assert vc.powered("node03")
    log = head(path, "cat", "/var/log/slurm/piherd-power.log")
    entries = [json.loads(line) for line in log.splitlines()]
    assert [e["action"] for e in entries if e["node"] == "node03"][:2] == ["off", "on"]
    assert all(e["user"] == "slurm" and e["reason"].startswith("slurm") for e in entries)
    assert COMMUNITY not in log
