"""Blank sim nodes: what a card's cmdline.txt and /etc/hostname give the container, and
the launcher's reboot (systemd-nspawn's 133 starts the on-reboot program)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from piherd.sim.full import STOCK_BOOT_FILES, card_hostname, init_arguments
from piherd.sim.proc import REBOOT_STATUS, alive, launch, read_pid, stop_daemon

FIRSTRUN = (
    "systemd.run=/boot/firmware/firstrun.sh systemd.run_success_action=reboot "
    "systemd.unit=kernel-command-line.target"
)


def card(tmp_path: Path, cmdline: bytes) -> Path:
    boot = tmp_path / "bootfs"
    boot.mkdir()
    (boot / "cmdline.txt").write_bytes(cmdline)
    return boot


def test_only_systemd_words_reach_the_containers_init(tmp_path: Path) -> None:
    stock = STOCK_BOOT_FILES["cmdline.txt"].strip()
    boot = card(tmp_path, f"{stock} init=/x --bind=/:/mnt -b {FIRSTRUN}\n".encode())
    assert init_arguments(boot) == FIRSTRUN.split()


def test_cloud_inits_nocloud_word_reaches_it(tmp_path: Path) -> None:
    stock = STOCK_BOOT_FILES["cmdline.txt"].strip()
    boot = card(tmp_path, f"{stock} ds=nocloud;i=piherd-node02-1a2b3c4d\n".encode())
    assert init_arguments(boot) == ["ds=nocloud;i=piherd-node02-1a2b3c4d"]


def test_the_stock_card_gives_no_arguments(tmp_path: Path) -> None:
    assert init_arguments(card(tmp_path, STOCK_BOOT_FILES["cmdline.txt"].encode())) == []


@pytest.mark.parametrize(
    "cmdline",
    [
        b"quiet\nsystemd.run=/evil\n",  # a second line: the firmware reads one
        b"systemd.run=/x\x00y\n",
        b"quiet systemd.run=\xff\n",
    ],
)
def test_a_cmdline_that_is_not_one_line_of_text_gives_none(tmp_path: Path, cmdline: bytes) -> None:
    assert init_arguments(card(tmp_path, cmdline)) == []


def test_a_card_without_cmdline_gives_none(tmp_path: Path) -> None:
    assert init_arguments(tmp_path) == []


@pytest.mark.parametrize(
    ("text", "wanted"),
    [("node02\n", "node02"), ("raspberrypi\n", "raspberrypi"), ("-x\n", "nodeX"),
     ("a b\n", "nodeX"), ("", "nodeX")],
)  # fmt: skip
def test_the_card_names_the_host(tmp_path: Path, text: str, wanted: str) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/hostname").write_text(text)
    assert card_hostname(tmp_path, "nodeX") == wanted


def test_no_hostname_file_keeps_the_default(tmp_path: Path) -> None:
    assert card_hostname(tmp_path, "nodeX") == "nodeX"


@pytest.mark.parametrize("status", [REBOOT_STATUS, 0, 137])
def test_the_launcher_runs_the_on_reboot_program_only_on_a_reboot(
    tmp_path: Path, status: int
) -> None:
    marker = tmp_path / "rebooted"
    program = tmp_path / "on-reboot"
    program.write_text(f"#!/bin/sh\necho $$ > {marker}\n")
    program.chmod(0o700)

    async def go() -> None:
        pidfile, childfile = tmp_path / "wrapper.pid", tmp_path / "child.pid"
        await launch(["sh", "-c", f"exit {status}"], pidfile=pidfile, childfile=childfile,
                     log=tmp_path / "log", on_reboot=program)  # fmt: skip
        wrapper = read_pid(pidfile)
        for _ in range(200):
            if not alive(wrapper) or marker.exists():
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)
        await stop_daemon(pidfile, childfile)
        if status == REBOOT_STATUS:  # the wrapper became the program: same PID
            assert marker.read_text().strip() == str(wrapper)
        else:
            assert not marker.exists()

    asyncio.run(go())


def test_flash_copies_the_boot_partition_of_an_xz_image(tmp_path: Path) -> None:
    import lzma

    from rpi_image import build_image

    from piherd.sim.card import boot_partition_files

    image = build_image(tmp_path / "raspios.img", "bookworm")
    packed = tmp_path / "raspios.img.xz"
    packed.write_bytes(lzma.compress(image.read_bytes(), preset=0))
    (tmp_path / "node").mkdir()
    copied = boot_partition_files(packed, tmp_path / "node" / "bootfs")
    assert copied == ["cmdline.txt", "config.txt"]
    assert (tmp_path / "node" / "bootfs" / "cmdline.txt").read_text().startswith("console=")
    assert [p.name for p in (tmp_path / "node").iterdir()] == ["bootfs"]  # no unpacked copy left
