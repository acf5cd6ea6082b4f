"""The systemd unit for `piherd watch` on the head."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import tomlkit

from piherd.health.service import render_watch_unit
from piherd.model import load

EXAMPLE = Path(__file__).parents[2] / "examples" / "cluster.toml"


def test_no_unit_unless_enabled() -> None:
    assert render_watch_unit(load(EXAMPLE)) is None


def test_unit_runs_watch_with_the_interval() -> None:
    cluster = load(EXAMPLE)
    cluster = replace(
        cluster, health=replace(cluster.health, watch_enabled=True, watch_interval_s=3)
    )
    unit = render_watch_unit(cluster, cluster_file="/etc/piherd/my cluster.toml")
    assert unit is not None
    assert (
        "ExecStart=/usr/local/bin/piherd watch --file '/etc/piherd/my cluster.toml' "
        "--interval 3 --log-dir /var/log/piherd\n" in unit
    )
    assert "After=network-online.target slurmctld.service\n" in unit
    assert "WantedBy=multi-user.target" in unit and "Restart=on-failure" in unit
    assert unit == render_watch_unit(cluster, cluster_file="/etc/piherd/my cluster.toml")


def test_print_unit_from_the_command_line(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from piherd.cli.watch import command

    runner = CliRunner()
    result = runner.invoke(command, ["-f", str(EXAMPLE), "--print-unit"])
    assert result.exit_code == 2 and "watch_enabled is false" in result.output
    doc = tomlkit.parse(EXAMPLE.read_text())
    doc["health"]["watch_enabled"] = True  # type: ignore[index]
    doc["health"]["watch_interval_s"] = 4  # type: ignore[index]
    enabled = tmp_path / "cluster.toml"
    enabled.write_text(tomlkit.dumps(doc))
    result = runner.invoke(command, ["-f", str(enabled), "--print-unit"])
    assert result.exit_code == 0, result.output
    assert "--interval 4 " in result.output and result.output.startswith("[Unit]\n")
