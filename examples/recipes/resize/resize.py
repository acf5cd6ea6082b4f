#!/usr/bin/env python3
"""Resize this array task's share of the images in a directory (one Slurm array task).

Usage: resize.py SRC DST [WIDTH]

Every image in SRC (sorted by name) is dealt out round-robin to the array's tasks:
task i takes images i, i+N, i+2N, ... where N is SLURM_ARRAY_TASK_COUNT. Each image is
scaled down to at most WIDTH pixels wide (aspect ratio kept; never scaled up) and
written to DST under the same name. One line per image goes to standard output
(Slurm's output file): task, host and file, so you can see where each one ran.

Needs Pillow (Debian: python3-pil) on every compute node.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

from PIL import Image

SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp"}


def my_share(images: list[Path], task: int, count: int) -> list[Path]:
    """The images array task `task` of `count` handles."""
    return images[task::count]


def resize(source: Path, target: Path, width: int) -> tuple[int, int]:
    """Write `source` scaled to at most `width` pixels wide to `target`; its new size."""
    with Image.open(source) as image:
        if image.width > width:
            height = max(1, round(image.height * width / image.width))
            image = image.resize((width, height), Image.LANCZOS)
        tmp = target.with_name(f".{target.name}.part")
        image.save(tmp, format=Image.registered_extensions()[source.suffix.lower()])
        os.replace(tmp, target)  # readers never see half an image
        return image.size


def main(argv: list[str]) -> int:
    if len(argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        return 2
    src, dst = Path(argv[1]), Path(argv[2])
    width = int(argv[3]) if len(argv) == 4 else 800
    if not 1 <= width <= 65535:
        print(f"resize.py: WIDTH must be 1-65535, not {width}", file=sys.stderr)
        return 2
    task = int(os.environ.get("SLURM_ARRAY_TASK_ID", "0"))
    count = int(os.environ.get("SLURM_ARRAY_TASK_COUNT", "1"))
    dst.mkdir(parents=True, exist_ok=True)
    images = sorted(
        p
        for p in src.iterdir()
        if p.is_file() and not p.is_symlink() and p.suffix.lower() in SUFFIXES
    )
    host = socket.gethostname()
    for image in my_share(images, task, count):
        w, h = resize(image, dst / image.name, width)
        print(f"task={task} host={host} file={image.name} size={w}x{h}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
