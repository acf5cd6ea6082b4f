"""`copy --gather` unpacks a node's tar stream like tarfile's "data" filter, whatever it holds."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import stat
import tarfile
from collections.abc import Sequence
from pathlib import Path

from piherd.transport.base import CommandResult
from piherd.transport.local import LocalTransport
from piherd.transport.tar_stream import gather_from


def hostile_archive() -> bytes:
    """What a node's root could send back: specials, escaping links, setuid, foreign owners."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:

        def add(name: str, kind: bytes, *, data: bytes = b"", **attrs: object) -> None:
            info = tarfile.TarInfo(name)
            info.type, info.size, info.mode = kind, len(data), 0o644
            info.uid, info.gid, info.uname, info.gname = 0, 0, "root", "root"
            for key, value in attrs.items():
                setattr(info, key, value)
            archive.addfile(info, io.BytesIO(data) if data else None)

        add("logs", tarfile.DIRTYPE, mode=0o755)
        add("logs/ok.txt", tarfile.REGTYPE, data=b"fine\n", uid=4242, gid=4242, uname="nobody9")
        add("logs/null", tarfile.CHRTYPE, devmajor=1, devminor=3)
        add("logs/disk", tarfile.BLKTYPE, devmajor=8, devminor=0)
        add("logs/pipe", tarfile.FIFOTYPE)
        add("logs/passwd", tarfile.SYMTYPE, linkname="/etc/passwd")
        add("logs/up", tarfile.SYMTYPE, linkname="../../../outside")
        add("logs/hard", tarfile.LNKTYPE, linkname="/etc/passwd")
        add("../escaped.txt", tarfile.REGTYPE, data=b"out\n")
        add("logs/suid", tarfile.REGTYPE, data=b"#!/bin/sh\n", mode=0o6755)
        add("logs/near", tarfile.SYMTYPE, linkname="ok.txt")
    return buffer.getvalue()


class ArchiveNode(LocalTransport):
    """A node whose `tar | base64` answer is `archive`, whatever was asked."""

    def __init__(self, node: str, archive: bytes) -> None:
        super().__init__(node)
        self.archive = archive

    async def run(self, argv: Sequence[str], **kwargs: object) -> CommandResult:  # type: ignore[override]
        return CommandResult(self.node, 0, base64.b64encode(self.archive).decode(), "")


def test_gather_unpacks_only_data_owned_by_the_caller(tmp_path: Path) -> None:
    out = tmp_path / "out"
    node = ArchiveNode("node05", hostile_archive())
    result = asyncio.run(gather_from(node, "/var/log", out))
    assert (result.rc, result.error) == (0, None)
    logs = out / "node05" / "logs"
    assert sorted(p.name for p in logs.iterdir()) == ["near", "ok.txt", "suid"]
    assert (logs / "ok.txt").read_text() == "fine\n"
    assert os.readlink(logs / "near") == "ok.txt"
    assert not (tmp_path / "escaped.txt").exists() and not (out / "escaped.txt").exists()
    for path in (logs, logs / "ok.txt", logs / "suid"):
        info = path.lstat()
        assert (info.st_uid, info.st_gid) == (os.getuid(), os.getgid()), path
    suid = stat.S_IMODE((logs / "suid").stat().st_mode)
    assert suid & (stat.S_ISUID | stat.S_ISGID) == 0 and suid == 0o755
    # Every refused member is named (escaped), none silently dropped.
    for name in ("null", "disk", "pipe", "passwd", "up", "hard", "escaped.txt"):
        assert name in result.stderr, (name, result.stderr)
    assert result.stderr.count("skipped ") == 7
