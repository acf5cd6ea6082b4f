"""From blank cards to a cluster, on the sim: image -> flash -> revive -> discover -> up -> MPI.

Blank nodes (`sim up --blank`) are stock Raspberry Pi OS Lite cards: host name
raspberrypi, no keys, no sshd, a DHCP lease. `piherd image` writes each node's card
(bookworm: firstrun.sh and cmdline.txt's `systemd.run=`), `sim flash` puts it in the
powered-off node, and `sim revive` boots it: the first boot runs firstrun.sh, reboots,
and the node comes up at its static address with the host keys recorded at image time.
Then `discover --write` finds every node by MAC, `up` needs no password, and Slurm runs
an MPI job. One cluster (head + 3) serves the module; tests run in order.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
from test_up import MPI_JOB, on, piherd_up, wait_idle

from piherd.model import Cluster
from piherd.services import load
from piherd.services.storage import StorageSettings
from piherd.sim.virtual_cluster import VirtualCluster
from piherd.transport.banner import ssh_answers

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from rpi_image import build_image

pytestmark = pytest.mark.sim

NAME = "tblk"
PIHERD = str(Path(sys.executable).parent / "piherd")


@pytest.fixture(scope="module")
def sim(sim_cm: Callable[..., AbstractContextManager[VirtualCluster]]) -> Iterator[VirtualCluster]:
    with sim_cm(NAME, 3, blank=True) as vc:
        yield vc


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch directory holding a Raspberry Pi OS-shaped bookworm image."""
    path = tmp_path_factory.mktemp("blank")
    build_image(path / "raspios.img", "bookworm")
    return path


