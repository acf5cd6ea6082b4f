"""`piherd init`: the file it writes is commented, valid and holds the plan asked for."""

from __future__ import annotations

import os
import pty
import stat
import subprocess
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from click.testing import CliRunner

from piherd.cli.main import cli
from piherd.services import load
from piherd.services.dnsmasq import DnsmasqSettings

SEEDS = {
    # cluster01..04 on 192.168.1.128-131, router pool .9-.108 (seed 000)
    "cluster01": (
        [
            "--nodes", "4", "--prefix", "cluster", "--width", "2",
            "--subnet", "192.168.1.0/24", "--first", "192.168.1.128",
            "--router-pool", "192.168.1.9-192.168.1.108",
        ],
        [f"cluster0{i}" for i in range(1, 5)],
        "192.168.1.128",
    ),
    # rpi1..4 on 192.168.0.101-104 (seed 001)
    "rpi": (
        [
            "--nodes", "4", "--prefix", "rpi", "--width", "1",
            "--subnet", "192.168.0.0/24", "--first", "192.168.0.101", "--mpi", "mpich",
        ],
        ["rpi1", "rpi2", "rpi3", "rpi4"],
        "192.168.0.101",
    ),
    # rpinode01..15 on 192.168.2.1-15, gateway .254, dnsmasq reservations (seed 003)
    "rpinode": (
        [
            "--nodes", "15", "--prefix", "rpinode", "--subnet", "192.168.2.0/24",
            "--first", "192.168.2.1", "--gateway", "192.168.2.254",
            "--domain", "raspicluster.cerbelle.net", "--os", "bullseye",
            "--dnsmasq", "--dhcp-range", "192.168.2.20-250",
            "--mac", "rpinode01=b8:27:eb:cb:63:18", "--mac", "rpinode02=B8:27:EB:C2:9F:19",
        ],
        [f"rpinode{i:02d}" for i in range(1, 16)],
        "192.168.2.1",
    ),
}  # fmt: skip


def run_init(path: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["init", str(path), *args])
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def test_defaults_write_a_valid_commented_file(tmp_path: Path) -> None:
    path = tmp_path / "cluster.toml"
    status, output = run_init(path, "--nodes", "4", "--subnet", "10.0.0.0/24")
    assert status == 0, output
    cluster = load(path)
    assert [n.name for n in cluster.nodes] == ["node01", "node02", "node03", "node04"]
    assert cluster.network.gateway == IPv4Address("10.0.0.1")
    assert cluster.nodes[0].address == IPv4Address("10.0.0.11")
    assert cluster.head.name == "node01"
    text = path.read_text()
    assert text.count("#") >= 15  # every section explained
    assert "piherd check" in output and "piherd up" in output
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


@pytest.mark.parametrize("seed", sorted(SEEDS))
def test_seed_plans(tmp_path: Path, seed: str) -> None:
    args, names, first = SEEDS[seed]
    path = tmp_path / f"{seed}.toml"
    status, output = run_init(path, *args)
    assert status == 0, output
    cluster = load(path)
    assert [n.name for n in cluster.nodes] == names
    assert cluster.nodes[0].address == IPv4Address(first)
    addresses = [int(n.address) for n in cluster.nodes]
    assert addresses == list(range(addresses[0], addresses[0] + len(names)))
    check = CliRunner().invoke(cli, ["check", str(path)])
    assert check.exit_code == 0, check.output


