"""The health probe script and its parser, on captured outputs of real machines."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from piherd.health.collect import probe_inputs
from piherd.health.probe import (
    decode_throttled,
    parse_chrony,
    parse_probe,
    parse_throttled,
    probe_argv,
    with_clock_offsets,
)
from piherd.services import load

# Captured from a Raspberry Pi 4 (bookworm) with a weak supply, shared storage over NFS.
PI_OUTPUT = """
@@piherd-health:clock@@
1795317695.573604765

@@piherd-health:uptime@@
86400.52 300000.10

@@piherd-health:loadavg@@
1.52 0.98 0.40 3/211 12345

@@piherd-health:temp@@
81234

@@piherd-health:throttled@@
vcgencmd throttled=0x50005

@@piherd-health:meminfo@@
MemTotal:        3885396 kB
MemAvailable:    3010244 kB

@@piherd-health:df@@
Filesystem     1024-blocks    Used Available Capacity Mounted on
/dev/mmcblk0p2    29801344 4523432  24020828      16% /

@@piherd-health:rootfs@@
ro,noatime

@@piherd-health:chrony@@
C0A80180,192.168.1.128,4,1795317690.123456789,-0.000002345,-0.000001234,0.000012345,-7.123,-0.001,0.012,0.000456789,0.000123456,64.5,Normal

@@piherd-health:storage@@
nfs4

@@piherd-health:services@@
active
inactive
active
active

