"""What `piherd run` sends on the nodes' stdin: piped or file input, never a terminal's."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import pytest

from piherd.cli.run import piped_input


def test_a_file_is_sent_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "in"
    data.write_bytes(b"line\n\x00binary\n")
    with data.open() as stream:
        monkeypatch.setattr(sys, "stdin", stream)
        assert piped_input() == b"line\n\x00binary\n"


def test_a_pipe_is_read_to_its_end(monkeypatch: pytest.MonkeyPatch) -> None:
    read_end, write_end = os.pipe()
    os.write(write_end, b"from a pipe\n")
    os.close(write_end)
    with os.fdopen(read_end) as stream:
        monkeypatch.setattr(sys, "stdin", stream)
        assert piped_input() == b"from a pipe\n"


def test_nothing_from_devnull_an_empty_pipe_or_a_closed_stdin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    read_end, write_end = os.pipe()
    os.close(write_end)
    with open(os.devnull) as devnull, os.fdopen(read_end) as empty:
        for stream in (devnull, empty):
            monkeypatch.setattr(sys, "stdin", stream)
            assert piped_input() is None
    monkeypatch.setattr(sys, "stdin", devnull)  # closed now
    assert piped_input() is None


def test_nothing_without_a_descriptor(monkeypatch: pytest.MonkeyPatch) -> None:
    for stream in (io.StringIO("a test runner's stdin"), None):
        monkeypatch.setattr(sys, "stdin", stream)
        assert piped_input() is None
