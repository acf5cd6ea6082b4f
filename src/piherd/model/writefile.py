"""Writing a cluster file (`init`, `discover --write`): in one rename, so a crash, a full
disk or Ctrl-C leaves the old file or the new one, never half of one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def replace_text(
    path: Path,
    text: str,
    *,
    mode: int | None = None,
    check: Callable[[Path], object] | None = None,
) -> None:
    """Write `text` to a temporary file beside `path`, run `check` on it (whatever that
    raises leaves `path` as it was), then rename it over `path`. `mode`: the new file's,
    by default the old file's (0644 for a new one)."""
    if mode is None:
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, mode)
        if check is not None:
            check(Path(temp))
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
