"""Which Raspberry Pi OS release an image holds: VERSION_CODENAME of its /etc/os-release.

Read from the ext4 root partition with debugfs (e2fsprogs) at the partition's offset:
no mount, no root.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from piherd.image.partitions import ImageError, Partition
from piherd.model.cluster import OS_RELEASES

_CODENAME = re.compile(r'VERSION_CODENAME="?([a-z]+)"?')
_TIMEOUT_S = 60


def os_release_text(image: Path, root: Partition) -> str:
    """/etc/os-release of the root partition (following the usual symlink to /usr/lib)."""
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        try:
            result = subprocess.run(
                ["debugfs", "-R", f"cat {path}", f"{image}?offset={root.offset}"],
                capture_output=True,
                timeout=_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ImageError(f"{image}: cannot run debugfs: {exc}") from None
        text = result.stdout.decode("utf-8", errors="replace")
        if result.returncode == 0 and _CODENAME.search(text):
            return text
    raise ImageError(f"{image}: no /etc/os-release with VERSION_CODENAME in the root partition")


def codename(os_release: str) -> str:
    """The release named by an os-release text; ImageError when piherd does not know it."""
    for line in os_release.splitlines():
        match = _CODENAME.fullmatch(line.strip())
        if match:
            name = match.group(1)
            if name not in OS_RELEASES:
                raise ImageError(
                    f"the image holds release {name!r}; piherd images {', '.join(OS_RELEASES)}"
                )
            return name
    raise ImageError("os-release names no VERSION_CODENAME")


def detect(image: Path, root: Partition | None) -> str:
    """The image's release, or ImageError (then pass --release)."""
    if root is None:
        raise ImageError(
            f"{image}: no Linux root partition to read the release from; pass --release"
        )
    return codename(os_release_text(image, root))
