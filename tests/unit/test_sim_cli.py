"""`piherd sim` input errors and the pure config the sim hands its daemons (no root needed)."""

from __future__ import annotations

from ipaddress import IPv4Network
from pathlib import Path

from click.testing import CliRunner

from piherd.cli.main import cli
from piherd.sim.light import sshd_config
from piherd.sim.router import dhcp_hosts
from piherd.sim.state_file import SimState


def test_unknown_cluster_is_a_clear_usage_error() -> None:
    result = CliRunner().invoke(cli, ["sim", "status", "--name", "no-such-sim-xyz"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "no sim cluster 'no-such-sim-xyz'" in result.output or "needs root" in result.output


def test_bad_name_and_too_many_full_nodes_are_refused() -> None:
    bad = CliRunner().invoke(cli, ["sim", "up", "--name", "Bad/Name"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output
    big = CliRunner().invoke(cli, ["sim", "up", "--workers", "150"])
    assert big.exit_code == 2


def test_router_leases_are_fixed_per_mac() -> None:
    state = SimState("tsim", False, 2, "10.201.4.0/24", "/tmp/x")
    lines = dhcp_hosts(state).splitlines()
    assert len(lines) == 3
    mac, address, name = lines[1].split(",")
    assert mac == state.names.mac(1) and address == "10.201.4.101" and name == "node02"
    assert state.names.subnet == IPv4Network("10.201.4.0/24")


def test_light_sshd_takes_keys_only_and_its_own_files(tmp_path: Path) -> None:
    text = sshd_config(tmp_path, "10.201.4.12", tmp_path / "authorized_keys")
    assert "ListenAddress 10.201.4.12\n" in text
    assert "PasswordAuthentication no\n" in text
    assert "PermitRootLogin prohibit-password\n" in text
    assert f"HostKey {tmp_path}/ssh/ssh_host_ed25519_key\n" in text
