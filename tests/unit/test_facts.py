"""Facts parsers on captured outputs of the facts script."""

from __future__ import annotations

import subprocess

import pytest

from piherd.facts.parse import (
    parse_facts,
    parse_files,
    parse_meminfo,
    parse_meminfo_mb,
    parse_network_stack,
    parse_units,
    section_lines,
    split_sections,
)
from piherd.facts.script import facts_argv

CAPTURED_PI = """\
@@piherd-fact:os_release@@
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION_CODENAME=bookworm
ID=debian

@@piherd-fact:machine@@
aarch64

@@piherd-fact:arch@@
arm64

@@piherd-fact:cpus@@
4

@@piherd-fact:meminfo@@
MemTotal:        3884096 kB

@@piherd-fact:model@@
Raspberry Pi 4 Model B Rev 1.5
@@piherd-fact:netstack@@
NetworkManager active
dhcpcd inactive
systemd-networkd inactive

@@piherd-fact:hostname@@
raspberrypi

@@piherd-fact:addresses@@
1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever
2: eth0    inet 192.168.1.57/24 brd 192.168.1.255 scope global dynamic eth0\\  valid_lft 86000sec

@@piherd-fact:packages@@
ii  bash
ii  chrony
rc  munge
iU  slurmd
ii  libc6:arm64

@@piherd-fact:apt_lists@@
4

@@piherd-fact:host_keys@@
ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB0E root@raspberrypi
ecdsa-sha2-nistp256 AAAAE2VjZHNh root@raspberrypi

@@piherd-fact:files@@
file\t644 root root\t427f93ca\t/etc/hosts
dir\t755 pi pi\t-\t/srv/cluster
absent\t-\t-\t/etc/munge/munge.key
file\t600 root root\tabcd\t/etc/with space/x y.conf

@@piherd-fact:units@@
Id=chrony.service
LoadState=loaded
ActiveState=active
UnitFileState=enabled
ActiveEnterTimestampMonotonic=123456
MainPID=812

Id=munge.service
LoadState=not-found
ActiveState=inactive
UnitFileState=
ActiveEnterTimestampMonotonic=0
MainPID=0

Id=chrony-wait.service
LoadState=masked
ActiveState=inactive
UnitFileState=masked
ActiveEnterTimestampMonotonic=0
MainPID=0

@@piherd-fact:end@@
"""


def test_parse_captured_pi() -> None:
    facts = parse_facts(
        "node01", CAPTURED_PI, ("chrony.service", "munge.service", "slurmd.service")
    )
    assert (facts.os_id, facts.os_codename, facts.os_version) == ("debian", "bookworm", "12")
    assert (facts.arch, facts.machine, facts.cpus, facts.memory_mb) == ("arm64", "aarch64", 4, 3793)
    assert facts.pi_model == "Raspberry Pi 4 Model B Rev 1.5"
    assert facts.is_pi
    assert facts.network_stack == "networkmanager"
    assert facts.hostname == "raspberrypi"
    assert facts.addresses == ("127.0.0.1", "192.168.1.57")
    assert facts.packages == frozenset({"bash", "chrony", "libc6"})
    assert facts.apt_lists
    assert facts.host_keys == (
        "ecdsa-sha2-nistp256 AAAAE2VjZHNh",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB0E",
    )
    hosts = facts.file("/etc/hosts")
    assert (hosts.kind, hosts.mode, hosts.owner, hosts.sha256) == (
        "file",
        0o644,
        "root",
        "427f93ca",
    )
    assert facts.file("/srv/cluster").kind == "dir"
    assert facts.file("/srv/cluster").owner == "pi"
    assert not facts.file("/etc/munge/munge.key").exists
    assert not facts.file("/never/asked").exists
    assert facts.file("/etc/with space/x y.conf").sha256 == "abcd"
    chrony = facts.unit("chrony.service")
    assert chrony.active and chrony.enabled and chrony.main_pid == 812
    assert chrony.active_enter_monotonic == 123456
    assert not facts.unit("munge.service").active
    assert facts.unit("chrony-wait.service").masked
    assert facts.unit("slurmd.service").load_state == "not-found"


def test_incomplete_output_is_an_error() -> None:
    cut = CAPTURED_PI.split("@@piherd-fact:units@@")[0]
    with pytest.raises(ValueError, match="incomplete"):
        parse_facts("node01", cut)


def test_not_a_pi_and_no_stack() -> None:
    assert parse_network_stack("NetworkManager inactive\ndhcpcd unknown\n") is None
    assert parse_network_stack("NetworkManager inactive\nsystemd-networkd active\n") == "networkd"
    text = "@@piherd-fact:model@@\n\n@@piherd-fact:end@@\n"
    assert parse_facts("x", text).pi_model is None
    assert not parse_facts("x", text).is_pi


def test_sections_and_garbage_lines() -> None:
    assert split_sections("noise\n@@piherd-fact:a@@\n1\n2\n@@piherd-fact:b@@\n") == {
        "a": "1\n2",
        "b": "",
    }
    assert parse_files("garbage line\n") == {}
    assert parse_units("\n\nno id here\n") == {}


def test_one_section_parser_for_facts_and_health() -> None:
    """The health probe's sections go through the same parser, with its own marker."""
    probe = "x\n@@piherd-health:loadavg@@\n 1.5 0.9 0.4 \n\n@@piherd-health:end@@\n"
    sections = split_sections(probe, "@@piherd-health:")
    assert sections == {"loadavg": " 1.5 0.9 0.4 ", "end": ""}
    assert section_lines(sections["loadavg"] + "\n\n  \n") == ["1.5 0.9 0.4"]
    # A facts marker is not a health marker, and the other way round.
    assert split_sections(probe) == {}


def test_one_meminfo_parser() -> None:
    proc = "MemTotal:        3884428 kB\nMemFree:  1 kB\nHugePages_Total:       0\nbad: x kB\n"
    assert parse_meminfo(proc) == {"MemTotal": 3884428, "MemFree": 1, "HugePages_Total": 0}
    assert parse_meminfo_mb(proc) == 3793
    assert parse_meminfo_mb("MemFree: 1 kB\n") == 0


def test_script_runs_locally_and_paths_are_arguments(tmp_path: object) -> None:
    """The real script under sh: a path full of shell syntax is data, not code."""
    import pathlib

    base = pathlib.Path(str(tmp_path))
    evil = base / "$(touch pwned); x"
    evil.write_text("hello\n")
    argv = facts_argv([str(evil), str(base / "absent"), str(base)], [])
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout
    facts = parse_facts("local", out)
    assert facts.file(str(evil)).sha256 == (
        "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
    )
    assert facts.file(str(base)).kind == "dir"
    assert not facts.file(str(base / "absent")).exists
    assert not (pathlib.Path.cwd() / "pwned").exists()
    assert facts.cpus >= 1 and facts.memory_mb > 0


def test_bad_unit_names_rejected() -> None:
    with pytest.raises(ValueError):
        facts_argv([], ["a b.service"])
