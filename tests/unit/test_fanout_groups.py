"""Group export: the groups.d YAML is read by ClusterShell's own `nodeset`; the Ansible
inventory lists every group with addresses and the cluster's SSH settings."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from click.testing import CliRunner

from piherd.cli.main import cli

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cluster.toml"


def test_clustershell_groups_are_read_by_nodeset(tmp_path: Path) -> None:
    out = tmp_path / "groups.d" / "picluster.yaml"
    result = CliRunner().invoke(
        cli, ["groups", "-f", str(EXAMPLE), "--clustershell", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    (tmp_path / "groups.conf").write_text(
        f"[Main]\ndefault: picluster\nautodir: {tmp_path / 'groups.d'}\n"
    )
    env = {**os.environ, "CLUSTERSHELL_CFGDIR": str(tmp_path)}

    def nodeset(*args: str) -> str:
        done = subprocess.run(
            ["nodeset", *args], env=env, capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    assert nodeset("-f", "@workers") == "node[02-04]"
    assert nodeset("-f", "@all!@head") == "node[02-04]"
    assert nodeset("-f", "@gpu&@rack2") == "node04"
    assert nodeset("-s", "picluster", "-f", "@rack1") == "node[01-02]"
    assert nodeset("-l").split() == [
        "@all", "@compute", "@gpu", "@head", "@infra", "@rack1", "@rack2", "@workers",
    ]  # fmt: skip


def test_ansible_inventory() -> None:
    result = CliRunner().invoke(cli, ["groups", "-f", str(EXAMPLE), "--ansible"])
    assert result.exit_code == 0, result.output
    text = result.output
    assert "[workers]\nnode02 ansible_host=192.168.1.12\n" in text
    assert "[gpu]\nnode04 ansible_host=192.168.1.14\n" in text
    assert "[all]" not in text  # built into Ansible
    assert text.rstrip().endswith("ansible_user=pi\nansible_port=22")