def piherd(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([PIHERD, *args], capture_output=True, text=True, timeout=timeout)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def sim_cli(vc: VirtualCluster, verb: str, *args: str) -> None:
    proc = piherd("sim", verb, "--name", vc.name, *args)
    assert proc.returncode == 0, f"sim {verb} {args}: {proc.stderr}"


def inside(vc: VirtualCluster, node: str, command: str) -> str:
    """Run `command` in the node as root without SSH (what a screen and keyboard give),
    once its boot has finished (systemd answers only once it has started its bus)."""
    deadline = time.monotonic() + 120
    while True:
        argv = [*vc.shell_argv(node), "-c", "systemctl is-system-running --wait"]
        state = subprocess.run(argv, capture_output=True, text=True, timeout=120).stdout
        if state.strip() in ("running", "degraded") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    proc = subprocess.run(
        [*vc.shell_argv(node), "-c", command], capture_output=True, text=True, timeout=120
    )
    return proc.stdout + proc.stderr


def flash_and_boot(vc: VirtualCluster, node: str, card: Path) -> None:
    sim_cli(vc, "kill", node)
    sim_cli(vc, "flash", node, str(card))
    sim_cli(vc, "revive", node)


def discover_rows(path: Path, *args: str) -> list[dict[str, Any]]:
    proc = piherd("discover", "-f", str(path), "--json", *args)
    assert proc.returncode == 0, proc.stderr
    rows: list[dict[str, Any]] = json.loads(proc.stdout.splitlines()[-1])["rows"]
    return rows


def macs(vc: VirtualCluster) -> dict[str, str]:
    return {node: vc.state.names.mac(i) for i, node in enumerate(vc.node_names())}


def test_blank_nodes_are_stock_cards(sim: VirtualCluster) -> None:
    """raspberrypi, sshd off, a DHCP lease, a boot partition; the cluster file has MACs."""
    for index, node in enumerate(sim.node_names()):
        lease = str(sim.state.names.dhcp_address(index))
        said = inside(sim, node, "hostname; systemctl is-enabled ssh; ls /boot/firmware")
        assert said.split() == ["raspberrypi", "disabled", "cmdline.txt", "config.txt"], said
        assert not asyncio.run(ssh_answers(lease, timeout=2.0))
    cluster = load(sim.cluster_file)
    assert {n.name: n.mac for n in cluster.nodes} == macs(sim)
    assert sim.files.known_hosts.read_text() == ""


def test_image_flash_revive_discover_up_then_mpi(sim: VirtualCluster, work: Path) -> None:
    blank_to_mpi(sim, work / "raspios.img", work / "cards")


def blank_to_mpi(sim: VirtualCluster, image: Path, cards_dir: Path) -> None:
    """image @all -> flash -> revive -> discover --write -> up (no password, no key
    accepted anew) -> `piherd ssh` and an MPI job through Slurm."""
    path = sim.cluster_file
    source, cards = str(image), str(cards_dir)
    made = piherd("image", "-f", str(path), "@all", "--from", source, "--out", cards,
                  "--timezone", "Europe/London", "--json")  # fmt: skip
    assert made.returncode == 0, made.stderr
    recorded = sim.files.known_hosts.read_text()
    assert len(recorded.splitlines()) == 2 * 4  # ed25519 + ecdsa per node
    for node in sim.node_names():
        flash_and_boot(sim, node, cards_dir / f"{node}.img")
    cluster = load(path)
    for node in cluster.nodes:  # straight onto its static address, its own name
        said = inside(sim, node.name, "hostname; cat /etc/timezone")
        assert said.split() == [node.name, "Europe/London"]

    rows = discover_rows(path, "--write")
    assert {r["node"]: (r["state"], r["mac"], r["address"]) for r in rows} == {
        n.name: ("known", macs(sim)[n.name], str(n.address)) for n in cluster.nodes
    }

    rc, events = piherd_up(path)  # no --ask-pass: the admin key came with the image
    failed = {n: v["reason"] for n, v in events[-1]["nodes"].items() if v["status"] == "failed"}
    assert rc == 0 and failed == {}, failed
    # Every connection was verified with the keys recorded at image time: had any node
    # presented another key, accept-new would have added a line (or up refused it).
    assert sim.files.known_hosts.read_text() == recorded

    cluster = load(path)
    # The user's own ssh, through piherd's config: keys checked where image recorded them.
    said = piherd("ssh", "-f", str(path), "node02", "--", "hostname")
    assert said.returncode == 0 and said.stdout.split() == ["node02"], said.stderr
    wait_idle(cluster, 3)  # the workers; the head runs slurmctld
    shared = cluster.services.get(StorageSettings).mount
    head = cluster.head.name
    on(cluster, [head], ["tee", f"{shared}/mpi_job.py"], input=MPI_JOB.encode())
    srun = f"cd {shared} && srun -N3 --mpi=pmix python3 mpi_job.py"
    job = on(cluster, [head], ["sh", "-c", srun])
    assert job[head].ok, job[head].stderr
    hosts = {line.split("host=")[1].split()[0] for line in job[head].stdout.splitlines()
             if line.startswith("rank=")}  # fmt: skip
    assert hosts == {n.name for n in cluster.compute_nodes}


def test_a_card_with_other_host_keys_is_refused(sim: VirtualCluster, work: Path) -> None:
    """node04 is imaged again with new host keys, but the old card goes in: `up` refuses
    it at the first contact and leaves the other nodes alone; the new card is accepted."""
    path = sim.cluster_file
    cluster: Cluster = load(path)
    shutil.copy(work / "cards" / "node04.img", work / "old-node04.img")
    shutil.rmtree(Path(cluster.secrets_dir) / "host-keys" / "node04")
    made = piherd("image", "-f", str(path), "node04", "--from", str(work / "raspios.img"),
                  "--out", str(work / "cards2"), "--timezone", "Europe/London")  # fmt: skip
    assert made.returncode == 0, made.stderr

    flash_and_boot(sim, "node04", work / "old-node04.img")
    rc, events = piherd_up(path)
    nodes = events[-1]["nodes"]
    assert rc != 0 and nodes["node04"]["status"] == "failed"
    assert "host key changed" in nodes["node04"]["reason"], nodes["node04"]
    assert {n: v["status"] for n, v in nodes.items() if n != "node04"} == dict.fromkeys(
        ["node01", "node02", "node03"], "unchanged"
    )

    flash_and_boot(sim, "node04", work / "cards2" / "node04.img")
    rc, events = piherd_up(path)
    failed = {n: v["reason"] for n, v in events[-1]["nodes"].items() if v["status"] == "failed"}
    assert rc == 0 and failed == {}, failed


def test_generic_cards_are_named_in_power_on_order_and_given_their_own_keys(
    sim: VirtualCluster, work: Path
) -> None:
    """Two Pis get the same generic card; node03 and node04 have no MAC in the file.
    The Pi in node04's slot is powered on first, so it becomes node03: names follow the
    order the Pis come up. Each proves it is one of ours with the first-boot key and gets
    its own host keys; `up` then verifies each by its own key and names the host."""
    path = work / "generic.toml"
    text = sim.cluster_file.read_text()
    for node in ("node03", "node04"):
        text = text.replace(f'name = "{node}"\nmac = "{macs(sim)[node]}"\n', f'name = "{node}"\n')
    path.write_text(text)
    cluster = load(path)
    assert cluster.node("node03").mac is None and cluster.node("node04").mac is None
    made = piherd("image", "-f", str(path), "--generic", "--from", str(work / "raspios.img"),
                  "--out", str(work / "generic"))  # fmt: skip
    assert made.returncode == 0, made.stderr
    card = work / "generic" / "generic.img"
    for slot in ("node04", "node03"):
        sim_cli(sim, "kill", slot)
        sim_cli(sim, "flash", slot, str(card))

    for slot, name in (("node04", "node03"), ("node03", "node04")):
        sim_cli(sim, "revive", slot)
        proc = piherd("discover", "-f", str(path), "--json", "--assign", "node[03-04]", "--write")
        assert proc.returncode == 0, proc.stderr
        assert f"{name}: its own host keys installed" in proc.stderr, proc.stderr
        assert load(path).node(name).mac == macs(sim)[slot]

    recorded = sim.files.known_hosts.read_text()
    rc, events = piherd_up(path)
    failed = {n: v["reason"] for n, v in events[-1]["nodes"].items() if v["status"] == "failed"}
    assert rc == 0 and failed == {}, failed
    assert sim.files.known_hosts.read_text() == recorded  # verified, nothing accepted anew
    assert inside(sim, "node04", "hostname").split() == ["node03"]
    assert inside(sim, "node03", "hostname").split() == ["node04"]
