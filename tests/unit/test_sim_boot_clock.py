"""A virtual node's clocks start at its power-on: /proc/uptime in its time namespace."""

from __future__ import annotations

import os
import subprocess

import pytest

from piherd.sim.pisys import fresh_boot_clocks


@pytest.mark.root
def test_uptime_in_the_nodes_time_namespace_starts_near_zero() -> None:
    """What `sim up`/`revive`/`reset` run a node under: its uptime is its own, not the
    host's (which a container otherwise shows, however often it is power-cycled)."""
    assert os.geteuid() == 0, "needs root (unshare --time); run with the root marker"
    clocks = fresh_boot_clocks()
    with open("/proc/uptime") as handle:
        host = float(handle.read().split()[0])
    assert clocks, f"the host booted {host:.0f} s ago: nothing to offset"
    out = subprocess.run(
        ["unshare", *clocks, "--", "cat", "/proc/uptime"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert float(out.split()[0]) < min(host, 60.0)
