"""Files on a boot partition: the FAT inside an image (mtools) or a mounted boot directory.

mtools reads and writes the FAT file system at a byte offset of the image file, so no
root, loop device or mount is needed, and it keeps long names and the FSInfo free count
right (the known pitfalls of pure-Python FAT writers).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Protocol

from piherd.image.partitions import ImageError
from piherd.secrets import write_secret

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # a file in the partition's root
_TIMEOUT_S = 120


class BootFiles(Protocol):
    """The root directory of a boot partition."""

    def read(self, name: str) -> bytes | None:
        """The file's bytes, or None when it does not exist."""

    def write(self, name: str, data: bytes) -> None:
        """Create or replace the file."""


def checked_name(name: str) -> str:
    """`name` when it is a plain file name in the partition's root; ValueError otherwise."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"not a boot partition file name: {name!r}")
    return name


class FatImage:
    """The FAT file system at `offset` bytes into `image`, through mtools."""

    def __init__(self, image: Path, offset: int) -> None:
        self.image = image
        self.offset = offset
        self._env = {**os.environ, "MTOOLS_SKIP_CHECK": "1", "MTOOLS_NO_VFAT": "0"}

    def _drive(self, name: str) -> list[str]:
        return ["-i", f"{self.image}@@{self.offset}", f"::{checked_name(name)}"]

    def _run(
        self, argv: list[str], stdin: bytes | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        try:
            return subprocess.run(
                argv,
                input=stdin,
                capture_output=True,
                env=self._env,
                timeout=_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ImageError(f"{self.image}: {argv[0]} failed: {exc}") from None

    def read(self, name: str) -> bytes | None:
        """mcopy FILE to stdout (binary, unlike mtype's text mode)."""
        listing = self._run(["mdir", "-b", *self._drive(name)])
        if listing.returncode != 0:
            return None
        result = self._run(["mcopy", "-n", *self._drive(name), "-"])
        if result.returncode != 0:
            raise ImageError(f"{self.image}: cannot read {name}: {result.stderr.decode().strip()}")
        return result.stdout

    def write(self, name: str, data: bytes) -> None:
        """mcopy -o from stdin over the file (-o: overwrite without asking)."""
        result = self._run(
            ["mcopy", "-o", "-i", f"{self.image}@@{self.offset}", "-", f"::{checked_name(name)}"],
            data,
        )
        if result.returncode != 0:
            raise ImageError(f"{self.image}: cannot write {name}: {result.stderr.decode().strip()}")

    def copy_all(self, dest: Path) -> list[str]:
        """Copy every file and directory of the partition into the directory `dest`
        (mcopy -s, recursive); the names at its top, sorted."""
        dest.mkdir(parents=True, exist_ok=True)
        result = self._run(
            ["mcopy", "-s", "-n", "-m", "-i", f"{self.image}@@{self.offset}", "::*", f"{dest}/"]
        )
        if result.returncode != 0:
            raise ImageError(f"{self.image}: cannot copy its boot partition: "
                             f"{result.stderr.decode(errors='replace').strip()}")  # fmt: skip
        return sorted(p.name for p in dest.iterdir())


class BootDirectory:
    """A mounted boot partition (a card flashed by Raspberry Pi Imager): plain files."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self, name: str) -> bytes | None:
        target = self.path / checked_name(name)
        return target.read_bytes() if target.is_file() else None

    def write(self, name: str, data: bytes) -> None:
        """Temp file then rename; 0600 since first-boot files may hold private host keys."""
        write_secret(self.path / checked_name(name), data)
