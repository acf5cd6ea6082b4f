"""services.bootloader: EEPROM settings as data, applied with rpi-eeprom-config, reported.

rpi-eeprom-config needs a Pi 4/5 (it refuses to --apply anywhere else), so the program
that applies the settings runs here against a stand-in that keeps the command's
documented contract (docs/netboot.md): no arguments print the running configuration;
`--apply FILE` stages FILE for the next reboot, which the stand-in's `reboot` makes the
running one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from piherd.health.probe import parse_probe, probe_argv
from piherd.health.verdicts import Level, evaluate
from piherd.model import ConfigError
from piherd.model.cluster import HealthRules
from piherd.render import RenderContext, render_node
from piherd.render.manifest import node_units
from piherd.services import loads
from piherd.services.bootloader import APPLY, CONF, UNIT

CLUSTER = """[cluster]
name = "bl"
[network]
subnet = "10.8.0.0/24"
[naming]
prefix = "pi"
width = 1
count = 4
first_address = "10.8.0.1"
[services.bootloader]
enabled = true
[[services.bootloader.settings]]
nodes = "@workers"
boot_order = "0xF21"
tftp_prefix = 0
boot_uart = true
[[services.bootloader.settings]]
nodes = "pi4"
boot_order = "0xf2"
dhcp_timeout = 60000
"""
CTX = RenderContext(b"k" * 64, b"p", "ssh-ed25519 AAAA")


def _files(text: str, node: str) -> dict[str, bytes]:
    cluster = loads(text)
    return {p: s.content for p, s in render_node(cluster, cluster.node(node), CTX).items()}


def test_each_node_gets_its_sets_settings_later_entries_winning() -> None:
    conf = _files(CLUSTER, "pi2")[CONF].decode().splitlines()
    assert conf[1:] == ["[all]", "BOOT_ORDER=0xf21", "TFTP_PREFIX=0", "BOOT_UART=1"]
    conf = _files(CLUSTER, "pi4")[CONF].decode().splitlines()
    assert conf[1:] == [
        "[all]",
        "BOOT_ORDER=0xf2",
        "TFTP_PREFIX=0",
        "BOOT_UART=1",
        "DHCP_TIMEOUT=60000",
    ]
    head = _files(CLUSTER, "pi1")
    assert CONF not in head and APPLY not in head  # the head is in no entry
    cluster = loads(CLUSTER)
    assert UNIT in [u.name for u in node_units(cluster, cluster.node("pi3"))]
    assert UNIT not in [u.name for u in node_units(cluster, cluster.node("pi1"))]


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ('boot_order = "0xf81"', "boot_order"),  # 8 is no boot mode
        ('boot_order = "0xf21\\n"', "boot_order"),
        ('boot_order = "f21"', "boot_order"),
        ("tftp_prefix = 3", "tftp_prefix"),
        ('tftp_ip = "10.8.0.300"', "tftp_ip"),
        ('tftp_ip = "10.8.0.1\\nBOOT_ORDER=0x1"', "tftp_ip"),
        ("dhcp_timeout = 4999", "dhcp_timeout"),
        ("dhcp_timeout = 1.5e9", "dhcp_timeout"),
        ('tftp_prefix_str = "../../etc x"', "tftp_prefix_str"),
        ("net_boot_max_retries = -2", "net_boot_max_retries"),
        ("boot_uart = 1", "boot_uart"),
        ("freeze_everything = true", "freeze_everything"),
    ],
)
def test_a_bad_value_is_refused_by_its_field(line: str, field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        loads(CLUSTER + f'[[services.bootloader.settings]]\nnodes = "pi2"\n{line}\n')
    assert f"services.bootloader.settings[2].{field}" in caught.value.render()


def test_a_settings_entry_needs_a_node_set_of_this_cluster() -> None:
    with pytest.raises(ConfigError) as caught:
        loads(CLUSTER.replace('nodes = "pi4"', 'nodes = "pi9"'))
    assert "services.bootloader.settings[1].nodes" in caught.value.render()


# The stand-in: the running configuration is `running`, a staged one `pending`.
STAND_IN = (
    f"#!{sys.executable}\n"
    + r"""
import pathlib, shutil, sys
here = pathlib.Path(__file__).parent
if len(sys.argv) == 1:
    sys.stdout.write((here / "running").read_text())
elif sys.argv[1:2] == ["--apply"] and len(sys.argv) == 3:
    (here / "calls").open("a").write("apply\n")
    shutil.copy(sys.argv[2], here / "pending")
    print("EEPROM updates pending. Please reboot to apply the update.")