def test_rpinode_reservations(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    assert run_init(path, *SEEDS["rpinode"][0])[0] == 0
    cluster = load(path)
    assert cluster.services.get(DnsmasqSettings).enabled
    assert cluster.node("rpinode02").mac == "b8:27:eb:c2:9f:19"
    assert cluster.node("rpinode03").mac is None
    assert cluster.network.gateway == IPv4Address("192.168.2.254")
    assert cluster.nodes[0].os == "bullseye"
    assert cluster.nodes[0].network_stack == "dhcpcd"


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "cluster.toml"
    path.write_text("# mine\n")
    status, output = run_init(path, "--nodes", "4", "--subnet", "10.0.0.0/24")
    assert status == 2
    assert "--force" in output
    assert path.read_text() == "# mine\n"
    status, _ = run_init(path, "--nodes", "4", "--subnet", "10.0.0.0/24", "--force")
    assert status == 0
    assert len(load(path).nodes) == 4


def test_bad_values_write_nothing(tmp_path: Path) -> None:
    path = tmp_path / "cluster.toml"
    status, output = run_init(
        path, "--nodes", "4", "--subnet", "192.168.1.0/24",
        "--router-pool", "192.168.1.1-192.168.1.50", "--prefix", "Node_", "--first", "192.168.1.11",
    )  # fmt: skip
    assert status == 2
    assert (
        "--first: Node_[01-04] (192.168.1.11-14): address inside the router's DHCP pool" in output
    )
    assert "--prefix: " in output
    assert not path.exists()
    assert not list(tmp_path.iterdir())  # no temporary file left either


def test_width_too_small_is_reported_as_the_flag(tmp_path: Path) -> None:
    status, output = run_init(
        tmp_path / "c.toml", "--nodes", "12", "--width", "1", "--subnet", "10.0.0.0/24"
    )
    assert status == 2
    assert "--width: 1 digit cannot number 12 nodes" in output


def test_unparsable_flag(tmp_path: Path) -> None:
    status, output = run_init(tmp_path / "c.toml", "--nodes", "4", "--subnet", "10.0.0.5/24")
    assert status == 2
    assert "is not a network" in output


def test_missing_required_without_terminal(tmp_path: Path) -> None:
    status, output = run_init(tmp_path / "c.toml", "--nodes", "4")
    assert status == 2
    assert "--subnet is missing" in output
    assert not (tmp_path / "c.toml").exists()


def test_width_follows_count(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    assert run_init(path, "--nodes", "120", "--subnet", "10.0.0.0/16")[0] == 0
    cluster = load(path)
    assert cluster.nodes[0].name == "node001"
    assert cluster.nodes[-1].name == "node120"


def test_default_first_address_avoids_the_router_pool(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    args = ["--nodes", "4", "--subnet", "192.168.1.0/24", "--router-pool", "192.168.1.2-99"]
    assert run_init(path, *args)[0] == 0
    assert load(path).nodes[0].address == IPv4Address("192.168.1.100")


def test_asks_on_a_terminal(tmp_path: Path) -> None:
    """On a real terminal (a pty), missing --nodes and --subnet are asked for."""
    piherd = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "piherd"
    path = tmp_path / "asked.toml"
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            [str(piherd), "init", str(path), "--prefix", "rpi", "--width", "1"],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            close_fds=True,
        )
        os.close(slave)
        os.write(master, b"3\n10.9.8.0/24\n")  # the terminal buffers the two answers
        output = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
        assert proc.wait(timeout=60) == 0, output.decode(errors="replace")
    finally:
        os.close(master)
    text = output.decode(errors="replace")
    assert "--nodes" in text and "--subnet" in text
    cluster = load(path)
    assert [n.name for n in cluster.nodes] == ["rpi1", "rpi2", "rpi3"]
    assert str(cluster.nodes[0].address) == "10.9.8.11"


@pytest.mark.parametrize(
    ("subnet", "extra", "pool"),
    [
        ("10.0.0.0/24", [], "10.0.0.100-10.0.0.199"),
        ("192.168.1.0/24", ["--first", "192.168.1.128"], "192.168.1.132-192.168.1.199"),
        ("172.16.0.0/16", [], "172.16.0.100-172.16.0.199"),
        ("10.9.9.0/27", [], "10.9.9.16-10.9.9.30"),
    ],
)
def test_the_example_router_pool_comes_from_the_subnet(
    tmp_path: Path, subnet: str, extra: list[str], pool: str
) -> None:
    """The commented router pool `init` writes lies in the subnet, clear of the nodes, and
    is valid once uncommented (it used to be 192.168.1.x whatever the subnet)."""
    path = tmp_path / "cluster.toml"
    status, output = run_init(path, "--nodes", "4", "--subnet", subnet, *extra)
    assert status == 0, output
    text = path.read_text()
    line = f'# router_dhcp_pool = "{pool}"'
    assert line in text, text
    path.write_text(text.replace(line, line.removeprefix("# ")))
    assert load(path).network.router_dhcp_pool is not None
