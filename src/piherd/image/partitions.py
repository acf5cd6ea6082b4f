"""The partitions of a disk image, read from its MBR partition table with `sfdisk --json`."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

SECTOR = 512
FAT_TYPES = frozenset({"b", "c", "e"})  # FAT32 (CHS, LBA), FAT16 LBA: Raspberry Pi OS uses c
LINUX_TYPE = "83"
_TIMEOUT_S = 60


class ImageError(RuntimeError):
    """The image cannot be used (not a Raspberry Pi OS-shaped disk image, a tool failed)."""


@dataclass(frozen=True)
class Partition:
    """One MBR partition: its number (1-4), type (hex, as sfdisk shows it), byte range."""

    number: int
    kind: str
    offset: int
    size: int


@dataclass(frozen=True)
class Layout:
    """The boot (FAT) partition and the root (Linux) partition of a Raspberry Pi OS image."""

    boot: Partition
    root: Partition | None


def read_layout(image: Path) -> Layout:
    """The layout of `image`; ImageError when it has no MBR or no FAT partition."""
    try:
        result = subprocess.run(
            ["sfdisk", "--json", "--", str(image)],
            capture_output=True,
            text=True,
            timeout=_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ImageError(f"{image}: cannot run sfdisk: {exc}") from None
    if result.returncode != 0:
        raise ImageError(f"{image}: no partition table ({result.stderr.strip()})")
    try:
        table = json.loads(result.stdout)["partitiontable"]
        label, unit_size = table["label"], int(table.get("sectorsize", SECTOR))
        parts = [
            Partition(
                number=index + 1,
                kind=str(p["type"]).lower(),
                offset=int(p["start"]) * unit_size,
                size=int(p["size"]) * unit_size,
            )
            for index, p in enumerate(table["partitions"])
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise ImageError(f"{image}: unreadable partition table ({exc})") from None
    if label != "dos":
        raise ImageError(f"{image}: partition table is {label!r}; Raspberry Pi OS images use MBR")
    boot = next((p for p in parts if p.kind in FAT_TYPES), None)
    if boot is None:
        raise ImageError(f"{image}: no FAT boot partition (types b, c or e) in the MBR")
    root = next((p for p in parts if p.kind == LINUX_TYPE and p.offset > boot.offset), None)
    return Layout(boot, root)
