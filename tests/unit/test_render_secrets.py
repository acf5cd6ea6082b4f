"""The cluster's secrets: created once, 0700/0600, reused, never shown."""

from __future__ import annotations

import stat
from pathlib import Path

import asyncssh
import pytest

from piherd.render import render_node
from piherd.secrets import SecretsError, load_or_create_secrets, render_context
from piherd.services import loads

TOML = """
[cluster]
name = "sec"
secrets_dir = "state/secrets"
[network]
subnet = "10.9.0.0/24"
[naming]
prefix = "n"
count = 3
first_address = "10.9.0.10"
[services.storage]
kind = "sshfs"
"""


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_secrets_are_created_once_with_private_modes(tmp_path: Path) -> None:
    cluster = loads(TOML, base=tmp_path)
    first = load_or_create_secrets(cluster)
    directory = tmp_path / "state" / "secrets"
    assert _mode(directory) == 0o700
    for name in ("munge.key", "storage_key", "storage_key.pub", "watch_key", "watch_key.pub"):
        assert _mode(directory / name) == 0o600, name
    assert len(first.munge_key) == 1024
    key = asyncssh.import_private_key(first.storage_private_key)
    assert key.export_public_key().decode().split()[:2] == first.storage_public_key.split()[:2]
    watch = asyncssh.import_private_key(first.watch_private_key)
    assert watch.export_public_key().decode().split()[:2] == first.watch_public_key.split()[:2]
    assert first.watch_public_key != first.storage_public_key
    again = load_or_create_secrets(cluster)
    assert again == first
    assert "munge" not in repr(again) and str(first.munge_key[:8]) not in repr(again)


def test_loose_modes_are_tightened(tmp_path: Path) -> None:
    cluster = loads(TOML, base=tmp_path)
    load_or_create_secrets(cluster)
    munge = tmp_path / "state" / "secrets" / "munge.key"
    munge.chmod(0o644)
    load_or_create_secrets(cluster)
    assert _mode(munge) == 0o600


def test_a_short_munge_key_is_refused(tmp_path: Path) -> None:
    cluster = loads(TOML, base=tmp_path)
    directory = tmp_path / "state" / "secrets"
    directory.mkdir(parents=True)
    (directory / "munge.key").write_bytes(b"short")
    with pytest.raises(SecretsError, match="at least 32"):
        load_or_create_secrets(cluster)


def test_context_carries_secrets_to_the_nodes(tmp_path: Path) -> None:
    cluster = loads(TOML, base=tmp_path)
    secrets = load_or_create_secrets(cluster)
    ctx = render_context(secrets, hardware={"n02": (4, 1000)}, admin_ids=(1001, 1002))
    files = render_node(cluster, cluster.node("n02"), ctx)
    assert files["/etc/munge/munge.key"].content == secrets.munge_key
    key = files["/etc/piherd/storage_key"]
    assert key.content == secrets.storage_private_key and key.secret and key.mode == 0o600
    mount = files["/etc/systemd/system/cluster.mount"].content.decode()
    assert "uid=1001,gid=1002" in mount
    head = render_node(cluster, cluster.head, ctx)
    entry = head["/etc/ssh/piherd/storage_keys/pi"].content.decode()
    assert " ".join(secrets.storage_public_key.split()[:2]) in entry
