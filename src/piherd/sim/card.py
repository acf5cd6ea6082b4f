"""What `sim flash` puts on a blank node's card: the boot partition of a Raspberry Pi OS image.

The FAT partition is found from the image's partition table and copied file by file with
mtools (image/bootfs.py), from a .img or a .img.xz; the files are made root-only and
executable, as a Pi's /boot/firmware shows a FAT partition to the root user.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from piherd.image import sparse
from piherd.image.bootfs import FatImage
from piherd.image.partitions import ImageError, read_layout
from piherd.sim.proc import SimError


def boot_partition_files(image: Path, dest: Path) -> list[str]:
    """Copy the boot partition of `image` into the new directory `dest`; its top names."""
    try:
        with (
            tempfile.TemporaryDirectory(prefix=".piherd-flash-", dir=dest.parent) as work,
            sparse.unpacked(image, Path(work)) as source,
        ):
            layout = read_layout(source)
            copied = FatImage(source, layout.boot.offset).copy_all(dest)
    except (ImageError, OSError) as exc:
        shutil.rmtree(dest, ignore_errors=True)
        raise SimError(f"cannot flash {image}: {exc}") from None
    if "cmdline.txt" not in copied:
        shutil.rmtree(dest, ignore_errors=True)
        raise SimError(f"{image} has no cmdline.txt on its boot partition (not Raspberry Pi OS?)")
    dest.chmod(0o700)
    for path in dest.rglob("*"):
        path.chmod(0o700)
    return copied
