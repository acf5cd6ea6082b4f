"""A virtual node's clocks start at its power-on: /proc/uptime in its time namespace."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time

import pytest

from piherd.sim.pisys import fresh_boot_clocks


def uptime_in(clocks: list[str]) -> float:
    """/proc/uptime's seconds in a time namespace made with `clocks`."""
    argv = ["unshare", *clocks, "--", "cat", "/proc/uptime"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return float(out.split()[0])


@pytest.mark.root
def test_uptime_in_the_nodes_time_namespace_starts_near_zero() -> None:
    """What `sim up`/`revive`/`reset` run a node under: its uptime is its own, not the
    host's (which a container otherwise shows, however often it is power-cycled)."""
    assert os.geteuid() == 0, "needs root (unshare --time); run with the root marker"
    clocks = asyncio.run(fresh_boot_clocks())
    with open("/proc/uptime") as handle:
        host = float(handle.read().split()[0])
    assert clocks, f"the host booted {host:.0f} s ago: nothing to offset"
    assert uptime_in(clocks) < min(host, 60.0)


@pytest.mark.root
def test_a_node_never_seems_to_have_booted_before_its_power_on() -> None:
    """Slurm takes boot time as now - uptime (whole seconds) and ignores a node that seems
    to have booted before Slurm asked for it: the clock must not start early. A clock
    started a second early (as it once did) fails this in most tries."""
    assert os.geteuid() == 0, "needs root (unshare --time); run with the root marker"
    for _ in range(5):
        asked = int(time.time())  # Slurm's boot_req_time: ResumeProgram called
        clocks = asyncio.run(fresh_boot_clocks(time.clock_gettime(time.CLOCK_BOOTTIME)))
        booted = int(time.time()) - int(uptime_in(clocks))  # slurmctld's boot_time
        assert booted >= asked, (booted, asked, clocks)
