"""copy_to / gather_from: the tar-stream scripts run for real through LocalTransport."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

from piherd.transport.local import LocalTransport
from piherd.transport.tar_stream import copy_to, gather_from, pack


def sources(tmp: Path) -> tuple[Path, Path]:
    conf = tmp / "src" / "app.conf"
    conf.parent.mkdir()
    conf.write_text("key = 1\n")
    conf.chmod(0o640)
    tree = tmp / "src" / "tree"
    (tree / "bin").mkdir(parents=True)
    (tree / "bin" / "run").write_text("#!/bin/sh\n")
    (tree / "bin" / "run").chmod(0o750)
    return conf, tree


def copy(paths: list[Path], dest: Path | str) -> tuple[int | None, str]:
    result = asyncio.run(copy_to(LocalTransport("n1"), pack(paths), paths, str(dest)))
    return result.rc, result.stderr


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_into_an_existing_directory_keeps_modes(tmp_path: Path) -> None:
    conf, tree = sources(tmp_path)
    dest = tmp_path / "dest"
    dest.mkdir()
    assert copy([conf, tree], dest) == (0, "")
    assert (dest / "app.conf").read_text() == "key = 1\n" and mode(dest / "app.conf") == 0o640
    assert mode(dest / "tree" / "bin" / "run") == 0o750


def test_single_source_becomes_dest(tmp_path: Path) -> None:
    conf, tree = sources(tmp_path)
    old = tmp_path / "renamed.conf"
    old.write_text("old\n")
    assert copy([conf], old) == (0, "")
    assert old.read_text() == "key = 1\n" and mode(old) == 0o640
    assert copy([tree], tmp_path / "newtree") == (0, "")
    assert mode(tmp_path / "newtree" / "bin" / "run") == 0o750
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".piherd-tmp")]


def test_several_sources_need_a_directory(tmp_path: Path) -> None:
    conf, tree = sources(tmp_path)
    rc, err = copy([conf, tree], tmp_path / "nope")
    assert rc == 1 and "not a directory" in err
    assert not (tmp_path / "nope").exists()


def test_a_trailing_slash_names_a_directory_that_must_exist(tmp_path: Path) -> None:
    conf, _tree = sources(tmp_path)
    rc, err = copy([conf], f"{tmp_path}/newdir/")
    assert (rc, err.strip()) == (1, f"{tmp_path}/newdir/: no such directory")
    assert not (tmp_path / "newdir").exists()


def test_a_missing_parent_is_named(tmp_path: Path) -> None:
    conf, _tree = sources(tmp_path)
    rc, err = copy([conf], tmp_path / "absent" / "app.conf")
    assert (rc, err.strip()) == (1, f"{tmp_path / 'absent'}: no such directory")


def test_gather_into_dest_per_node(tmp_path: Path) -> None:
    _conf, tree = sources(tmp_path)
    out = tmp_path / "out"
    result = asyncio.run(gather_from(LocalTransport("node07"), str(tree), out))
    assert (result.rc, result.error) == (0, None)
    assert mode(out / "node07" / "tree" / "bin" / "run") == 0o750
    missing = asyncio.run(gather_from(LocalTransport("node07"), str(tmp_path / "x"), out))
    assert missing.rc == 1 and "no such file" in missing.stderr
