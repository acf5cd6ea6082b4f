"""The cut-down ssh_config copies resolve to what asyncssh makes of the original files."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from asyncssh.config import ConfigParseError, SSHClientConfig
from hypothesis import given
from hypothesis import strategies as st

from piherd.transport.sshconfig import SshConfigCache, _words

CONFIG = """\
# global part
ConnectTimeout 7

Host node01 node01.lan
    HostName 10.0.0.11
    HostKeyAlias node01

Host=node02,10.0.0.12
    HostName=10.0.0.12
    Port 2202

Host 10.0.0.* !10.0.0.13
    User wild
    IdentityFile ~/.ssh/id_%h

Match host 10.0.0.13
    User matched

Host node0? "node 9"
    ServerAliveInterval 9

Host *
    User fallback
    IdentitiesOnly yes
    ServerAliveInterval 30
"""

HOSTS = ["node01", "node01.lan", "node02", "10.0.0.12", "10.0.0.13", "10.0.0.99", "node07",
         "node 9", "other", "NODE01"]  # fmt: skip


def resolve(paths: list[str], host: str) -> dict[str, object]:
    config = SSHClientConfig.load(None, paths, False, False, False, "me", (), host, ())
    return dict(config._options)  # the resolved options are what we compare


@pytest.mark.parametrize("host", HOSTS)
def test_same_options_as_the_whole_file(tmp_path: Path, host: str) -> None:
    original = tmp_path / "ssh_config"
    original.write_text(CONFIG)
    user = tmp_path / "user_config"
    user.write_text("Host node01\n    User mine\nHost *\n    Compression yes\n")
    cache = SshConfigCache()
    try:
        files = cache.files_for([original, user], host)
        assert files[0] != str(original)  # cut down, not passed through
        assert resolve(files, host) == resolve([str(original), str(user)], host)
    finally:
        cache.close()


def test_hosts_matching_the_same_blocks_share_one_copy(tmp_path: Path) -> None:
    path = tmp_path / "ssh_config"
    path.write_text("".join(f"Host n{i}\n  HostName 10.1.0.{i}\n" for i in range(300)) + CONFIG)
    cache = SshConfigCache()
    try:
        first = cache.files_for([path], "10.1.0.1")
        assert cache.files_for([path], "10.1.0.2") == first
        assert cache.files_for([path], "n5") != first
        assert len(Path(first[0]).read_text().splitlines()) >= len(CONFIG.splitlines())
        assert "n5" not in Path(first[0]).read_text()
    finally:
        cache.close()
    assert not Path(first[0]).exists()


def test_changed_file_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "ssh_config"
    path.write_text("Host a\n  User one\n")
    cache = SshConfigCache()
    try:
        assert resolve(cache.files_for([path], "a"), "a")["User"] == "one"
        path.write_text("Host a\n  User two_longer\n")
        assert resolve(cache.files_for([path], "a"), "a")["User"] == "two_longer"
    finally:
        cache.close()


def test_errors_keep_their_line_number(tmp_path: Path) -> None:
    path = tmp_path / "ssh_config"
    path.write_text("Host other\n  User x\nHost a\n  Port notanumber\n")
    cache = SshConfigCache()
    try:
        with pytest.raises(ConfigParseError, match="line 4"):
            resolve(cache.files_for([path], "a"), "a")
    finally:
        cache.close()


@pytest.mark.parametrize(
    "text",
    ["CanonicalizeHostname yes\nHost a\n  User x\n", '"Host" a\n  User x\nHost b\n  User y\n'],
)
def test_passed_through_when_unsure(tmp_path: Path, text: str) -> None:
    path = tmp_path / "ssh_config"
    path.write_text(text)
    cache = SshConfigCache()
    assert cache.files_for([path, tmp_path / "missing"], "b") == [
        str(path),
        str(tmp_path / "missing"),
    ]


def test_whole_file_when_no_copy_can_be_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ssh_config"
    path.write_text(CONFIG)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "missing"))
    cache = SshConfigCache()
    assert cache.files_for([path], "node01") == [str(path)]


@given(st.text(alphabet=" \t\r=,!*?#abcHost0129.-_'\"\\\x0b\x0cé\n", max_size=40))
def test_lines_split_exactly_as_shlex_splits_them(line: str) -> None:
    try:
        expected: list[str] | None = shlex.split(line)
    except ValueError:
        expected = None
    assert _words(line) == expected
