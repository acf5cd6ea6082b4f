"""Writing an image to a card: which block devices are safe, the write and its read-back check.

Refused always: what is not a whole-disk block device, the disk the system runs from (/,
/boot, /usr, /var, swap) and any disk with a mounted partition. Refused unless forced:
a disk the kernel does not call removable. The write opens the device O_EXCL (the kernel
refuses that while anything holds it mounted) and the read-back drops the page cache first,
so it compares what the card returns, not what Linux remembers writing.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from piherd.image.partitions import ImageError

CHUNK = 4 << 20
SYSTEM_MOUNTS = ("/", "/boot", "/boot/firmware", "/boot/efi", "/usr", "/var")
Progress = Callable[[int], None]  # bytes done so far


@dataclass(frozen=True)
class Disk:
    """A block device as lsblk describes it."""

    path: str
    kind: str
    removable: bool
    size: int
    mounted: tuple[str, ...]  # mount points of the disk and its partitions


def _lsblk(args: list[str]) -> Any:
    try:
        result = subprocess.run(
            ["lsblk", "--json", "--bytes", "--paths", *args],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ImageError(f"cannot run lsblk: {exc}") from None
    if result.returncode != 0:
        raise ImageError(f"lsblk {' '.join(args)}: {result.stderr.strip()}")
    return json.loads(result.stdout)


def _mounts(entry: dict[str, Any]) -> list[str]:
    found = [str(m) for m in entry.get("mountpoints") or [] if m]
    for child in entry.get("children") or []:
        found += _mounts(child)
    return found


def describe(device: Path) -> Disk:
    """lsblk's view of `device`; ImageError when it is not a block device."""
    try:
        mode = os.stat(device).st_mode
    except OSError as exc:
        raise ImageError(f"{device}: {exc.strerror}") from None
    if not stat.S_ISBLK(mode):
        raise ImageError(f"{device} is not a block device")
    data = _lsblk(["-o", "NAME,TYPE,RM,SIZE,MOUNTPOINTS", "--", str(device)])
    entry: dict[str, Any] = data["blockdevices"][0]
    return Disk(
        path=str(entry["name"]),
        kind=str(entry["type"]),
        removable=bool(entry["rm"]) and str(entry["rm"]) not in ("0", "False"),
        size=int(entry["size"] or 0),
        mounted=tuple(sorted(set(_mounts(entry)))),
    )


def _sources() -> list[str]:
    """Block devices behind the system's own mounts and swap."""
    sources = []
    for target in SYSTEM_MOUNTS:
        result = subprocess.run(
            ["findmnt", "-n", "-o", "SOURCE", "--target", target],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        sources += [s.split("[", 1)[0] for s in result.stdout.split() if s.startswith("/dev/")]
    swaps = Path("/proc/swaps").read_text().splitlines()[1:]
    sources += [line.split()[0] for line in swaps if line.startswith("/dev/")]
    return sources


def system_disks() -> set[str]:
    """The disks (and the partitions and devices stacked on them) the system runs from."""
    disks: set[str] = set()
    for source in _sources():
        data = _lsblk(["-s", "-o", "NAME,TYPE", "--", source])
        stack: list[dict[str, Any]] = list(data["blockdevices"])
        while stack:
            entry = stack.pop()
            disks.add(os.path.realpath(str(entry["name"])))
            stack += entry.get("children") or []
    return disks


def check_target(device: Path, force: bool) -> Disk:
    """The disk to write, or ImageError saying why it is refused."""
    disk = describe(device)
    real = os.path.realpath(disk.path)
    if real in system_disks() or os.path.realpath(device) in system_disks():
        raise ImageError(f"{device} holds the running system; refusing to overwrite it")
    if disk.kind not in ("disk", "loop"):
        raise ImageError(
            f"{device} is a {disk.kind}, not a whole disk; give the card itself (e.g. /dev/sdb)"
        )
    if disk.mounted:
        raise ImageError(f"{device} is mounted at {', '.join(disk.mounted)}; unmount it first")
    if not disk.removable and not force:
        raise ImageError(f"{device} is not a removable disk; pass --force if it really is the card")
    return disk


def write(image: Path, device: Path, progress: Progress) -> str:
    """Copy `image` onto `device`, then read it back; the SHA-256 both agree on."""
    size = image.stat().st_size
    written = hashlib.sha256()
    try:
        fd = os.open(device, os.O_WRONLY | os.O_EXCL | os.O_CLOEXEC)
    except OSError as exc:
        raise ImageError(f"cannot open {device} for writing: {exc.strerror}") from None
    try:
        if os.lseek(fd, 0, os.SEEK_END) < size:
            raise ImageError(f"{device} is smaller than the image ({size} bytes)")
        os.lseek(fd, 0, os.SEEK_SET)
        done = 0
        with open(image, "rb") as source:
            while chunk := source.read(CHUNK):
                written.update(chunk)
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
                done += len(chunk)
                progress(done)
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    read_back = hashlib.sha256()
    fd = os.open(device, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        left = size
        while left:
            chunk = os.read(fd, min(CHUNK, left))
            if not chunk:
                break
            read_back.update(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    if left or read_back.digest() != written.digest():
        raise ImageError(f"read-back check failed: {device} does not hold the image it was given")
    return written.hexdigest()
