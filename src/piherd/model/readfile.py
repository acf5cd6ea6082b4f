"""Reading a cluster file safely: a regular file only, never more than MAX_FILE_BYTES."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from piherd.model.problems import ConfigError, Problem

# Far beyond any cluster file (a 750-node one with every node listed is ~100 KiB); a
# `-f /dev/zero` or a log file given by mistake is refused instead of read to the end.
MAX_FILE_BYTES = 1024 * 1024


def _refused(path: Path, message: str, hint: str = "") -> ConfigError:
    return ConfigError([Problem(0, "", message, hint, str(path))], path)


def read_cluster_text(path: Path) -> str:
    """The text of `path`; ConfigError when it is missing, not a regular file, too big
    or not UTF-8. Never blocks: a FIFO or a device is refused before it is opened."""
    try:
        found = path.stat()
    except FileNotFoundError:
        raise _refused(path, "no such file", "create one with `piherd init`") from None
    except OSError as exc:
        raise _refused(path, f"cannot read the file: {exc.strerror or exc}") from None
    if stat.S_ISDIR(found.st_mode):
        raise _refused(path, "is a directory", "give the cluster.toml inside it")
    if not stat.S_ISREG(found.st_mode):
        raise _refused(
            path, "is not a regular file (a FIFO, socket or device)", "give a cluster.toml"
        )
    try:
        # O_NONBLOCK: should the path have become a FIFO since stat(), open() cannot hang.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as exc:
        raise _refused(path, f"cannot read the file: {exc.strerror or exc}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _refused(path, "is not a regular file", "give a cluster.toml")
        data = _read_at_most(fd, MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise _refused(path, f"cannot read the file: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(data) > MAX_FILE_BYTES:
        raise _refused(
            path,
            f"is larger than {MAX_FILE_BYTES // 1024} KiB; that is not a cluster file",
            "give the cluster.toml, not another file",
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise _refused(path, "not UTF-8 text", "save the file as UTF-8") from None


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = os.read(fd, min(65536, limit - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
