"""Image files copied without writing their holes: `cp --sparse=always`; xz unpacked sparsely."""

from __future__ import annotations

import contextlib
import lzma
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

from piherd.image.partitions import ImageError

CHUNK = 1 << 20
_ZERO = bytes(CHUNK)


def private_file(path: Path) -> None:
    """Create `path` empty with mode 0600 (it will hold private host keys)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)


def unpack_xz(source: Path, target: Path) -> None:
    """Decompress `source` (.img.xz) to `target`, seeking over zero blocks (a sparse file)."""
    private_file(target)
    try:
        with lzma.open(source, "rb") as packed, open(target, "r+b") as out:
            size = 0
            while chunk := packed.read(CHUNK):
                if chunk == _ZERO[: len(chunk)]:
                    out.seek(len(chunk), os.SEEK_CUR)
                else:
                    out.write(chunk)
                size += len(chunk)
            out.truncate(size)
    except (lzma.LZMAError, EOFError) as exc:
        raise ImageError(f"{source}: not a valid .xz file ({exc})") from None


@contextlib.contextmanager
def unpacked(source: Path, work: Path) -> Iterator[Path]:
    """`source` itself, or a sparse decompressed copy of a .xz in `work` (removed after)."""
    if source.suffix != ".xz":
        yield source
        return
    target = work / ".piherd-source.img"
    try:
        unpack_xz(source, target)
        yield target
    finally:
        target.unlink(missing_ok=True)


def copy(source: Path, target: Path) -> None:
    """`cp --reflink=auto --sparse=always` into a new 0600 file."""
    private_file(target)
    try:
        subprocess.run(
            ["cp", "--reflink=auto", "--sparse=always", "--", str(source), str(target)],
            check=True,
            capture_output=True,
            timeout=3600,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise ImageError(f"cannot copy {source} to {target}: {exc}") from None
