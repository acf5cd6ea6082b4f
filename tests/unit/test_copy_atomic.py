"""Faults in `copy` and atomic writes (issue 12, class 10): the node's scripts run here for real.

An archive cut short never leaves a truncated file at the final name nor a temporary
directory; a refused copy reads its whole stdin (one clear error, never a broken pipe);
temporary names carry their writer's PID, so runs side by side keep each other's files.
"""

from __future__ import annotations

import asyncio
import grp
import hashlib
import os
import pwd
import subprocess
from pathlib import Path

from piherd.transport import remote_scripts
from piherd.transport.local import LocalTransport
from piherd.transport.tar_stream import UNPACK, copy_to, pack

DEAD_PID = "4194305"  # above the kernel's largest pid_max: never a live process


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.rglob(".piherd-tmp*"))


def test_a_cut_archive_leaves_the_old_file_whole_and_no_temporary(tmp_path: Path) -> None:
    source = tmp_path / "src" / "big.bin"
    source.parent.mkdir()
    source.write_bytes(os.urandom(200_000))
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "big.bin").write_bytes(b"old\n")
    archive = pack([source])
    cut = archive[: len(archive) // 2]  # the connection dropped half-way through the data
    result = asyncio.run(copy_to(LocalTransport("n1"), cut, [source], str(dest)))
    assert result.rc != 0
    assert (dest / "big.bin").read_bytes() == b"old\n"
    assert leftovers(dest) == []
    whole = asyncio.run(copy_to(LocalTransport("n1"), archive, [source], str(dest)))
    assert (whole.rc, (dest / "big.bin").read_bytes()) == (0, source.read_bytes())
    assert leftovers(dest) == []


def test_into_a_directory_merges_trees_and_keeps_other_files(tmp_path: Path) -> None:
    tree = tmp_path / "src" / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "new.txt").write_text("new\n")
    (tree / "sub").chmod(0o750)
    dest = tmp_path / "dest"
    (dest / "tree" / "sub").mkdir(parents=True)
    (dest / "tree" / "sub" / "mine.txt").write_text("mine\n")
    result = asyncio.run(copy_to(LocalTransport("n1"), pack([tree]), [tree], str(dest)))
    assert result.rc == 0, result.stderr
    assert (dest / "tree" / "sub" / "mine.txt").read_text() == "mine\n"
    assert (dest / "tree" / "sub" / "new.txt").read_text() == "new\n"
    assert (dest / "tree" / "sub").stat().st_mode & 0o777 == 0o750
    assert leftovers(dest) == []


def refused(tmp_path: Path, dest: str) -> tuple[int, str]:
    """Feed 8 MiB to UNPACK like the transport does; a BrokenPipeError means it stopped reading."""
    process = subprocess.Popen(
        ["sh", "-c", UNPACK, "sh", dest, "f"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
    )  # fmt: skip
    assert process.stdin is not None and process.stderr is not None
    process.stdin.write(b"\0" * (8 << 20))  # raises BrokenPipeError if the script quit early
    process.stdin.close()
    err = process.stderr.read().decode()
    return process.wait(timeout=30), err


def test_a_missing_directory_is_one_clear_error_every_time(tmp_path: Path) -> None:
    for _ in range(3):
        assert refused(tmp_path, str(tmp_path / "no" / "such" / "f")) == (
            1,
            f"{tmp_path / 'no' / 'such'}: no such directory\n",
        )
        assert refused(tmp_path, str(tmp_path / "nodir") + "/") == (
            1,
            f"{tmp_path / 'nodir'}/: no such directory\n",
        )


def write_script(target: Path, content: bytes) -> subprocess.CompletedProcess[bytes]:
    user, group = os.getuid(), os.getgid()
    argv = [
        "sh", "-c", remote_scripts.WRITE_FILE, "sh", str(target), "0644", str(user), str(group),
        str(len(content)), hashlib.sha256(content).hexdigest(),
    ]  # fmt: skip
    return subprocess.run(argv, input=content, capture_output=True, check=False)


def test_atomic_write_keeps_a_running_writers_temporary_and_sweeps_a_dead_ones(
    tmp_path: Path,
) -> None:
    target = tmp_path / "slurm.conf"
    live = tmp_path / f".piherd-tmp-slurm.conf.{os.getpid()}.aaaaaa"  # this test: alive
    dead = tmp_path / f".piherd-tmp-slurm.conf.{DEAD_PID}.bbbbbb"
    live.write_text("half of another run's file")
    dead.write_text("a run killed long ago")
    done = write_script(target, b"new\n")
    assert done.returncode == 0, done.stderr
    assert target.read_bytes() == b"new\n"
    assert leftovers(tmp_path) == [live.name]


def test_local_atomic_write_names_temporaries_by_pid_too(tmp_path: Path) -> None:
    target = tmp_path / "hosts"
    live = tmp_path / f".piherd-tmp-hosts.{os.getpid()}.cccccc"
    dead = tmp_path / f".piherd-tmp-hosts.{DEAD_PID}.dddddd"
    live.write_text("x")
    dead.write_text("y")
    user = LocalTransport("n1")
    owner = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    asyncio.run(user.write_file(str(target), b"h\n", mode=0o644, owner=owner, group=group))
    assert target.read_bytes() == b"h\n"
    assert leftovers(tmp_path) == [live.name]
