"""The systemd unit for `piherd watch` on the head."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

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
