"""--ask-pass pieces that run without a node: the key-install script and key reading."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from piherd.services import load
from piherd.transport.base import TransportError
from piherd.transport.first_contact import INSTALL_KEY, public_key_line

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB0E admin@laptop"


def install(home: Path, key: str) -> None:
    env = {**os.environ, "HOME": str(home)}
    subprocess.run(["sh", "-c", INSTALL_KEY, "sh", key], env=env, check=True, timeout=30)


def test_install_key_is_idempotent_and_private(tmp_path: Path) -> None:
    (tmp_path / ".ssh").mkdir(mode=0o755)
    (tmp_path / ".ssh" / "authorized_keys").write_text("ssh-rsa AAAA other@host\n")
    install(tmp_path, KEY)
    install(tmp_path, KEY)
    lines = (tmp_path / ".ssh" / "authorized_keys").read_text().splitlines()
    assert lines == ["ssh-rsa AAAA other@host", KEY]
    assert (tmp_path / ".ssh").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / ".ssh" / "authorized_keys").stat().st_mode & 0o777 == 0o600


def test_key_with_shell_syntax_is_data(tmp_path: Path) -> None:
    evil = 'ssh-ed25519 AAAA "$(touch pwned)"; x'
    install(tmp_path, evil)
    assert (tmp_path / ".ssh" / "authorized_keys").read_text() == evil + "\n"
    assert not Path("pwned").exists()


def test_public_key_line(tmp_path: Path) -> None:
    example = Path(__file__).parents[2] / "examples" / "cluster.toml"
    cluster = load(example)
    pub = tmp_path / "id.pub"
    pub.write_text(KEY + "\n")
    from dataclasses import replace

    assert public_key_line(replace(cluster, ssh_public_key=str(pub))) == KEY
    pub.write_text("not a key\n")
    with pytest.raises(TransportError, match="not a single OpenSSH public key"):
        public_key_line(replace(cluster, ssh_public_key=str(pub)))