else:
    sys.exit(2)
"""
)
RUNNING = "[all]\nBOOT_UART=0\nWAKE_ON_GPIO=1\nPOWER_OFF_ON_HALT=0\n[none]\nBOOT_ORDER=0x1\n"


def _program(tmp_path: Path, conf: bytes) -> tuple[Path, Path]:
    """The apply program, reading `conf`, with its two paths moved under tmp_path."""
    want, state = tmp_path / "bootloader.conf", tmp_path / "run" / "bootloader"
    want.write_bytes(conf)
    script = _files(CLUSTER, "pi2")[APPLY].decode()
    script = script.replace('"/etc/piherd/bootloader.conf"', repr(str(want)))
    script = script.replace('"/run/piherd/bootloader"', repr(str(state)))
    program = tmp_path / "apply.py"
    program.write_text(script)
    return program, state


def _run(program: Path, bin_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": str(bin_dir)}
    return subprocess.run(
        [sys.executable, str(program)], env=env, capture_output=True, text=True, timeout=60
    )


def test_without_rpi_eeprom_config_the_node_says_it_has_no_eeprom(tmp_path: Path) -> None:
    program, state = _program(tmp_path, _files(CLUSTER, "pi2")[CONF])
    (tmp_path / "empty").mkdir()
    result = _run(program, tmp_path / "empty")
    assert result.returncode == 0, result.stderr
    assert state.read_text().startswith("no-eeprom: rpi-eeprom-config not found")


def test_differing_keys_are_applied_merged_then_ok_after_the_reboot(tmp_path: Path) -> None:
    program, state = _program(tmp_path, _files(CLUSTER, "pi4")[CONF])
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "rpi-eeprom-config"
    tool.write_text(STAND_IN)
    tool.chmod(0o755)
    (bin_dir / "running").write_text(RUNNING)

    result = _run(program, bin_dir)
    assert result.returncode == 0, result.stderr
    assert state.read_text() == (
        "pending: BOOT_ORDER=(unset)->0xf2 BOOT_UART=0->1 DHCP_TIMEOUT=(unset)->60000 "
        "TFTP_PREFIX=(unset)->0 (applied at the next reboot)\n"
    )
    pending = (bin_dir / "pending").read_text()
    # The other keys and sections stay; piherd's keys are set once, in [all].
    assert pending.splitlines() == [
        "[all]",
        "WAKE_ON_GPIO=1",
        "POWER_OFF_ON_HALT=0",
        "[none]",
        "BOOT_ORDER=0x1",
        "[all]",
        "BOOT_ORDER=0xf2",
        "TFTP_PREFIX=0",
        "BOOT_UART=1",
        "DHCP_TIMEOUT=60000",
    ]

    (bin_dir / "running").write_text(pending)  # the reboot
    result = _run(program, bin_dir)
    assert result.returncode == 0, result.stderr
    assert state.read_text() == "ok\n"
    assert (bin_dir / "calls").read_text() == "apply\n"  # nothing applied twice


def test_status_warns_of_a_pending_or_failed_bootloader_not_of_no_eeprom() -> None:
    def probed(line: str) -> Level:
        out = f"\n@@piherd-health:bootloader@@\n{line}\n\n@@piherd-health:end@@\n"
        health = parse_probe("pi2", out, units=())
        assert health.bootloader == (line or None)
        return evaluate(health, HealthRules(), compute=False).level

    assert probed("ok") == Level.OK
    assert probed("no-eeprom: rpi-eeprom-config not found") == Level.OK
    assert probed("") == Level.OK
    assert probed("pending: BOOT_ORDER=0xf41->0xf21 (applied at the next reboot)") == Level.WARN
    assert probed("error: rpi-eeprom-config --apply failed: x") == Level.WARN


def test_the_probe_reports_the_state_the_program_recorded(tmp_path: Path) -> None:
    """The real probe script, with the state file's path moved under tmp_path."""
    state = tmp_path / "bootloader"
    state.write_text("pending: BOOT_ORDER=0x1->0xf21 (applied at the next reboot)\n")
    argv = probe_argv(units=())
    script = argv[2].replace("/run/piherd/bootloader", str(state))
    assert script != argv[2]
    out = subprocess.run(
        [*argv[:2], script, *argv[3:]], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    health = parse_probe("pi2", out, units=())
    assert health.bootloader == "pending: BOOT_ORDER=0x1->0xf21 (applied at the next reboot)"
