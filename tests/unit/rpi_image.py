"""Builds a small Raspberry Pi OS-shaped disk image for the `piherd image` tests (no root).

MBR (sfdisk) with a FAT32 boot partition at 8 MiB holding cmdline.txt and config.txt
(mkfs.fat + mcopy) and an ext4 root (mkfs.ext4 -d) holding /etc/os-release of a release.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

MIB = 1 << 20
BOOT_OFFSET = 8 * MIB
BOOT_SIZE = 40 * MIB  # FAT32 needs 65525 clusters: 40 MiB of 512-byte clusters
ROOT_OFFSET = BOOT_OFFSET + BOOT_SIZE
CMDLINE = (
    "console=serial0,115200 console=tty1 root=PARTUUID=4e639091-02 rootfstype=ext4"
    " fsck.repair=yes rootwait quiet init=/usr/lib/raspberrypi-sys-mods/firstboot\n"
)
CONFIG = "# For more options and information see\n[all]\narm_64bit=1\ndtparam=audio=on\n"
VERSIONS = {"bullseye": "11", "bookworm": "12", "trixie": "13"}
_ENV = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}


def _run(argv: list[str], stdin: bytes | None = None) -> None:
    subprocess.run(argv, input=stdin, check=True, capture_output=True, env=_ENV, timeout=900)


def build_image(path: Path, release: str, root_mib: int = 8, filler_mib: int = 0) -> Path:
    """Write a Raspberry Pi OS-shaped image of `release` at `path` (a root partition of
    `root_mib` holding `filler_mib` of random data, for benchmarks of real-sized images)."""
    work = path.parent / f".{path.name}.parts"
    work.mkdir()
    os_release = (
        f'PRETTY_NAME="Debian GNU/Linux {VERSIONS[release]} ({release})"\n'
        f'VERSION_ID="{VERSIONS[release]}"\nVERSION_CODENAME={release}\nID=debian\n'
    )
    (work / "root" / "etc").mkdir(parents=True)
    (work / "root" / "etc" / "os-release").write_text(os_release)
    if filler_mib:
        with open(work / "root" / "filler", "wb") as filler:
            for _ in range(filler_mib):
                filler.write(os.urandom(MIB))
    (work / "cmdline.txt").write_text(CMDLINE)
    (work / "config.txt").write_text(CONFIG)
    boot, root = work / "boot.fat", work / "root.ext4"
    _run(
        ["mkfs.fat", "-F", "32", "-s", "1", "-n", "BOOTFS", "-C", str(boot), str(BOOT_SIZE // 1024)]
    )
    _run(["mcopy", "-i", str(boot), str(work / "cmdline.txt"), str(work / "config.txt"), "::"])
    _run(
        [
            "mkfs.ext4",
            "-q",
            "-F",
            "-L",
            "rootfs",
            "-d",
            str(work / "root"),
            str(root),
            f"{root_mib}M",
        ]
    )
    with open(path, "wb") as image:
        image.truncate(ROOT_OFFSET + root_mib * MIB)
    table = (
        f"label: dos\nstart={BOOT_OFFSET // 512}, size={BOOT_SIZE // 512}, type=c\n"
        f"start={ROOT_OFFSET // 512}, type=83\n"
    )
    _run(["sfdisk", "-q", str(path)], table.encode())
    for part, offset in ((boot, BOOT_OFFSET), (root, ROOT_OFFSET)):
        _run(
            [
                "dd",
                f"if={part}",
                f"of={path}",
                "bs=1M",
                f"seek={offset // MIB}",
                "conv=notrunc,sparse",
                "status=none",
            ]
        )
    (work / "root" / "filler").unlink(missing_ok=True)
    for leftover in (
        boot,
        root,
        work / "cmdline.txt",
        work / "config.txt",
        work / "root" / "etc" / "os-release",
    ):
        leftover.unlink()
    (work / "root" / "etc").rmdir()
    (work / "root").rmdir()
    work.rmdir()
    return path


def root_digest(path: Path) -> str:
    """SHA-256 of the root partition's bytes (its extent from sfdisk, read independently)."""
    table = subprocess.run(
        ["sfdisk", "--json", str(path)], capture_output=True, check=True, timeout=60
    ).stdout
    root = json.loads(table)["partitiontable"]["partitions"][1]
    assert root["start"] * 512 == ROOT_OFFSET
    with open(path, "rb") as image:
        image.seek(ROOT_OFFSET)
        return hashlib.sha256(image.read(root["size"] * 512)).hexdigest()


def boot_partition(path: Path, target: Path) -> Path:
    """The boot partition copied out to `target` (for fsck.fat, which takes no offset)."""
    with open(path, "rb") as image, open(target, "wb") as out:
        image.seek(BOOT_OFFSET)
        out.write(image.read(BOOT_SIZE))
    return target


def fat_read(path: Path, name: str, offset: int = BOOT_OFFSET) -> bytes | None:
    """A file from the boot partition of `path` (image or device), None when absent."""
    result = subprocess.run(
        ["mcopy", "-n", "-i", f"{path}@@{offset}", f"::{name}", "-"],
        capture_output=True, env=_ENV, timeout=60, check=False,
    )  # fmt: skip
    return result.stdout if result.returncode == 0 else None


def fsck_clean(partition: Path) -> subprocess.CompletedProcess[str]:
    """fsck.fat -n (read-only check) of a FAT file system image."""
    return subprocess.run(
        ["fsck.fat", "-n", str(partition)], capture_output=True, text=True, timeout=60, check=False
    )