@@piherd-health:end@@
"""

# A container without vcgencmd: the rpi_volt hwmon alarm, an automount not triggered.
HWMON_OUTPUT = """
@@piherd-health:clock@@
1795317700.0
@@piherd-health:uptime@@
12.00 20.00
@@piherd-health:loadavg@@
0.00 0.01 0.05 1/90 77
@@piherd-health:temp@@
45000
@@piherd-health:throttled@@
hwmon 1
@@piherd-health:meminfo@@
MemTotal:        1000 kB
MemAvailable:    250 kB
@@piherd-health:df@@
overlay 1000 990 10 99% /
@@piherd-health:rootfs@@
rw,relatime,lowerdir=/a,upperdir=/b
@@piherd-health:chrony@@
@@piherd-health:storage@@
autofs
@@piherd-health:services@@
failed
@@piherd-health:end@@
"""
EXAMPLE = Path(__file__).parents[2] / "examples" / "cluster.toml"


def test_pi_output_parses_every_field() -> None:
    h = parse_probe("node02", PI_OUTPUT, elapsed=0.02)
    assert h.reachable and h.error is None
    assert h.node_time == pytest.approx(1795317695.5736)
    assert h.uptime_s == pytest.approx(86400.52)
    assert h.load == (1.52, 0.98, 0.40)
    assert h.temp_c == pytest.approx(81.234)
    assert h.throttling.source == "vcgencmd"
    assert h.throttling.mask == 0x50005
    assert h.throttling.now == {"under-voltage", "throttled"}
    assert h.throttling.since_boot == {"under-voltage", "throttled"}
    assert h.mem_total_kb == 3885396 and h.mem_available_kb == 3010244
    assert h.mem_used_pct == pytest.approx(100 * (3885396 - 3010244) / 3885396)
    assert h.root_use_pct == 16.0 and h.root_ro is True
    assert h.chrony_offset_s == pytest.approx(-0.000002345) and h.chrony_synced is True
    assert h.storage_fstype == "nfs4" and h.storage_mounted is True
    assert h.services == {
        "slurmd": "active",
        "slurmctld": "inactive",
        "munge": "active",
        "chrony": "active",
    }


def test_hwmon_and_automount() -> None:
    h = parse_probe("node03", HWMON_OUTPUT)
    assert h.throttling.source == "hwmon"
    assert h.throttling.now == {"under-voltage"}
    assert h.throttling.describe() == "under-voltage"
    assert h.storage_mounted is False  # an automount trap is not a mounted filesystem
    assert h.root_ro is False and h.root_use_pct == 99.0
    assert h.chrony_offset_s is None and h.chrony_synced is None
    assert h.mem_used_pct == pytest.approx(75.0)


def test_truncated_output_is_an_error() -> None:
    cut = PI_OUTPUT.split("@@piherd-health:services@@")[0]
    h = parse_probe("node02", cut)
    assert not h.reachable and h.error == "probe output incomplete"


def test_decode_throttled_bits() -> None:
    assert decode_throttled(0).now == frozenset() and decode_throttled(0).describe() == "ok"
    t = decode_throttled(0x2)
    assert t.now == {"arm-freq-capped"} and t.since_boot == frozenset()
    t = decode_throttled(0x80008)
    assert t.now == {"soft-temp-limit"} and t.since_boot == {"soft-temp-limit"}
    t = decode_throttled(0x10000)
    assert t.now == frozenset() and t.since_boot == {"under-voltage"}
    assert t.describe() == "under-voltage since boot"
    assert decode_throttled(0xF000F).now == {
        "under-voltage",
        "arm-freq-capped",
        "throttled",
        "soft-temp-limit",
    }


def test_throttled_section_variants() -> None:
    assert parse_throttled(["n/a"]).describe() == "n/a"
    assert parse_throttled([]).source == "n/a"
    assert parse_throttled(["hwmon 0"]).describe() == "ok"
    assert parse_throttled(["vcgencmd "]).source == "n/a"  # vcgencmd failed (no /dev/vchiq)
    assert parse_throttled(["vcgencmd throttled=0x0"]).describe() == "ok"


def test_chrony_not_synchronised() -> None:
    line = (
        "00000000,,0,0.000000000,0.000000000,0.000000000,0.000000000,0.000,0.000,0.000,"
        "1.000000000,1.000000000,0.0,Not synchronised"
    )
    assert parse_chrony(line) == (0.0, False)
    assert parse_chrony("") == (None, None)


def test_clock_offsets_against_the_head() -> None:
    head = parse_probe("head", PI_OUTPUT.replace("1795317695.573604765", "1000.0"), elapsed=0.2)
    node = parse_probe("node02", PI_OUTPUT.replace("1795317695.573604765", "1003.0"), elapsed=0.4)
    out = with_clock_offsets([head, node], {"head": 999.9, "node02": 1000.0}, "head")
    # head: 1000 - (999.9 + 0.1) = 0; node: 1003 - (1000 + 0.2) = 2.8
    assert out[0].clock_offset_s == pytest.approx(0.0)
    assert out[1].clock_offset_s == pytest.approx(2.8)
    assert out[1].clock_uncertainty_s == pytest.approx(0.3)
    # Without the head's time no offset can be computed.
    assert with_clock_offsets([node], {"node02": 1000.0}, "head")[0].clock_offset_s is None


def test_script_runs_here_and_parses() -> None:
    """The script is plain POSIX sh: run it on this machine and parse what it prints."""
    result = subprocess.run(probe_argv("/"), capture_output=True, text=True, timeout=30)
    h = parse_probe("local", result.stdout)
    assert h.reachable, result.stdout
    assert "cannot open" not in result.stderr  # missing Pi files are expected, silently
    assert h.load is not None and h.uptime_s is not None and h.uptime_s > 0
    assert h.mem_total_kb is not None and h.mem_total_kb > 0
    assert h.root_use_pct is not None and h.root_ro is not None
    assert h.storage_mounted is True  # "/" is always mounted


def test_storage_path_must_be_absolute() -> None:
    with pytest.raises(ValueError, match="absolute"):
        probe_argv("cluster; rm -rf /")
    assert probe_argv("", ())[-1] == ""


def test_units_are_arguments_and_checked() -> None:
    argv = probe_argv("/cluster", ("slurmd", "munge"))
    assert argv[-3:] == ["/cluster", "slurmd", "munge"]
    for bad in ("-H host", "a b", "x\ny", ""):
        with pytest.raises(ValueError, match="unit"):
            probe_argv("", (bad,))


def test_states_map_to_the_units_asked() -> None:
    out = PI_OUTPUT.split("@@piherd-health:services@@")[0]
    out += "@@piherd-health:services@@\nactive\nfailed\n@@piherd-health:end@@\n"
    h = parse_probe("node02", out, units=("chrony", "slurmd"))
    assert dict(h.services) == {"chrony": "active", "slurmd": "failed"}


def test_each_node_is_asked_about_its_own_services() -> None:
    cluster = load(EXAMPLE)
    inputs = probe_inputs(cluster)
    head, worker = cluster.head.name, cluster.workers[0].name
    assert "slurmctld" in inputs[head].units and "slurmd" not in inputs[head].units
    assert "slurmd" in inputs[worker].units and "slurmctld" not in inputs[worker].units
    assert {"munge", "chrony"} <= set(inputs[worker].units)
    assert inputs[head].mount == ""  # the storage server exports; it does not mount


def test_storage_not_asked_is_none() -> None:
    out = HWMON_OUTPUT.replace("@@piherd-health:storage@@\nautofs", "@@piherd-health:storage@@\n-")
    assert parse_probe("node01", out).storage_fstype is None
    out = HWMON_OUTPUT.replace("@@piherd-health:storage@@\nautofs\n", "@@piherd-health:storage@@\n")
    assert parse_probe("node01", out).storage_fstype == ""
